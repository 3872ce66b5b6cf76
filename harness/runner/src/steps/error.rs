//! How a step goes wrong, sorted into the verdicts: the device did something
//! wrong (`Device`) or not in time (`Timeout`): a failure; the bench or the
//! harness could not do its part (`Bench`): an error; the step does not apply
//! to this device or rig (`Skip`).

use crate::session::RoleError;

/// How one step went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The device did something wrong.
    #[error("expected {expected}; saw {seen}")]
    Device { expected: String, seen: String },
    /// The device did not do what the step waited for in time. A failure
    /// like `Device`, whose message also quotes what happened meanwhile
    /// (see [`crate::steps::evidence`]): "timed out" alone says nothing.
    #[error("expected {expected}; saw {seen}")]
    Timeout { expected: String, seen: String },
    #[error("bench error: {0}")]
    Bench(String),
    #[error("skipped: {0}")]
    Skip(String),
    /// A step inside a `repeat` went wrong: the failure belongs to its line.
    #[error("line {line} (round {round}/{times}): {error}")]
    InRepeat {
        line: u32,
        step: String,
        round: u32,
        times: u32,
        error: Box<StepError>,
    },
}

pub fn device(expected: impl Into<String>, seen: impl Into<String>) -> StepError {
    StepError::Device {
        expected: expected.into(),
        seen: seen.into(),
    }
}

pub fn timed_out(expected: impl Into<String>, seen: impl Into<String>) -> StepError {
    StepError::Timeout {
        expected: expected.into(),
        seen: seen.into(),
    }
}

pub fn bench(e: impl std::fmt::Display) -> StepError {
    StepError::Bench(e.to_string())
}

/// A wait on the serial port: no such line in time is the device's
/// timeout; a port that failed is the bench's.
pub fn serial_wait_error(expected: impl Into<String>, e: rig::RigError) -> StepError {
    match e {
        rig::RigError::WaitTimeout { .. } => timed_out(expected, e.to_string()),
        rig::RigError::Serial { .. } => bench(e),
        _ => device(expected, e.to_string()),
    }
}

/// Sorts what the embedded servers report into the verdicts: no answer in
/// time is the device's timeout, a server that stopped or a request the
/// harness could not build is the bench's, anything else the device's.
pub fn server_error(expected: impl Into<String>, e: server::ServerError) -> StepError {
    use server::ServerError as E;
    match e {
        E::Timeout { .. } | E::NoResponse { .. } => timed_out(expected, e.to_string()),
        E::Shutdown
        | E::Bind { .. }
        | E::Dtls(_)
        | E::Credential { .. }
        | E::InvalidRequest { .. } => bench(e),
        _ => device(expected, e.to_string()),
    }
}

/// A role the rig does not map: the case does not apply; a store that
/// cannot serve it: the bench's fault.
impl From<RoleError> for StepError {
    fn from(e: RoleError) -> StepError {
        match e {
            RoleError::NotMapped(why) => StepError::Skip(why),
            RoleError::Store(why) => StepError::Bench(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::ServerError;
    use std::time::Duration;

    #[test]
    fn a_wait_that_runs_out_is_a_timeout_of_the_device() {
        let e = server_error(
            "meter-1 to register within 5s",
            ServerError::Timeout {
                what: "meter-1 to register".into(),
                after: Duration::from_secs(5),
            },
        );
        assert!(matches!(e, StepError::Timeout { .. }), "{e:?}");
        let e = server_error(
            "an answer to Read /3/0/0",
            ServerError::NoResponse {
                endpoint: "meter-1".into(),
                request: "Read /3/0/0".into(),
                attempts: 5,
            },
        );
        assert!(matches!(e, StepError::Timeout { .. }), "{e:?}");
    }

    #[test]
    fn a_bootstrap_exchange_the_device_answered_wrongly_is_a_failure() {
        let e = server_error(
            "meter-1 to complete bootstrap within 30s",
            ServerError::BootstrapFailed {
                endpoint: "meter-1".into(),
                index: 2,
                op: "Bootstrap-Write /0/1".into(),
                expected: vec![204],
                got: Some(400),
                reason: "refused".into(),
            },
        );
        let StepError::Device { seen, .. } = e else {
            panic!("{e:?}")
        };
        assert!(seen.contains("Bootstrap-Write /0/1"), "{seen}");
        let e = server_error(
            "an answer to Read /3/0/0",
            ServerError::Reset {
                endpoint: "meter-1".into(),
                request: "Read /3/0/0".into(),
            },
        );
        assert!(matches!(e, StepError::Device { .. }), "{e:?}");
    }

    #[test]
    fn a_harness_or_credential_problem_is_a_bench_error() {
        for e in [
            ServerError::Shutdown,
            ServerError::Credential {
                endpoint: "meter-1".into(),
                reason: "no key".into(),
            },
            ServerError::Dtls("no context".into()),
            ServerError::InvalidRequest {
                request: "Block1 Write /5/0/0".into(),
                reason: "SZX 7".into(),
            },
        ] {
            let e = server_error("anything", e);
            assert!(matches!(e, StepError::Bench(_)), "{e:?}");
        }
    }

    #[test]
    fn a_serial_wait_that_runs_out_is_a_timeout_and_a_dead_port_the_bench() {
        let e = serial_wait_error(
            "a line starting \"+LWM2M\"",
            rig::RigError::WaitTimeout {
                port: "/dev/pts/3".into(),
                prefix: "+LWM2M".into(),
                waited: Duration::from_secs(1),
                last_lines: vec![],
            },
        );
        assert!(matches!(e, StepError::Timeout { .. }), "{e:?}");
        let e = serial_wait_error(
            "a line starting \"+LWM2M\"",
            rig::RigError::Serial {
                port: "/dev/pts/3".into(),
                command: None,
                source: std::io::Error::other("gone"),
            },
        );
        assert!(matches!(e, StepError::Bench(_)), "{e:?}");
    }
}
