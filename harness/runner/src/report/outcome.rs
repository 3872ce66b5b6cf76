//! The outcome of one case on one rig. Failure, error and skip are kept apart
//! all the way to the JUnit: a bad meter, a broken bench and a case that does
//! not apply must never look alike.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Local};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Passed,
    /// The device did something wrong.
    Failed {
        message: String,
        detail: String,
    },
    /// The bench or harness could not do its part.
    Error {
        message: String,
    },
    /// The case does not apply to this rig or device.
    Skipped {
        reason: String,
    },
    /// Ctrl-C or SIGTERM stopped the run while this case ran.
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub rig: String,
    pub case_id: String,
    pub title: String,
    pub file: PathBuf,
    pub ets: Vec<String>,
    pub verdict: Verdict,
    pub started: DateTime<Local>,
    pub duration: Duration,
    /// One line per step with its time and result.
    pub step_log: String,
    pub artifacts: PathBuf,
    /// Extra facts for the testcase's properties (power-cut seeds, ...).
    pub properties: Vec<(String, String)>,
    /// Attempts that ended in a bench error before this one (`--retries`):
    /// a pass after them is flaky, not a plain pass.
    pub earlier_attempts: Vec<EarlierAttempt>,
}

/// An attempt of a case that the bench could not complete, rerun after.
#[derive(Debug, Clone)]
pub struct EarlierAttempt {
    pub message: String,
    pub started: DateTime<Local>,
    pub duration: Duration,
    pub step_log: String,
}

/// What the report says about a rig and its device, learned during the run.
#[derive(Debug, Clone, Default)]
pub struct RigInfo {
    pub name: String,
    pub file: PathBuf,
    pub endpoint: String,
    pub firmware_version: Option<String>,
    pub modem_revision: Option<String>,
    /// The modem's IMEI and ICCID, asked once at bring-up (the report's identity).
    pub imei: Option<String>,
    pub iccid: Option<String>,
    /// /3/0/3 as the run ended; `firmware_version` is the first one read.
    pub firmware_version_after: Option<String>,
    pub server_address: Option<String>,
    /// Datagrams the embedded server received and sent for this rig.
    pub datagrams_in: u64,
    pub datagrams_out: u64,
}
