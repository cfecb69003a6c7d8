//! Clean-up that must finish before the process exits: work a dropped guard could not do in
//! its `Drop` (restarting containers stopped for an aborted backup, removing an aborted run's
//! helper container) runs on a task of its own, registered here, and [`settle`] waits for all
//! of them. Commands that can abort runs (`stowage backup` on SIGTERM, the daemon) call it last.

use std::future::Future;
use std::sync::Mutex;

static PENDING: Mutex<Vec<tokio::task::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `work` on a task that [`settle`] waits for; does nothing outside a runtime.
pub fn spawn(work: impl Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let task = handle.spawn(work);
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }
}

/// Waits for every task [`spawn`] started (and those they start).
pub async fn settle() {
    loop {
        let pending: Vec<_> =
            std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return;
        }
        for task in pending {
            let _ = task.await;
        }
    }
}
