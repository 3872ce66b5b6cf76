//! Wrappers around a driver, composed the way smoltcp wraps its
//! `phy::Device` (`Tracer`, `FaultInjector`): a wrapped driver is still a
//! [`crate::Power`], [`crate::power::Supply`] or [`crate::Modem`], so nothing above it knows, and no
//! driver carries recording or fault flags of its own. The AT transcript
//! is one too: it listens to the events the AT engine publishes.

pub mod current;
pub mod fault;
pub mod fault_spec;
pub mod tracer;
pub mod transcript;

pub use current::{CurrentRecorder, CurrentRecording};
pub use fault::{Fault, FaultAction, FaultPlan, FaultyModem, FaultyPower};
pub use fault_spec::{FaultActionSpec, FaultSpec, FaultsSpec};
pub use tracer::{CallOutcome, PowerCall, PowerEvent, PowerTrace, PowerTracer};
pub use transcript::{TranscriptLog, TranscriptRecorder};
