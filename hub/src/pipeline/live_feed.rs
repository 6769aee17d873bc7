//! The outbox as this process's live streams see it: one supervised task reads the outbox
//! (every task event is written there with the change that caused it, whichever hub process
//! made it) and hands each new page to every open stream (`crate::http::stream`).

use std::sync::Arc;
use std::time::Duration;

use hub_store::OutboxEvent;
use tokio::sync::broadcast;

use crate::infra::shutdown::Shutdown;

/// Outbox entries read per poll.
pub const PAGE: u32 = 200;
/// How often the outbox is read when this process changed nothing meanwhile.
const POLL: Duration = Duration::from_millis(300);
/// Pages the fan-out holds for streams that are slow to take them; a stream further behind
/// catches up from the store.
const FANOUT: usize = 256;

/// New outbox entries, after `after` (the feed's position before them), in id order.
pub struct Page {
    pub after: i64,
    pub entries: Vec<OutboxEvent>,
}

/// The one reader of the outbox of a process, shared by its live streams.
pub struct LiveFeed {
    pub(crate) pages: broadcast::Sender<Arc<Page>>,
    /// The last outbox id read.
    pub(crate) position: tokio::sync::watch::Sender<i64>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed {
            pages: broadcast::channel(FANOUT).0,
            position: tokio::sync::watch::channel(0).0,
        }
    }
}

/// The supervised task that reads the outbox for the process's live streams.
pub struct LiveFeedTask {
    pub feed: Arc<LiveFeed>,
    pub cases: Arc<crate::cases::service::CaseService>,
    /// Where the reading stands; kept across restarts so a restart skips nothing.
    pub after: Option<i64>,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for LiveFeedTask {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let store = self.cases.store.clone();
        let mut changes = self.cases.changes.subscribe();
        let mut after = match self.after {
            Some(a) => a,
            None => store.outbox_head().await?,
        };
        self.after = Some(after);
        self.feed.position.send_replace(after);
        loop {
            let entries = store.outbox_after(after, None, PAGE).await?;
            let full = entries.len() == PAGE as usize;
            if let Some(last) = entries.last() {
                let page = Page {
                    after,
                    entries: entries.clone(),
                };
                after = last.id;
                self.after = Some(after);
                self.feed.position.send_replace(after);
                // Nobody listening is fine.
                let _ = self.feed.pages.send(Arc::new(page));
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                // This process changed a task: read the outbox now.
                _ = changes.recv() => {}
                _ = shutdown.wait() => return Ok(()),
            }
        }
    }
}
