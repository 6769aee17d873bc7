//! A shutdown signal shared by the hub's long-running components.

use tokio::sync::watch;

/// Cloneable; `stop()` on any clone (or on the [`ShutdownTrigger`]) ends every waiter.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub struct ShutdownTrigger(watch::Sender<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// True once shutdown is requested, or once the trigger is gone (its owner was dropped
    /// without stopping, as when a test fails): nobody is left to keep the hub running.
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown is requested (or the trigger is gone).
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sleep for `d` unless shutdown comes first; returns false if shutting down.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.is_stopping(),
            _ = self.wait() => false,
        }
    }
}
