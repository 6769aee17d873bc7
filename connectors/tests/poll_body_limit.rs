//! The REST poller reads at most `max_body_bytes` of a page. A departmental system (or a
//! proxy in front of it) answering with a giant or endless body is refused, with an error
//! naming the URL and the limit, as an unusable answer the connector retries with backoff;
//! pages within the limit still arrive whole.
//!
//! The fake system here speaks raw HTTP/1.1 over a socket, so it can announce lengths it
//! never sends and stream bodies that never end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_connectors::http_poll::{
    BodySize, HttpPollConfig, HttpPollSource, HttpPoller, PollError, DEFAULT_MAX_BODY_BYTES,
};
use hub_connectors::Secret;
use hub_connectors::{Source, SourceError};

const PATH: &str = "/api/v1/cases";
/// A small limit, so the tests move little data.
const LIMIT: usize = 16 * 1024;
/// The poller's timeout: every refusal below must come well before it.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How the fake system answers every request.
#[derive(Clone)]
enum Answer {
    /// 200 with `Content-Length`.
    Page(Vec<u8>),
    /// 200, chunked, no `Content-Length`.
    Chunked(Vec<u8>),
    /// 200, chunked, never ending.
    Endless,
    /// 200 announcing this many bytes, then sending a few and stalling.
    Announces(u64),
    /// This status, with an endless chunked body.
    EndlessError(u16),
}

struct FakeSystem {
    base_url: String,
    body_bytes_sent: Arc<AtomicU64>,
}

impl FakeSystem {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let body_bytes_sent = Arc::new(AtomicU64::new(0));
        let sent = body_bytes_sent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (answer, sent) = (answer.clone(), sent.clone());
                std::thread::spawn(move || {
                    // The client hanging up mid-body is the point of most tests.
                    let _ = serve(stream, &answer, &sent);
                });
            }
        });
        FakeSystem {
            base_url,
            body_bytes_sent,
        }
    }

    fn url(&self) -> String {
        format!("{}{PATH}", self.base_url)
    }

    fn poller(&self, max_body_bytes: usize) -> HttpPoller {
        HttpPoller::new(
            HttpPollConfig {
                base_url: self.base_url.clone(),
                path: PATH.into(),
                timeout: TIMEOUT,
                max_body_bytes,
                ..HttpPollConfig::default()
            },
            Secret::new("limit-test-token"),
        )
        .unwrap()
    }
}

fn serve(mut stream: TcpStream, answer: &Answer, sent: &AtomicU64) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n";
    let chunked = "Transfer-Encoding: chunked\r\n\r\n";
    let body = |stream: &mut TcpStream, bytes: &[u8]| -> std::io::Result<()> {
        stream.write_all(bytes)?;
        sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    };
    let chunk = |bytes: &[u8]| {
        [
            format!("{:x}\r\n", bytes.len()).as_bytes(),
            bytes,
            b"\r\n".as_slice(),
        ]
        .concat()
    };
    // Far past any limit here: if the client never hangs up, the test fails instead of
    // running forever.
    let safety = 256 * 1024 * 1024;
    match answer {
        Answer::Page(page) => {
            stream.write_all(format!("{ok}Content-Length: {}\r\n\r\n", page.len()).as_bytes())?;
            body(&mut stream, page)?;
        }
        Answer::Chunked(page) => {
            stream.write_all(format!("{ok}{chunked}").as_bytes())?;
            for piece in page.chunks(4096) {
                body(&mut stream, &chunk(piece))?;
            }
            stream.write_all(b"0\r\n\r\n")?;
        }
        Answer::Endless => {
            stream.write_all(format!("{ok}{chunked}").as_bytes())?;
            body(&mut stream, &chunk(b"{\"items\":["))?;
            let piece = chunk(&b"{\"id\":\"R\"},".repeat(800));
            while sent.load(Ordering::Relaxed) < safety {
                body(&mut stream, &piece)?;
            }
        }
        Answer::Announces(n) => {
            stream.write_all(format!("{ok}Content-Length: {n}\r\n\r\n").as_bytes())?;
            body(&mut stream, b"{\"items\":[")?;
            std::thread::sleep(Duration::from_secs(10));
        }
        Answer::EndlessError(status) => {
            stream.write_all(
                format!(
                    "HTTP/1.1 {status} Oops\r\nContent-Type: text/plain\r\n\
                     Connection: close\r\n{chunked}"
                )
                .as_bytes(),
            )?;
            let piece = chunk(&b"overloaded ".repeat(400));
            while sent.load(Ordering::Relaxed) < safety {
                body(&mut stream, &piece)?;
            }
        }
    }
    stream.flush()
}

