//! What the servers saw while a step failed. "Timed out waiting for the
//! device to register" says nothing a lab engineer can act on; the DTLS
//! handshake the device failed meanwhile, with the PSK identity it offered,
//! does. A failure quotes the servers' reports that bear on it, gathered
//! from the event histories and message logs of the rig's own LwM2M and
//! bootstrap servers since the previous step began.
//!
//! Each rig has its own servers and one device, so every refusal, handshake
//! failure or undecodable datagram on them bears on that device, whatever
//! address it came from; only requests and responses of other endpoints
//! are left out. Descriptions come from `server::describe_*`, which show a
//! PSK identity at most, never a key.

use lwm2m::bootstrap::BootstrapEvent;
use lwm2m::server::{SecurityEvent, ServerEvent};
use server::{BootstrapServerEvent, Direction, LogEntry};

use crate::session::Session;
use crate::steps::context::CaseContext;

/// How many distinct reports a failure quotes (the newest).
const MAX_ITEMS: usize = 12;

/// How many of the most telling reports go into the one-line message.
const HEADLINE_ITEMS: usize = 2;

/// How telling a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Weight {
    /// Says why the device did not get where the step waited for it: a
    /// refused handshake, a 4.03, a registration under another name, a
    /// failed bootstrap exchange.
    Cause,
    /// Worth knowing: an RST, a 4.xx/5.xx answer, a dropped or undecodable
    /// datagram, an expired registration.
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub weight: Weight,
    pub text: String,
    /// How many times the same report came.
    pub count: usize,
}

impl Item {
    fn line(&self) -> String {
        match self.count {
            1 => self.text.clone(),
            n => format!("{} ({n} times)", self.text),
        }
    }
}

/// The reports of one failure, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Evidence {
    items: Vec<Item>,
}

impl Evidence {
    /// What the rig's servers reported since the previous step began.
    pub(crate) fn gather(rig: &Session, ctx: &CaseContext) -> Evidence {
        let ep = rig.endpoint.as_str();
        let since = &ctx.previous_step;
        let mut reports = Vec::new();
        for (_, event) in rig.server.events_since(since.seq) {
            reports.extend(server_event(ep, &event));
        }
        for entry in rig.server.log_since(since.log) {
            reports.extend(log_entry("", &entry));
        }
        if let Some(bs) = &rig.bootstrap {
            for (_, event) in bs.events_since(since.bootstrap_seq) {
                reports.extend(bootstrap_event(&event));
            }
            for entry in bs.log_since(since.bootstrap_log) {
                reports.extend(log_entry("bootstrap server: ", &entry));
            }
        }
        // A link that loses everything is why nothing arrived: newest, so
        // the headline names it first.
        if let Some(cause) = rig.link.as_ref().and_then(|l| l.cause()) {
            reports.push((Weight::Cause, cause));
        }
        Evidence::from_reports(reports)
    }

    /// Collapses repeats (a device retrying its handshake) into one item
    /// with a count, kept where it last happened, and keeps the newest.
    pub(crate) fn from_reports(reports: Vec<(Weight, String)>) -> Evidence {
        let mut items: Vec<Item> = Vec::new();
        for (weight, text) in reports {
            let count = match items.iter().position(|i| i.text == text) {
                Some(at) => items.remove(at).count + 1,
                None => 1,
            };
            items.push(Item {
                weight,
                text,
                count,
            });
        }
        let skip = items.len().saturating_sub(MAX_ITEMS);
        items.drain(..skip);
        Evidence { items }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every report, one line each, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.items.iter().map(Item::line).collect()
    }

    /// The most telling reports for a one-line message: the newest causes,
    /// or else the newest other report.
    pub(crate) fn headline(&self) -> Option<String> {
        let causes: Vec<String> = self
            .items
            .iter()
            .rev()
            .filter(|i| i.weight == Weight::Cause)
            .take(HEADLINE_ITEMS)
            .map(Item::line)
            .collect();
        if !causes.is_empty() {
            return Some(causes.join("; "));
        }
        self.items.last().map(Item::line)
    }
}

