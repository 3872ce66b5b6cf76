//! A step that panics ends its case, not the run: the panic is caught where
//! the engine polls the steps, and becomes a bench error that names the
//! case file:line, the step, the message and where in meterbench it
//! happened. The run goes on and still leaves the bench as the rig says.

use std::any::Any;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::case::Case;
use crate::report::Verdict;

/// A future whose poll may panic, turned into one that returns the panic:
/// the case ends as a bench error and the run goes on with the next case.
pub struct CatchUnwind<F>(pub Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened (source file:line),
    /// recorded by the hook: a panic's payload carries only its message.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Chains a hook in front of the default one that records where a panic
/// happened, so that the verdict can say it. Installed once per process.
pub fn install_panic_location_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_LOCATION.with(|p| *p.borrow_mut() = at);
            default(info);
        }));
    });
}

/// The verdict of a case whose step panicked: a bench error (the harness
/// could not do its part), naming the case file:line of the step, the
/// panic's message and where in meterbench it happened.
pub fn panicked(
    case: &Case,
    running: Option<usize>,
    payload: &(dyn Any + Send),
    log: &mut String,
) -> Verdict {
    let message = panic_message(payload);
    let source = PANIC_LOCATION
        .with(|p| p.borrow_mut().take())
        .map(|at| format!(" (at {at})"))
        .unwrap_or_default();
    let step = running.and_then(|i| case.steps.get(i));
    let place = match step {
        Some(step) => format!(
            "{}:{}: step `{}` panicked",
            case.file.display(),
            step.line,
            step.describe()
        ),
        None => format!(
            "{}: the case panicked before its first step",
            case.file.display()
        ),
    };
    let message = format!("{place}: {message}{source}");
    let _ = writeln!(log, "ERROR: {message}");
    Verdict::Error { message }
}

/// A panic's message: `panic!` with a literal carries a `&str`, with
/// arguments a `String`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_panic_while_polled_becomes_its_payload_and_a_result_passes_through() {
        let r = block_on(CatchUnwind(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("step broke at {}", 7)
        })));
        let payload = r.expect_err("the panic is caught");
        assert_eq!(panic_message(payload.as_ref()), "step broke at 7");
        assert_eq!(block_on(CatchUnwind(Box::pin(async { 5 }))).ok(), Some(5));
    }
}