/// A page of records, padded to exactly `len` bytes.
fn page_of_len(len: usize) -> Vec<u8> {
    let shell = |pad: usize| {
        format!(
            r#"{{"items":[{{"caseNo":"CG1","a":1}},{{"caseNo":"CG2","pad":"{}"}}],"next_cursor":"c:2"}}"#,
            "x".repeat(pad)
        )
    };
    let overhead = shell(0).len();
    assert!(len >= overhead, "a page is at least {overhead} bytes");
    let page = shell(len - overhead).into_bytes();
    assert_eq!(page.len(), len);
    page
}

fn assert_names_url_and_limit(text: &str, fake: &FakeSystem) {
    assert!(text.contains(&fake.url()), "the URL is named: {text}");
    assert!(
        text.contains(&format!("limit of {LIMIT} bytes")) && text.contains("max_body_bytes"),
        "the limit is named: {text}"
    );
    assert!(
        !text.contains("limit-test-token"),
        "never the token: {text}"
    );
}

#[tokio::test]
async fn a_page_announced_over_the_limit_is_refused_up_front_naming_the_url_and_the_limit() {
    let page = page_of_len(4 * LIMIT);
    let fake = FakeSystem::start(Answer::Page(page.clone()));
    let err = fake.poller(LIMIT).fetch_page(None).await.unwrap_err();
    match &err {
        PollError::BodyTooLarge { url, limit, size } => {
            assert_eq!(url, &fake.url());
            assert_eq!(*limit, LIMIT);
            assert_eq!(*size, BodySize::Declared(page.len() as u64));
        }
        other => panic!("expected BodyTooLarge, got {other}"),
    }
    assert!(err.is_transient());
    let text = err.to_string();
    assert_names_url_and_limit(&text, &fake);
    assert!(
        text.contains(&format!("Content-Length announces {} bytes", page.len())),
        "{text}"
    );

    // Through the source, as the hub sees it: an unusable answer, retried with backoff
    // and shown in health, never taken for a credentials problem.
    let mut source = HttpPollSource::new(fake.poller(LIMIT));
    source.start(None).await.unwrap();
    let err = source.next_batch().await.unwrap_err();
    assert!(matches!(err, SourceError::BadAnswer { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(err.label(), "bad_answer");
    let text = err.to_string();
    assert_names_url_and_limit(&text, &fake);
    assert!(text.contains("unusable answer"), "{text}");
}

#[tokio::test]
async fn a_chunked_page_over_the_limit_is_cut_off_while_reading() {
    let fake = FakeSystem::start(Answer::Chunked(page_of_len(4 * LIMIT)));
    let err = fake.poller(LIMIT).fetch_page(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            PollError::BodyTooLarge {
                size: BodySize::Exceeded,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert_names_url_and_limit(&text, &fake);
    assert!(
        text.contains(&format!("more than {LIMIT} bytes arrived")),
        "{text}"
    );
}

#[tokio::test]
async fn an_endless_page_is_cut_off_at_the_limit_long_before_the_timeout() {
    let fake = FakeSystem::start(Answer::Endless);
    let started = Instant::now();
    let err = fake.poller(LIMIT).fetch_page(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            PollError::BodyTooLarge {
                size: BodySize::Exceeded,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < TIMEOUT / 2, "{:?}", started.elapsed());
    assert_names_url_and_limit(&err.to_string(), &fake);
    // The poller hung up: the system stops being able to send soon after (what it wrote
    // into the socket buffers meanwhile is all it managed).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = fake.body_bytes_sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.body_bytes_sent.load(Ordering::Relaxed),
        sent,
        "the connection is closed, nothing more is read"
    );
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_read() {
    // The system announces a terabyte and then stalls: reading any of it would hit the
    // timeout, so a quick refusal shows the Content-Length was honoured up front.
    let fake = FakeSystem::start(Answer::Announces(1 << 40));
    let started = Instant::now();
    let err = fake.poller(LIMIT).fetch_page(None).await.unwrap_err();
    assert!(started.elapsed() < TIMEOUT / 2, "{:?}", started.elapsed());
    assert!(
        matches!(
            err,
            PollError::BodyTooLarge {
                size: BodySize::Declared(n),
                ..
            } if n == 1 << 40
        ),
        "{err}"
    );
    assert_names_url_and_limit(&err.to_string(), &fake);
}

#[tokio::test]
async fn an_error_status_with_an_endless_body_is_reported_by_its_status() {
    let fake = FakeSystem::start(Answer::EndlessError(503));
    let started = Instant::now();
    let err = fake.poller(LIMIT).fetch_page(None).await.unwrap_err();
    assert!(started.elapsed() < TIMEOUT / 2, "{:?}", started.elapsed());
    match &err {
        PollError::Status { status, body, .. } => {
            assert_eq!(*status, 503);
            assert!(
                body.starts_with("overloaded") && body.len() <= 200,
                "{body}"
            );
        }
        other => panic!("expected the 503, got {other}"),
    }
    let err = SourceError::from(err);
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn pages_within_the_limit_still_arrive_whole() {
    for page in [page_of_len(200), page_of_len(LIMIT)] {
        for answer in [Answer::Page(page.clone()), Answer::Chunked(page.clone())] {
            let fake = FakeSystem::start(answer);
            let got = fake.poller(LIMIT).fetch_page(None).await.unwrap();
            assert_eq!(got.records.len(), 2);
            assert_eq!(got.records[0].bytes, br#"{"caseNo":"CG1","a":1}"#.to_vec());
            assert_eq!(got.records[0].uri, fake.url());
            assert_eq!(got.next_cursor.as_deref(), Some("c:2"));
        }
    }
    // One byte over is refused, with either framing.
    for answer in [
        Answer::Page(page_of_len(LIMIT + 1)),
        Answer::Chunked(page_of_len(LIMIT + 1)),
    ] {
        let fake = FakeSystem::start(answer);
        let err = fake.poller(LIMIT).fetch_page(None).await.unwrap_err();
        assert!(matches!(err, PollError::BodyTooLarge { .. }), "{err}");
    }
    // The default limit takes a large page in its stride.
    let fake = FakeSystem::start(Answer::Chunked(page_of_len(64 * LIMIT)));
    let got = fake
        .poller(DEFAULT_MAX_BODY_BYTES)
        .fetch_page(None)
        .await
        .unwrap();
    assert_eq!(got.records.len(), 2);
}

#[test]
fn the_default_limit_is_16_mib_and_shows_in_debug() {
    let config = HttpPollConfig::default();
    assert_eq!(config.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(DEFAULT_MAX_BODY_BYTES, 16 * 1024 * 1024);
    let poller = HttpPoller::new(config, Secret::new("secret-token")).unwrap();
    let shown = format!("{poller:?}");
    assert!(shown.contains("max_body_bytes: 16777216"), "{shown}");
    assert!(!shown.contains("secret-token"), "{shown}");
}
