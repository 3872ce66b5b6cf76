//! The task behind each firmware file server (CoAP and HTTP): started with a
//! stop signal, stopped gracefully by [`ServeTask::stop`] (the task finishes
//! what it is serving, then ends, and the caller waits for it), aborted when
//! its owner is dropped without stopping it.
//!
//! A task runs on a runtime the caller names ([`ServeTask::spawn_on`], the
//! caller's own by [`ServeTask::spawn`]) or on a thread of its own with a
//! current-thread runtime ([`ServeTask::spawn_thread`]): there the socket,
//! its readiness and the serving loop live on one thread that epoll wakes
//! directly, with no wake-up of a worker on another core per datagram
//! (measured in docs/perf/firmware-datapath.md, issue 16).

use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the task runs and how its end is awaited.
#[derive(Debug)]
enum Running {
    Task(JoinHandle<()>),
    /// Its own thread; the receiver resolves when the thread's future ended.
    Thread(oneshot::Receiver<()>),
}

/// A running file-server task and the sender of its stop signal.
#[derive(Debug)]
pub(crate) struct ServeTask {
    stop: Option<oneshot::Sender<()>>,
    running: Option<Running>,
}

impl ServeTask {
    /// Spawns `serve(stop)` on the caller's runtime; the future must end
    /// soon after `stop` resolves.
    pub(crate) fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::spawn_on(&tokio::runtime::Handle::current(), serve)
    }

    /// Spawns `serve(stop)` on `runtime`.
    pub(crate) fn spawn_on<F, Fut>(runtime: &tokio::runtime::Handle, serve: F) -> Self
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stop_rx) = oneshot::channel();
        ServeTask {
            stop: Some(stop),
            running: Some(Running::Task(runtime.spawn(serve(stop_rx)))),
        }
    }

    /// Runs `serve(stop)` on a new thread named `name` with a current-thread
    /// runtime; `serve` is called on that thread, so what it registers
    /// (sockets, timers) belongs to that runtime. The future must also end
    /// when `stop` resolves with an error: that is how a dropped
    /// [`ServeTask`] stops the thread.
    pub(crate) fn spawn_thread<F, Fut>(name: &str, serve: F) -> std::io::Result<Self>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(serve(stop_rx));
                let _ = done_tx.send(());
            })?;
        Ok(ServeTask {
            stop: Some(stop),
            running: Some(Running::Thread(done_rx)),
        })
    }

    /// Runs `serve(stop)` on a new thread named `name`, without a runtime:
    /// for a loop of blocking calls, which must look at `stop`
    /// (`try_recv`) often, and end when it resolves or its sender is gone.
    pub(crate) fn spawn_blocking_thread<F>(name: &str, serve: F) -> std::io::Result<Self>
    where
        F: FnOnce(oneshot::Receiver<()>) + Send + 'static,
    {
        let (stop, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                serve(stop_rx);
                let _ = done_tx.send(());
            })?;
        Ok(ServeTask {
            stop: Some(stop),
            running: Some(Running::Thread(done_rx)),
        })
    }

    /// Signals the task to stop and waits until it has.
    pub(crate) async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.running.take() {
            Some(Running::Task(task)) => {
                let _ = task.await;
            }
            // An error here means the thread panicked; it has ended either way.
            Some(Running::Thread(done)) => {
                let _ = done.await;
            }
            None => {}
        }
    }
}

impl Drop for ServeTask {
    fn drop(&mut self) {
        // A thread's future sees its stop signal's sender dropped and ends.
        if let Some(Running::Task(task)) = self.running.take() {
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

    #[tokio::test]
    async fn a_thread_task_runs_on_its_own_thread_and_stops_on_the_signal() {
        let caller = std::thread::current().id();
        let (seen_tx, seen_rx) = oneshot::channel();
        let mut task = ServeTask::spawn_thread("serve-task-test", move |stop| async move {
            let _ = seen_tx.send(std::thread::current().id());
            let _ = stop.await;
        })
        .unwrap();
        assert_ne!(seen_rx.await.unwrap(), caller);
        task.stop().await;
        assert!(task.running.is_none());
    }

    #[tokio::test]
    async fn a_blocking_thread_stops_on_the_signal_and_when_dropped() {
        let looping = |stop: oneshot::Receiver<()>, ended: oneshot::Sender<()>| {
            move || {
                let mut stop = stop;
                while matches!(stop.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let _ = ended.send(());
            }
        };
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let mut task = ServeTask::spawn_blocking_thread("serve-task-test", move |stop| {
            looping(stop, ended_tx)()
        })
        .unwrap();
        task.stop().await;
        assert!(task.running.is_none());
        assert!(ended_rx.await.is_ok(), "stopped by the signal");

        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let task = ServeTask::spawn_blocking_thread("serve-task-test", move |stop| {
            looping(stop, ended_tx)()
        })
        .unwrap();
        drop(task);
        assert!(ended_rx.await.is_ok(), "stopped when dropped");
    }

    #[tokio::test]
    async fn dropping_a_thread_task_ends_its_thread() {
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let task = ServeTask::spawn_thread("serve-task-test", move |stop| async move {
            let _ = stop.await;
            let _ = ended_tx.send(());
        })
        .unwrap();
        drop(task);
        assert!(
            ended_rx.await.is_ok(),
            "the thread saw its stop sender dropped"
        );
    }
}
