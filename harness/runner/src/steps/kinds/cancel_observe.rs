//! `cancel_observe: /3/0/13` or `{path, quiet}`: ends an observation (RFC
//! 7641 §3.6, a GET with Observe=1, which LwM2M 1.1 Core §6.4.2 "Cancel
//! Observation" uses), and with `quiet` checks that it ended: the device
//! sends no notification of that observation for that long after it
//! answered the cancel (ETS int-303 checks that the client removed the
//! observer).
//!
//! With `reset: true` the cancel is the other one RFC 7641 §3.6 allows (ETS
//! int-302, "Cancel Observations using Reset Operation"): the server
//! forgets the observation and sends nothing, waits for the device's next
//! notification of it, answers that with RST, and `quiet` then checks that
//! the RST ended the observation at the device.

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
use crate::steps::exchange::{await_logged, request_on};
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelObserveFull {
    path: CasePath,
    quiet: Option<Span>,
    #[serde(default)]
    reset: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "StringOr<CancelObserveFull>")]
pub struct CancelObserve {
    pub path: CasePath,
    /// How long after the cancel no notification of it may come.
    pub quiet: Option<Duration>,
    /// Cancel by answering the next notification with RST instead of a
    /// GET with Observe=1.
    pub reset: bool,
}

impl TryFrom<StringOr<CancelObserveFull>> for CancelObserve {
    type Error = CaseFieldError;
    fn try_from(c: StringOr<CancelObserveFull>) -> Result<Self, CaseFieldError> {
        Ok(match c {
            StringOr::Short(p) => CancelObserve {
                path: CasePath::try_from(p)?,
                quiet: None,
                reset: false,
            },
            StringOr::Long(f) => CancelObserve {
                path: f.path,
                quiet: f.quiet.map(|s| s.0),
                reset: f.reset,
            },
        })
    }
}

impl Step for CancelObserve {
    fn describe(&self) -> String {
        if self.reset {
            return match self.quiet {
                Some(q) => format!(
                    "cancel observe {} by RST to its next notification, then no notification for {q:?}",
                    self.path
                ),
                None => format!(
                    "cancel observe {} by RST to its next notification",
                    self.path
                ),
            };
        }
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
            if self.reset {
                let token = rig
                    .server
                    .forget_observation(&rig.endpoint, path)
                    .await
                    .map_err(|e| {
                        bench(format!(
                            "{e}: an `observe` step must start the observation first"
                        ))
                    })?;
                ctx.observations.remove(&path);
                let from = rig.server.log_len();
                let rst = await_reset(rig, from, &token, turn.within)
                    .await
                    .map_err(|seen| {
                        device(
                            format!(
                                "a notification of {path} within {:?}, to answer it with RST",
                                turn.within
                            ),
                            seen.to_string(),
                        )
                    })?;
                let _ = writeln!(ctx.log, "  -> notification answered: {}", rst.summary);
                let Some(quiet) = self.quiet else {
                    return Ok(());
                };
                return quiet_after(rig, ctx, path, &token, quiet).await;
            }
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
            quiet_after(rig, ctx, path, &token, quiet).await
        })
    }
}

/// Checks that for `quiet` from now the device sends no notification with
/// `token` (RFC 7641 §3.6: the cancelled observer is removed).
pub(super) async fn quiet_after(
    rig: &Session,
    ctx: &mut CaseContext,
    path: Path,
    token: &[u8],
    quiet: Duration,
) -> Result<(), crate::steps::StepError> {
    let from = rig.server.log_len();
    tokio::time::sleep(quiet).await;
    let log = rig.server.log_since(from);
    let late: Vec<&LogEntry> = log
        .iter()
        .filter(|e| is_notification_of(e, token))
        .collect();
    if let Some(first) = late.first() {
        return Err(device(
            format!("no notification of {path} within {quiet:?} after the cancel"),
            format!(
                "{} notification(s), the first: {}",
                late.len(),
                first.summary
            ),
        ));
    }
    let _ = writeln!(ctx.log, "  -> no notification for {quiet:?}");
    Ok(())
}

/// What came instead of a notification answered by the server's RST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NoReset {
    #[error("no notification with the observation's token")]
    NoNotification,
    #[error("{0} notification(s) and no RST answering one")]
    Unanswered(usize),
}

/// Waits up to `within` for a notification with `token` logged after
/// entry `from` and the server's RST to it; returns the RST, or what was
/// seen instead.
async fn await_reset(
    rig: &Session,
    from: usize,
    token: &[u8],
    within: Duration,
) -> Result<LogEntry, NoReset> {
    await_logged(rig, from, within, |log| reset_of_notification(log, token))
        .await
        .map_err(|log| {
            match log.iter().filter(|e| is_notification_of(e, token)).count() {
                0 => NoReset::NoNotification,
                n => NoReset::Unanswered(n),
            }
        })
}

/// The server's RST to a notification with `token` in `log`: an empty
/// Reset carrying that notification's message id (RFC 7252 §4.2, §4.3).
fn reset_of_notification<'a>(log: &'a [LogEntry], token: &[u8]) -> Option<&'a LogEntry> {
    log.iter()
        .filter(|e| is_notification_of(e, token))
        .filter_map(|n| Some((n.peer, wire::decode(&n.bytes).ok()?.header.message_id)))
        .find_map(|(peer, mid)| {
            log.iter().find(|e| {
                e.direction == Direction::Out && e.peer == peer && is_reset(&e.bytes, mid)
            })
        })
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

/// Whether `bytes` is an empty RST with message id `mid`: the 4-byte
/// header alone, type bits 11 (RFC 7252 §3, §4.2).
fn is_reset(bytes: &[u8], mid: u16) -> bool {
    bytes.len() == 4 && bytes[0] & 0x30 == 0x30 && u16::from_be_bytes([bytes[2], bytes[3]]) == mid
}

/// Whether `entry` is a notification the device sent with `token`: a
/// response carrying the Observe option (RFC 7641 §4.2).
pub(super) fn is_notification_of(entry: &LogEntry, token: &[u8]) -> bool {
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
    use crate::steps::logged::entry;
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

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

    #[test]
    fn only_a_reset_with_the_notifications_message_id_answers_it() {
        let content = MessageClass::Response(ResponseType::Content);
        let mut note = packet(content, 3, Some(7), "");
        note.header.message_id = 0x1234;
        let mut other = packet(content, 4, Some(7), "");
        other.header.message_id = 0x4321;
        let rst = |mid: u16| {
            let mut p = Packet::new();
            p.header.set_type(MessageType::Reset);
            p.header.code = MessageClass::Empty;
            p.header.message_id = mid;
            entry(Direction::Out, &p)
        };
        let log = [
            entry(Direction::In, &other),
            rst(0x4321),
            entry(Direction::In, &note),
        ];
        assert!(
            reset_of_notification(&log, &[3]).is_none(),
            "the RST answers the other observation's notification"
        );
        let mut log = log.to_vec();
        log.push(rst(0x1234));
        let found = reset_of_notification(&log, &[3]).unwrap();
        assert!(found.summary.starts_with("RST"), "{}", found.summary);
    }
}