fn security_event(prefix: &str, event: &SecurityEvent) -> Option<(Weight, String)> {
    let weight = match event {
        SecurityEvent::HandshakeCompleted { .. } => return None,
        SecurityEvent::HandshakeFailed { .. } => Weight::Cause,
        SecurityEvent::SessionClosed { .. } | SecurityEvent::Dropped { .. } => Weight::Context,
    };
    Some((
        weight,
        format!("{prefix}{}", server::describe_security_event(event)),
    ))
}

/// A report of the LwM2M server that bears on endpoint `ep`.
pub(crate) fn server_event(ep: &str, event: &ServerEvent) -> Option<(Weight, String)> {
    let text = || server::describe_event(event);
    match event {
        ServerEvent::Security(e) => security_event("", e),
        ServerEvent::Forbidden { .. } => Some((Weight::Cause, text())),
        ServerEvent::Registered(r) | ServerEvent::Updated(r) if r.endpoint != ep => Some((
            Weight::Cause,
            format!("under another endpoint name than {ep}: {}", text()),
        )),
        ServerEvent::Malformed { .. } => Some((Weight::Context, text())),
        ServerEvent::Expired { endpoint } | ServerEvent::Deregistered { endpoint }
            if endpoint == ep =>
        {
            Some((Weight::Context, text()))
        }
        // A Reset shows in the message log (with notifications' too).
        ServerEvent::Response {
            endpoint, result, ..
        } if endpoint == ep => match result {
            Ok(r) if r.code >= 400 => Some((Weight::Context, text())),
            Err(lwm2m::server::RequestError::Reset) | Ok(_) => None,
            Err(_) => Some((Weight::Context, text())),
        },
        _ => None,
    }
}

/// A report of the bootstrap server.
pub(crate) fn bootstrap_event(event: &BootstrapServerEvent) -> Option<(Weight, String)> {
    const PREFIX: &str = "bootstrap server: ";
    match event {
        BootstrapServerEvent::Security(e) => security_event(PREFIX, e),
        BootstrapServerEvent::Forbidden {
            peer,
            endpoint,
            identity,
            reason,
        } => Some((
            Weight::Cause,
            format!(
                "{PREFIX}4.03 Forbidden: Bootstrap-Request of {endpoint} from {peer} authenticated as {}: {reason}",
                identity
                    .as_deref()
                    .map(|i| format!("PSK identity {i:?}"))
                    .unwrap_or_else(|| "no identity".into())
            ),
        )),
        BootstrapServerEvent::Bootstrap(e) => {
            let weight = match e {
                BootstrapEvent::Failed { .. } | BootstrapEvent::Rejected { .. } => Weight::Cause,
                BootstrapEvent::Malformed { .. } => Weight::Context,
                _ => return None,
            };
            Some((
                weight,
                format!("{PREFIX}{}", server::describe_bootstrap_event(e)),
            ))
        }
    }
}

