//! `cancel_observe: /3/0/13` or `{path, quiet}`: ends an observation (RFC
//! 7641 §3.6, a GET with Observe=1, which LwM2M 1.1 Core §6.4.2 "Cancel
//! Observation" uses), and with `quiet` checks that it ended: the device
//! sends no notification of that observation for that long after it
//! answered the cancel (ETS int-303 checks that the client removed the
//! observer).

use std::fmt::Write as _;
use std::time::Duration;

use lwm2m::coap::{options, wire};
use lwm2m::server::DmRequest;
use lwm2m::Path;
use serde::Deserialize;
use server::{code_text, Direction, LogEntry};

use crate::case::fields::{CaseFieldError, CasePath, Span};
use crate::case::model::StringOr;
use crate::session::Session;
use crate::steps::error::{bench, device};
use crate::steps::exchange::request_on;
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelObserveFull {
    path: CasePath,
    quiet: Option<Span>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "StringOr<CancelObserveFull>")]
pub struct CancelObserve {
    pub path: CasePath,
    /// How long after the cancel no notification of it may come.
    pub quiet: Option<Duration>,
}

impl TryFrom<StringOr<CancelObserveFull>> for CancelObserve {
    type Error = CaseFieldError;
    fn try_from(c: StringOr<CancelObserveFull>) -> Result<Self, CaseFieldError> {
        Ok(match c {
            StringOr::Short(p) => CancelObserve {
                path: CasePath::try_from(p)?,
                quiet: None,
            },
            StringOr::Long(f) => CancelObserve {
                path: f.path,
                quiet: f.quiet.map(|s| s.0),
            },
        })
    }
}

impl Step for CancelObserve {
    fn describe(&self) -> String {
        match self.quiet {
            Some(q) => format!(
                "cancel observe {}, then no notification for {q:?}",
                self.path
            ),
            None => format!("cancel observe {}", self.path),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let path = instances::resolve(rig, self.path)?;
            // The observation's token, from the Observe the server sent.
            let token = self
                .quiet
                .map(|_| observe_token(&rig.server.log_since(0), path))
                .transpose()?;
            let r = request_on(rig, DmRequest::CancelObserve { path }, turn.within).await?;
            ctx.observations.remove(&path);
            let _ = writeln!(ctx.log, "  -> {}", code_text(r.code));
            // RFC 7641 §3.6: the cancel is a GET, answered like one.
            if r.code != 205 {
                return Err(device(
                    format!("2.05 Content to the GET with Observe=1 on {path}"),
                    code_text(r.code),
                ));
            }
            let (Some(quiet), Some(token)) = (self.quiet, token) else {
                return Ok(());
            };
            let from = rig.server.log_len();
            tokio::time::sleep(quiet).await;
            let log = rig.server.log_since(from);
            let late: Vec<&LogEntry> = log
                .iter()
                .filter(|e| is_notification_of(e, &token))
                .collect();
            if let Some(first) = late.first() {
                return Err(device(
                    format!(
                        "no notification of {path} within {quiet:?} after the cancel was answered"
                    ),
                    format!(
                        "{} notification(s), the first: {}",
                        late.len(),
                        first.summary
                    ),
                ));
            }
            let _ = writeln!(ctx.log, "  -> no notification for {quiet:?}");
            Ok(())
        })
    }
}

/// The token of the last Observe (GET with Observe=0) the server sent for `path`.
fn observe_token(log: &[LogEntry], path: Path) -> Result<Vec<u8>, crate::steps::StepError> {
    let want = path.to_string();
    log.iter()
        .rev()
        .filter(|e| e.direction == Direction::Out)
        .filter_map(|e| wire::decode(&e.bytes).ok())
        .find(|p| options::observe(p) == Some(0) && options::uri_path_string(p) == want)
        .map(|p| p.get_token().to_vec())
        .ok_or_else(|| {
            bench(format!(
                "no Observe of {path} in the server's message log: an `observe` step must start it first"
            ))
        })
}

/// Whether `entry` is a notification the device sent with `token`: a
/// response carrying the Observe option (RFC 7641 §4.2).
fn is_notification_of(entry: &LogEntry, token: &[u8]) -> bool {
    entry.direction == Direction::In
        && wire::decode(&entry.bytes).is_ok_and(|p| {
            p.get_token() == token
                && options::observe(&p).is_some()
                && lwm2m::coap::code::is_response(p.header.code.into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

    fn entry(direction: Direction, p: &Packet) -> LogEntry {
        LogEntry {
            index: 0,
            time: chrono::Utc::now(),
            direction,
            peer: "127.0.0.1:5683".parse().unwrap(),
            summary: lwm2m::coap::summarize(&wire::encode(p)),
            bytes: wire::encode(p),
            send_error: None,
        }
    }

    fn packet(code: MessageClass, token: u8, observe: Option<u32>, path: &str) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::NonConfirmable);
        p.header.code = code;
        p.set_token(vec![token]);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        if let Some(o) = observe {
            options::set_uint(&mut p, CoapOption::Observe, o);
        }
        p
    }

    #[test]
    fn the_token_is_the_last_observe_of_the_path_and_only_its_notifications_count() {
        let get = MessageClass::Request(RequestType::Get);
        let content = MessageClass::Response(ResponseType::Content);
        let log = [
            entry(Direction::Out, &packet(get, 1, Some(0), "/4/0/2")),
            entry(Direction::Out, &packet(get, 2, Some(0), "/4/0/3")),
            entry(Direction::Out, &packet(get, 3, Some(0), "/4/0/2")),
            entry(Direction::Out, &packet(get, 4, None, "/4/0/2")),
        ];
        let path = Path::resource(4, 0, 2);
        assert_eq!(observe_token(&log, path).unwrap(), vec![3]);
        let none = observe_token(&log, Path::resource(4, 0, 9)).unwrap_err();
        assert!(none.to_string().contains("no Observe of /4/0/9"), "{none}");

        let notification = entry(Direction::In, &packet(content, 3, Some(7), ""));
        assert!(is_notification_of(&notification, &[3]));
        assert!(
            !is_notification_of(&notification, &[2]),
            "another observation"
        );
        let answer = entry(Direction::In, &packet(content, 3, None, ""));
        assert!(
            !is_notification_of(&answer, &[3]),
            "the cancel's own 2.05 has no Observe"
        );
        let outgoing = entry(Direction::Out, &packet(get, 3, Some(1), "/4/0/2"));
        assert!(!is_notification_of(&outgoing, &[3]));
    }
}
