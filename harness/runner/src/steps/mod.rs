//! The step engine: runs a case's steps against a rig session and turns what
//! happened into a verdict.
//!
//! A step kind is one module under `kinds/`: its YAML payload, what it needs
//! from the rig, and how it runs, behind the [`Step`] trait. The engine is a
//! loop over a case's steps that knows no kind by name. Adding a kind is a
//! new file in `kinds/` and one line in the list there.

pub mod cleanup;
mod context;
mod engine;
mod error;
pub mod euicc;
mod evidence;
mod exchange;
pub mod firmware;
pub mod instances;
mod judge;
pub mod kinds;
#[cfg(test)]
pub(crate) mod logged;
pub mod needs;
mod not_found;
mod panic_guard;
pub mod value;
mod wait;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use context::{CaseContext, RepeatPosition, Restart};
pub use engine::{run_case, CaseControl, CaseRun};
pub use error::StepError;
pub use kinds::StepKind;
pub use panic_guard::panic_message;
pub use wait::Wait;

use crate::case::Need;
use crate::session::Session;

/// What a running step returns; boxed so that kinds sit behind `dyn Step`
/// and `repeat` can run steps inside a step.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StepError>> + 'a>>;

/// What the engine tells a step about its turn.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// The step's line in the case file.
    pub line: u32,
    /// How long the step may take: its `within`, else the wait its kind
    /// asks for, else what is left of the case's timeout.
    pub within: Duration,
    /// What is left of the case's timeout (a `repeat` hands it on).
    pub remaining: Duration,
}

/// One kind of step.
pub trait Step {
    /// One line for the step log and failure messages, in the case's words.
    fn describe(&self) -> String;

    /// The rig parts the step cannot run without. The engine checks them,
    /// with the case's own `needs`, before the first step runs, so a case
    /// never stops half-way for want of a part.
    fn needs(&self) -> Vec<Need> {
        Vec::new()
    }

    /// Firmware roles the step names; each must be mapped by the rig, to an
    /// image that exists, before the device is touched.
    fn firmware_roles(&self) -> Vec<String> {
        Vec::new()
    }

    /// How long the step waits when the case gives no `within` and the wait
    /// is the device's or the rig's to set (see [`wait`]).
    fn default_wait(&self, _rig: &Session, _ctx: &CaseContext) -> Option<Wait> {
        None
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a>;
}
