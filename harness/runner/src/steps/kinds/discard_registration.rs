//! `discard_registration: {trigger: /1/*/8}`: the server forgets the
//! device's registration without telling it, then checks that the device's
//! next Update to the old location was answered 4.04 Not Found (ETS 1.1
//! int-105 "Discarded Register Update"; LwM2M 1.1 Core §6.2.2: an Update
//! to a registration the server does not know gets 4.04, and the client
//! then registers again, which the case awaits with `await: registered`).
//!
//! With `trigger` (the device's Registration Update Trigger, Core Appendix
//! E.2 resource 8), the server executes it just before it forgets, in the
//! same turn of its loop, so the Update comes at once and never reaches
//! the registration it was meant for. Without it, the step waits for the
//! periodic Update, due before the registration would have expired: the
//! lifetime it had is the step's default wait.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use lwm2m::coap::{code, options, wire};
use lwm2m::server::DmRequest;
use serde::Deserialize;
use server::{Direction, LogEntry};

use crate::case::fields::CasePath;
use crate::session::Session;
use crate::steps::error::{bench, device};
use crate::steps::exchange::await_logged;
use crate::steps::wait::{self, Wait};
use crate::steps::{instances, CaseContext, Step, StepFuture, Turn};

/// CoAP POST on the wire (RFC 7252 §12.1.1).
const POST: u8 = 0x02;
/// 4.04 Not Found on the wire (RFC 7252 §12.1.2).
const NOT_FOUND: u8 = 0x84;

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardRegistration {
    /// An executable resource the server executes just before it forgets
    /// the registration, to make the device update now (`/1/*/8`).
    pub trigger: Option<CasePath>,
}

impl Step for DiscardRegistration {
    fn describe(&self) -> String {
        match self.trigger {
            Some(t) => {
                format!("execute {t}, discard the registration, then the Update is answered 4.04")
            }
            None => "discard the registration, then the next Update is answered 4.04".into(),
        }
    }

    /// Without a trigger the Update comes when the registration would have
    /// needed it: before its lifetime ended.
    fn default_wait(&self, rig: &Session, _ctx: &CaseContext) -> Option<Wait> {
        match self.trigger {
            Some(_) => None,
            None => wait::lifetime_left(rig),
        }
    }

    fn run<'a>(
        &'a self,
        turn: Turn,
        ctx: &'a mut CaseContext,
        rig: &'a mut Session,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let trigger = match self.trigger {
                Some(path) => Some(DmRequest::Execute {
                    path: instances::resolve(rig, path)?,
                    arguments: None,
                }),
                None => None,
            };
            let from = rig.server.log_len();
            // Events from before the discard: a device may register again
            // the moment its Update is refused, even before
            // `discard_registration` returns, and that registration counts.
            let before = rig.server.current_seq();
            let location = rig
                .server
                .discard_registration(&rig.endpoint, trigger)
                .await
                .map_err(|e| bench(format!("{e}: the device must be registered first")))?;
            // The registration the device had is gone: only a new one counts.
            ctx.cursor = before;
            ctx.require_new_registration = true;
            let _ = writeln!(ctx.log, "  -> discarded {location}");
            let answer = await_not_found(rig, from, &location, turn.within)
                .await
                .map_err(|seen| {
                    device(
                        format!(
                            "an Update to {location} answered 4.04 Not Found within {:?}",
                            turn.within
                        ),
                        seen,
                    )
                })?;
            let _ = writeln!(ctx.log, "  -> Update answered: {}", answer.summary);
            Ok(())
        })
    }
}

/// Waits up to `within` for an Update (POST to `location`) logged after
/// entry `from` and the server's 4.04 to it; returns the answer, or what
/// was seen instead.
async fn await_not_found(
    rig: &Session,
    from: usize,
    location: &str,
    within: Duration,
) -> Result<LogEntry, String> {
    await_logged(rig, from, within, |log| not_found_to_update(log, location))
        .await
        .map_err(|log| match answers_to_updates(&log, location).last() {
            Some(other) => format!("the Update was answered {}", other.summary),
            None if log.iter().any(|e| is_update_to(e, location).is_some()) => {
                "an Update, and no answer from the server".into()
            }
            None => format!("no Update to {location}"),
        })
}

/// The server's 4.04 answer to an Update to `location` in `log`.
fn not_found_to_update<'a>(log: &'a [LogEntry], location: &str) -> Option<&'a LogEntry> {
    answers_to_updates(log, location)
        .into_iter()
        .find(|e| wire::decode(&e.bytes).is_ok_and(|p| u8::from(p.header.code) == NOT_FOUND))
}

/// The server's answers to Updates to `location` in `log`: a response to
/// the same peer with the request's token (RFC 7252 §5.3.2).
fn answers_to_updates<'a>(log: &'a [LogEntry], location: &str) -> Vec<&'a LogEntry> {
    let updates: Vec<(SocketAddr, Vec<u8>)> = log
        .iter()
        .filter_map(|e| is_update_to(e, location))
        .collect();
    log.iter()
        .filter(|e| e.direction == Direction::Out)
        .filter(|e| {
            wire::decode(&e.bytes).is_ok_and(|p| {
                code::is_response(p.header.code.into())
                    && updates
                        .iter()
                        .any(|(peer, token)| *peer == e.peer && p.get_token() == token.as_slice())
            })
        })
        .collect()
}

/// For an Update the device sent to `location` (POST /rd/..., LwM2M 1.1
/// Transport §6.2), its peer and token.
fn is_update_to(entry: &LogEntry, location: &str) -> Option<(SocketAddr, Vec<u8>)> {
    if entry.direction != Direction::In {
        return None;
    }
    let p = wire::decode(&entry.bytes).ok()?;
    (u8::from(p.header.code) == POST && options::uri_path_string(&p) == location)
        .then(|| (entry.peer, p.get_token().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::logged::entry;
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

    fn packet(code: MessageClass, token: u8, path: &str) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = code;
        p.set_token(vec![token]);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        p
    }

    #[test]
    fn only_a_4_04_with_the_updates_token_answers_it() {
        let post = MessageClass::Request(RequestType::Post);
        let not_found = MessageClass::Response(ResponseType::NotFound);
        let changed = MessageClass::Response(ResponseType::Changed);
        let log = vec![
            entry(Direction::In, &packet(post, 1, "/rd/7")),
            entry(Direction::Out, &packet(changed, 1, "")),
            entry(Direction::In, &packet(post, 2, "/rd/8")),
            entry(Direction::Out, &packet(not_found, 2, "")),
        ];
        assert!(
            not_found_to_update(&log, "/rd/7").is_none(),
            "the 4.04 answers an Update to another location"
        );
        let seen = answers_to_updates(&log, "/rd/7");
        assert_eq!(seen.len(), 1);
        assert!(seen[0].summary.contains("2.04"), "{}", seen[0].summary);
        let mut log = log;
        log.push(entry(Direction::In, &packet(post, 3, "/rd/7")));
        log.push(entry(Direction::Out, &packet(not_found, 3, "")));
        let found = not_found_to_update(&log, "/rd/7").unwrap();
        assert!(found.summary.contains("4.04"), "{}", found.summary);
    }
}
