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
    /// The device it ran on, on a rig with several (`devices:`).
    pub device: Option<String>,
    /// The rig's devices are a pool (`each_case: any`): the case is one
    /// testcase whichever device ran it, named by its id alone.
    pub pooled: bool,
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
    /// Which of the rig's devices this is, on a rig with several: each has
    /// its own testsuite, `<rig>::<device>`, with its own facts.
    pub device: Option<String>,
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
    /// Datagrams to the embedded server the kernel dropped, its receive
    /// buffer full (`None`: the system does not say).
    pub receive_buffer_drops: Option<u64>,
}

impl RigInfo {
    /// The testsuite's name: the rig's, or `<rig>::<device>`.
    pub fn suite_name(&self) -> String {
        match &self.device {
            Some(d) => format!("{}::{d}", self.name),
            None => self.name.clone(),
        }
    }
}

impl CaseOutcome {
    /// The testcase's name: the case id, or `<rig>::<device>::<case-id>`
    /// when the case runs on every device of the rig (one testcase each).
    pub fn testcase_name(&self) -> String {
        match (&self.device, self.pooled) {
            (Some(d), false) => format!("{}::{d}::{}", self.rig, self.case_id),
            _ => self.case_id.clone(),
        }
    }
}
