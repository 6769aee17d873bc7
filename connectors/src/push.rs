//! Records pushed to the hub (the signed webhook) as a [`Source`].
//!
//! The HTTP handler verifies a request ([`crate::webhook`]), then calls
//! [`PushHandle::submit`] and waits: the ingest loop takes the record in its next batch,
//! produces it, and [`Source::commit`] tells the handler what became of it. So the hub
//! answers 2xx only once the record is safe in Kafka, and the department retries otherwise.
//! The queue is bounded: when the hub cannot keep up, `submit` refuses at once with
//! [`SubmitError::Busy`] (answer 503 with `Retry-After`) instead of piling up memory.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::source::{Batch, Outcome, Receipt, ReceiptInner, Source, SourceError, SourceKind};
use crate::RawRecord;

/// Waits for the outcome of one pushed record.
pub(crate) struct Waiter(oneshot::Sender<Outcome>);

struct Pushed {
    record: RawRecord,
    reply: oneshot::Sender<Outcome>,
}

/// Why a pushed record was not taken. Both mean "try again later" to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the hub is busy ({capacity} records waiting); retry later")]
    Busy { capacity: usize },
    #[error("the connector is stopped; retry later")]
    Closed,
    /// The record was taken but the hub stopped (or failed to produce it) before confirming;
    /// it may or may not have been produced, and a retry is absorbed by idempotency.
    #[error("the hub did not confirm the record; retry later")]
    Unconfirmed,
}

/// Cheap to clone; held by the HTTP handler.
#[derive(Clone)]
pub struct PushHandle {
    tx: mpsc::Sender<Pushed>,
    capacity: usize,
}

impl fmt::Debug for PushHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushHandle")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl PushHandle {
    /// Hand one verified record to the ingest loop and wait for its outcome.
    pub async fn submit(&self, record: RawRecord) -> Result<Outcome, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .try_send(Pushed { record, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy {
                    capacity: self.capacity,
                },
                mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
            })?;
        outcome.await.map_err(|_| SubmitError::Unconfirmed)
    }
}

/// The ingest side of a push channel.
pub struct PushSource {
    rx: mpsc::Receiver<Pushed>,
    max_batch: usize,
    linger: Duration,
    origin: String,
}

impl fmt::Debug for PushSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSource")
            .field("origin", &self.origin)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

/// A push channel for connector `origin`: at most `capacity` records wait; a batch holds up
/// to `max_batch` records, gathered for at most `linger` after the first one arrives.
pub fn channel(
    origin: impl Into<String>,
    capacity: usize,
    max_batch: usize,
    linger: Duration,
) -> (PushHandle, PushSource) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    (
        PushHandle { tx, capacity },
        PushSource {
            rx,
            max_batch: max_batch.max(1),
            linger,
            origin: origin.into(),
        },
    )
}

#[async_trait]
impl Source for PushSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Webhook
    }

    /// Pushed records have no position to resume from: an unconfirmed push is retried by
    /// its sender.
    async fn start(&mut self, _cursor: Option<String>) -> Result<(), SourceError> {
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        let first = self.rx.recv().await.ok_or_else(|| SourceError::Closed {
            origin: self.origin.clone(),
        })?;
        let mut pushed = vec![first];
        let deadline = tokio::time::Instant::now() + self.linger;
        while pushed.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(p) => pushed.push(p),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(p)) => pushed.push(p),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let mut records = Vec::with_capacity(pushed.len());
        let mut waiters = Vec::with_capacity(pushed.len());
        for p in pushed {
            records.push(p.record);
            waiters.push(Waiter(p.reply));
        }
        Ok(Batch {
            records,
            rejected: Vec::new(),
            cursor: None,
            more: true,
            receipt: Receipt(ReceiptInner::Push(waiters)),
        })
    }

    async fn commit(&mut self, receipt: Receipt, outcomes: &[Outcome]) -> Result<(), SourceError> {
        if let ReceiptInner::Push(waiters) = receipt.0 {
            for (i, Waiter(reply)) in waiters.into_iter().enumerate() {
                // A record without a reported outcome is answered "unconfirmed" by dropping
                // its waiter; a sender that gave up waiting is no error.
                if let Some(outcome) = outcomes.get(i) {
                    let _ = reply.send(outcome.clone());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> RawRecord {
        RawRecord {
            bytes: format!(r#"{{"caseNo":"CG{n}"}}"#).into_bytes(),
            uri: "webhook:urban_management".into(),
        }
    }

    #[tokio::test]
    async fn a_pushed_record_is_answered_only_after_commit() {
        let (handle, mut source) = channel("um.push", 8, 10, Duration::from_millis(20));
        let submitter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.submit(record(1)).await }
        });
        let batch = source.next_batch().await.unwrap();
        assert_eq!(batch.records, vec![record(1)]);
        assert!(!submitter.is_finished());
        source
            .commit(batch.receipt, &[Outcome::Produced])
            .await
            .unwrap();
        assert_eq!(submitter.await.unwrap(), Ok(Outcome::Produced));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_an_unconfirmed_batch_says_so() {
        let (handle, mut source) = channel("um.push", 1, 10, Duration::from_millis(5));
        let first = tokio::spawn({
            let handle = handle.clone();
            async move { handle.submit(record(1)).await }
        });
        tokio::task::yield_now().await;
        while handle.tx.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            handle.submit(record(2)).await,
            Err(SubmitError::Busy { capacity: 1 })
        );
        // The batch is dropped without commit (the hub stopping): the sender must retry.
        let batch = source.next_batch().await.unwrap();
        drop(batch);
        assert_eq!(first.await.unwrap(), Err(SubmitError::Unconfirmed));
        drop(source);
        assert_eq!(handle.submit(record(3)).await, Err(SubmitError::Closed));
    }
}