/// A datagram of the message log worth quoting: an RST from the device, or
/// a 4.xx/5.xx the server answered it with (a 4.03 is quoted from its event,
/// with the identity). Message ids and tokens are left out, so that the same
/// answer repeated reads as one report with a count.
pub(crate) fn log_entry(prefix: &str, entry: &LogEntry) -> Option<(Weight, String)> {
    let mut words = entry.summary.split_whitespace();
    let kind = words.next()?;
    let code = words.next().unwrap_or_default();
    let summary = || {
        entry
            .summary
            .split_whitespace()
            .filter(|w| !w.starts_with("mid=") && !w.starts_with("tok="))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match entry.direction {
        Direction::In if kind == "RST" => Some((
            Weight::Context,
            format!("{prefix}{} sent {}", entry.peer, summary()),
        )),
        Direction::Out if (code.starts_with("4.") || code.starts_with("5.")) && code != "4.03" => {
            Some((
                Weight::Context,
                format!("{prefix}the server answered {} {}", entry.peer, summary()),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn handshake_failed(identity: &str) -> ServerEvent {
        ServerEvent::Security(SecurityEvent::HandshakeFailed {
            peer: peer(),
            identity: Some(identity.into()),
            reason: "unknown PSK identity".into(),
            wrong_key: false,
            unknown_identity: true,
        })
    }

    fn entry(direction: Direction, summary: &str) -> LogEntry {
        LogEntry {
            index: 0,
            time: chrono::Utc::now(),
            direction,
            peer: peer(),
            summary: summary.into(),
            bytes: vec![0x60],
            send_error: None,
        }
    }

    #[test]
    fn a_failed_handshake_is_a_cause_naming_the_identity() {
        let (weight, text) = server_event("meter-1", &handshake_failed("intruder")).unwrap();
        assert_eq!(weight, Weight::Cause);
        assert!(text.contains("\"intruder\"") && text.contains("unknown PSK identity"));
    }

    #[test]
    fn only_this_endpoints_requests_count_but_any_refusal_does() {
        let forbidden = ServerEvent::Forbidden {
            peer: peer(),
            endpoint: "someone-else".into(),
            identity: Some("meter-1".into()),
            operation: "Register".into(),
            reason: "identity bound to meter-1".into(),
        };
        assert_eq!(
            server_event("meter-1", &forbidden).unwrap().0,
            Weight::Cause
        );
        let expired = ServerEvent::Expired {
            endpoint: "other".into(),
        };
        assert_eq!(server_event("meter-1", &expired), None);
        let expired = ServerEvent::Expired {
            endpoint: "meter-1".into(),
        };
        assert_eq!(
            server_event("meter-1", &expired).unwrap().0,
            Weight::Context
        );
    }

    #[test]
    fn the_log_gives_resets_and_error_answers_without_ids() {
        let rst = log_entry("", &entry(Direction::In, "RST mid=0x0001")).unwrap();
        assert_eq!(rst, (Weight::Context, "127.0.0.1:40000 sent RST".into()));
        let answer = log_entry(
            "",
            &entry(Direction::Out, "ACK 4.04 Not Found mid=0x0002 tok=0a0b"),
        )
        .unwrap();
        assert_eq!(
            answer.1,
            "the server answered 127.0.0.1:40000 ACK 4.04 Not Found"
        );
        assert_eq!(
            log_entry("", &entry(Direction::Out, "ACK 4.03 Forbidden mid=0x3")),
            None,
            "a 4.03 is quoted from its event"
        );
        assert_eq!(
            log_entry("", &entry(Direction::Out, "ACK 2.04 Changed mid=0x4")),
            None
        );
        assert_eq!(
            log_entry("", &entry(Direction::In, "CON POST mid=0x5 /rd")),
            None
        );
    }

    #[test]
    fn repeats_collapse_and_the_headline_prefers_causes() {
        let e = Evidence::from_reports(vec![
            (
                Weight::Cause,
                "handshake failed (PSK identity \"x\")".into(),
            ),
            (Weight::Context, "sent RST".into()),
            (
                Weight::Cause,
                "handshake failed (PSK identity \"x\")".into(),
            ),
            (Weight::Context, "answered 4.00".into()),
        ]);
        assert_eq!(
            e.lines(),
            [
                "sent RST",
                "handshake failed (PSK identity \"x\") (2 times)",
                "answered 4.00"
            ]
        );
        assert_eq!(
            e.headline().unwrap(),
            "handshake failed (PSK identity \"x\") (2 times)"
        );
        let e = Evidence::from_reports(vec![(Weight::Context, "sent RST".into())]);
        assert_eq!(e.headline().unwrap(), "sent RST");
        assert_eq!(Evidence::default().headline(), None);
    }

    #[test]
    fn only_the_newest_reports_are_kept() {
        let reports = (0..40).map(|i| (Weight::Context, format!("report {i}")));
        let e = Evidence::from_reports(reports.collect());
        assert_eq!(e.lines().len(), MAX_ITEMS);
        assert_eq!(e.lines().last().unwrap(), "report 39");
    }
}
