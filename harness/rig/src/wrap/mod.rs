//! Wrappers around a driver, composed the way smoltcp wraps its
//! `phy::Device` (`Tracer`, `FaultInjector`): a wrapped driver is still a
//! [`crate::Power`], [`crate::power::Supply`] or [`crate::Modem`], so nothing above it knows, and no
//! driver carries recording or fault flags of its own.
//!
//! The AT transcript stays inside [`crate::SerialModem`] for now: it records
//! echo, URCs and engine notes that only the AT engine sees.

pub mod current;
pub mod fault;
pub mod tracer;

pub use current::{CurrentRecorder, CurrentRecording};
pub use fault::{Fault, FaultAction, FaultPlan, FaultyModem, FaultyPower};
pub use tracer::{CallOutcome, PowerCall, PowerEvent, PowerTrace, PowerTracer};
