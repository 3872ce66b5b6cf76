//! The task behind each firmware file server (CoAP and HTTP): started with a
//! stop signal, stopped gracefully by [`ServeTask::stop`] (the task finishes
//! what it is serving, then ends, and the caller waits for it), aborted when
//! its owner is dropped without stopping it.

use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running file-server task and the sender of its stop signal.
#[derive(Debug)]
pub(crate) struct ServeTask {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServeTask {
    /// Spawns `serve(stop)`; the future must end soon after `stop` resolves.
    pub(crate) fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stop_rx) = oneshot::channel();
        ServeTask {
            stop: Some(stop),
            task: Some(tokio::spawn(serve(stop_rx))),
        }
    }

    /// Signals the task to stop and waits until it has.
    pub(crate) async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServeTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn stop_signals_the_task_and_waits_for_its_end() {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        let mut task = ServeTask::spawn(|stop| async move {
            let _ = stop.await;
            tokio::task::yield_now().await;
            flag.store(true, Ordering::SeqCst);
        });
        task.stop().await;
        assert!(ended.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn dropping_it_aborts_the_task() {
        let (tx, rx) = oneshot::channel::<()>();
        let task = ServeTask::spawn(|_stop| async move {
            // Never stops on its own; `tx` is dropped when the task is aborted.
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(task);
        assert!(rx.await.is_err(), "the aborted task dropped its sender");
    }
}
