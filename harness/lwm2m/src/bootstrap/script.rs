//! What a bootstrap server does with one client: a sequence of Bootstrap
//! Interface operations (LwM2M 1.1 Core §6.1.7) chosen by the caller — a case
//! or a named profile — each with the response codes it accepts.

use std::fmt;

use super::account::ServerAccount;
use crate::format::Record;
use crate::path::Path;

/// One Bootstrap Interface operation the server sends (Core §6.1.7,
/// Transport §6.1 Table 6.1-1 for the CoAP mapping).
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapOp {
    /// `GET {path}` Accept: link-format (§6.1.7.3); `path` is `/` or an object.
    Discover { path: Path },
    /// `DELETE {path}` (§6.1.7.5): `/`, an object or an instance.
    Delete { path: Path },
    /// `PUT {path}` with the records (§6.1.7.4): an object or an instance.
    Write { path: Path, records: Vec<Record> },
    /// `GET {path}` (§6.1.7.2, LwM2M 1.1 only): /1, /2 or below.
    Read { path: Path },
    /// `POST /bs` (§6.1.7.6).
    Finish,
}

impl BootstrapOp {
    /// The codes a conforming client answers when all is well.
    pub fn success_codes(&self) -> Vec<u16> {
        match self {
            BootstrapOp::Discover { .. } | BootstrapOp::Read { .. } => vec![205],
            BootstrapOp::Delete { .. } => vec![202],
            BootstrapOp::Write { .. } | BootstrapOp::Finish => vec![204],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            BootstrapOp::Discover { .. } => "Bootstrap-Discover",
            BootstrapOp::Delete { .. } => "Bootstrap-Delete",
            BootstrapOp::Write { .. } => "Bootstrap-Write",
            BootstrapOp::Read { .. } => "Bootstrap-Read",
            BootstrapOp::Finish => "Bootstrap-Finish",
        }
    }
}

/// `Bootstrap-Write /0/1`, `Bootstrap-Finish`: names the operation in events
/// and verdicts. Never shows record values (they hold keys).
impl fmt::Display for BootstrapOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapOp::Discover { path }
            | BootstrapOp::Delete { path }
            | BootstrapOp::Write { path, .. }
            | BootstrapOp::Read { path } => write!(f, "{} {path}", self.name()),
            BootstrapOp::Finish => f.write_str(self.name()),
        }
    }
}

/// What the answer to a Bootstrap-Discover or Bootstrap-Read must show
/// for the session to go on: the pass criteria of ETS tests such as
/// LightweightM2M-1.1-int-4 ("Discover and Read show the new /1
/// instance"; after Bootstrap-Delete "the replies show the /1 instance is
/// gone" and the Bootstrap-Server account is not affected).
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerCheck {
    /// The answer shows an instance at or below this path: a Discover
    /// lists its link, a Read holds a record below it.
    Lists(Path),
    /// The answer shows nothing at or below this instance or object path
    /// (an object's own link, `</1>`, is not an instance and may stay).
    Omits(Path),
    /// A Discover lists a Security instance without `ssid`: the
    /// Bootstrap-Server account, which "doesn't include a Short Server ID
    /// in its parameter list" (Core §6.1.7.3) and which no Bootstrap-Delete
    /// affects (§6.1.7.5).
    BootstrapAccount,
}

impl fmt::Display for AnswerCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerCheck::Lists(p) => write!(f, "lists {p}"),
            AnswerCheck::Omits(p) => write!(f, "omits {p}"),
            AnswerCheck::BootstrapAccount => f.write_str("lists the Bootstrap-Server account"),
        }
    }
}

/// One operation, the response codes that let the session go on, and what
/// its answer must show.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapStep {
    pub op: BootstrapOp,
    /// e.g. `[204]`; a case testing refusals expects `[400]`.
    pub expect: Vec<u16>,
    /// Checked on a success answer's content; the first that fails ends
    /// the session ([`super::BootstrapEvent::Failed`] names it).
    pub checks: Vec<AnswerCheck>,
}

/// The operations a bootstrap session runs, in order, after the client's
/// Bootstrap-Request was accepted. A session that reaches the end without a
/// Finish step just ends (`BootstrapEvent::Finished` is still reported).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BootstrapScript {
    pub steps: Vec<BootstrapStep>,
    /// Block1 size exponent (RFC 7959 SZX) for this session's writes, in
    /// place of the server's: a case runs a write as a constrained network
    /// would carry it, without changing the server for the device's other
    /// sessions.
    pub block1_szx: Option<u8>,
}

impl BootstrapScript {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `op`, expecting its success code.
    pub fn then(mut self, op: BootstrapOp) -> Self {
        let expect = op.success_codes();
        self.steps.push(BootstrapStep {
            op,
            expect,
            checks: Vec::new(),
        });
        self
    }

    /// Appends `op`, expecting one of `codes`.
    pub fn then_expect(mut self, op: BootstrapOp, codes: &[u16]) -> Self {
        self.steps.push(BootstrapStep {
            op,
            expect: codes.to_vec(),
            checks: Vec::new(),
        });
        self
    }

    /// Adds `checks` to the last operation appended (none: nothing happens).
    pub fn checking(mut self, checks: &[AnswerCheck]) -> Self {
        if let Some(last) = self.steps.last_mut() {
            last.checks.extend_from_slice(checks);
        }
        self
    }

    /// The standard profile: Bootstrap-Delete `/`, Bootstrap-Write of the
    /// account's Security instance, then of its Server instance, then
    /// Bootstrap-Finish (the flow of Core §6.1.3 / ETS LightweightM2M-1.1-int-1).
    pub fn standard(account: &ServerAccount) -> Self {
        Self::provision(std::slice::from_ref(account))
    }

    /// Like [`BootstrapScript::standard`], for several accounts.
    pub fn provision(accounts: &[ServerAccount]) -> Self {
        let mut script = Self::new().then(BootstrapOp::Delete { path: Path::ROOT });
        for a in accounts {
            script = script.then(BootstrapOp::Write {
                path: a.security_path(),
                records: a.security_records(),
            });
        }
        for a in accounts {
            script = script.then(BootstrapOp::Write {
                path: a.server_path(),
                records: a.server_records(),
            });
        }
        script.then(BootstrapOp::Finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_profile_deletes_writes_and_finishes() {
        let a = ServerAccount::nosec(101, "coap://127.0.0.1:5683");
        let s = BootstrapScript::standard(&a);
        let names: Vec<String> = s.steps.iter().map(|s| s.op.to_string()).collect();
        assert_eq!(
            names,
            [
                "Bootstrap-Delete /",
                "Bootstrap-Write /0/1",
                "Bootstrap-Write /1/0",
                "Bootstrap-Finish"
            ]
        );
        assert_eq!(s.steps[1].expect, vec![204]);
        assert_eq!(s.steps[0].expect, vec![202]);
    }
}
