//! A real browser for the console's tests: the system's Chromium, headless, driven over the
//! W3C WebDriver protocol by the system's `chromedriver` (Debian: `chromium`,
//! `chromium-driver`). The protocol is plain JSON over HTTP, so the client is a few calls on
//! the `reqwest` the tests already use, with nothing downloaded at build or run time.
//!
//! A browser whose test panics saves a screenshot to `target/browser-screenshots/` first.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    /// The name its screenshot has if the test fails.
    name: String,
}

/// An element on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium at 1366×768 (the office
    /// screen the console is made for).
    pub async fn start(name: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (Debian: apt-get install chromium chromium-driver)");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,768", "--lang=zh-CN", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-sync"
            ]}
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("a browser session")
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {resp}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            http,
            name: name.to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
            .json()
            .await
            .unwrap();
        if let Some(error) = resp["value"]["error"].as_str() {
            panic!(
                "webdriver {method} {path}: {error}: {}",
                resp["value"]["message"]
            );
        }
        resp["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The elements matching a CSS selector now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_owned()))
            .collect()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no element `{css}` on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, e: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits up to `within` until the text of `css` contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self
                .execute(
                    "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                    vec![json!(css)],
                )
                .await
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < within,
                "`{css}` did not come to contain `{needle}` within {within:?}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in at the console's sign-in page with `token`, as a person would.
    pub async fn sign_in(&self, hub: &str, token: &str) {
        self.goto(&format!("{hub}/login")).await;
        let field = self.find("#token").await;
        self.type_into(&field, token).await;
        let button = self.find("form button[type=submit]").await;
        self.click(&button).await;
        let started = Instant::now();
        while self.url().await.contains("/login") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sign-in did not leave the sign-in page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every address the page loaded anything from (the browser's resource timing log).
    pub async fn requested(&self) -> Vec<String> {
        let v = self
            .execute(
                "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
                vec![],
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(png.as_str().unwrap())
    }

    /// Saves a screenshot under `target/browser-screenshots/<name>.png`.
    pub async fn save_screenshot(&self, name: &str) -> PathBuf {
        let dir = crate::workspace_root().join("target/browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.screenshot().await).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failing test keeps what the page looked like, then the session ends either way.
        let (base, session, name) = (self.base.clone(), self.session.clone(), self.name.clone());
        let failing = std::thread::panicking();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let http = reqwest::Client::new();
                if failing {
                    let url = format!("{base}/session/{session}/screenshot");
                    if let Ok(resp) = http.get(url).send().await {
                        if let Ok(v) = resp.json::<Value>().await {
                            if let Some(png) = v["value"].as_str() {
                                let dir =
                                    crate::workspace_root().join("target/browser-screenshots");
                                let _ = std::fs::create_dir_all(&dir);
                                let path = dir.join(format!("{name}-failed.png"));
                                let _ = std::fs::write(&path, base64_decode(png));
                                eprintln!("screenshot of the failing page: {}", path.display());
                            }
                        }
                    }
                }
                let _ = http
                    .delete(format!("{base}/session/{session}"))
                    .send()
                    .await;
            });
        })
        .join();
        let _ = self.driver.start_kill();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGVsbG8="), b"hello");
        assert_eq!(super::base64_decode("5LiA"), "一".as_bytes());
    }
}
