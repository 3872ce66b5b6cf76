//! Human-readable one-liners for server events and requests, used by
//! `meterbench serve` and in error messages.

use lwm2m::bootstrap::BootstrapEvent;
use lwm2m::format::Link;
use lwm2m::server::composite::path_list;
use lwm2m::server::{
    Attributes, Content, DmRequest, Registration, Response, SecurityEvent, ServerEvent, WriteMode,
};

/// A CoAP code as `class.detail` (RFC 7252 §3), from the `205` form `Response::code` uses.
pub fn code_text(code: u16) -> String {
    format!("{}.{:02}", code / 100, code % 100)
}

/// `</1/0>,</3/0>;ver=1.1` — the object list as the client sent it (RFC 6690 link format).
pub fn links_text<L: LinkList + ?Sized>(links: &L) -> String {
    links.link_text()
}

/// What [`links_text`] writes: links as a response carried them, or a
/// registration's object list, which the server holds compactly
/// ([`lwm2m::format::ObjectLinks`]).
pub trait LinkList {
    fn link_text(&self) -> String;
}

impl LinkList for [Link] {
    fn link_text(&self) -> String {
        lwm2m::format::link::encode_links(self)
    }
}

impl LinkList for Vec<Link> {
    fn link_text(&self) -> String {
        lwm2m::format::link::encode_links(self)
    }
}

impl LinkList for lwm2m::format::ObjectLinks {
    fn link_text(&self) -> String {
        self.to_string()
    }
}

fn registration_text(r: &Registration) -> String {
    let mut s = format!(
        "{} at {} lifetime {}s lwm2m {} binding {}",
        r.endpoint,
        r.location,
        r.lifetime.as_secs(),
        r.lwm2m_version,
        r.binding
    );
    if r.queue_mode {
        s.push_str(" queue-mode");
    }
    s.push_str(&format!(
        " from {} objects {}",
        r.peer,
        links_text(&r.objects)
    ));
    s
}

/// Security object (/0) Secret Key and SMS Binding Secret Key (Core §E.1
/// resources 5 and 8): never shown.
fn is_secret(path: &lwm2m::Path) -> bool {
    path.object_id() == Some(0) && matches!(path.resource_id(), Some(5 | 8))
}

/// `path=value` for each record, space-separated, a secret's value shown
/// as `<redacted>` ([`is_secret`]): what a notification and a Send log.
fn values_text(records: &[lwm2m::Record]) -> String {
    let values: Vec<String> = records
        .iter()
        .map(|r| {
            if is_secret(&r.path) {
                format!("{}=<redacted>", r.path)
            } else {
                format!("{}={}", r.path, r.value)
            }
        })
        .collect();
    values.join(" ")
}

/// `2.05 Content, 3 records (tlv)` and the like.
pub fn describe_response(r: &Response) -> String {
    let mut s = code_text(r.code);
    match &r.content {
        Content::None => {}
        Content::Records(records) => {
            s.push_str(&format!(", {} record(s)", records.len()));
            for rec in records.iter().take(8) {
                if is_secret(&rec.path) {
                    s.push_str(&format!(" {}=<redacted>", rec.path));
                    continue;
                }
                s.push_str(&format!(" {}={}", rec.path, rec.value));
            }
            if records.len() > 8 {
                s.push_str(" ...");
            }
        }
        Content::Links(links) => s.push_str(&format!(", links {}", links_text(links))),
    }
    if let Some(f) = r.format {
        s.push_str(&format!(" ({})", f.name()));
    }
    s
}

/// One line per event, e.g.
/// `registered meter-1 at /rd/1a2b lifetime 60s lwm2m 1.1 binding U from 127.0.0.1:40000 objects </1/0>,</3/0>`.
pub fn describe_event(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Registered(r) => format!("registered {}", registration_text(r)),
        ServerEvent::Updated(r) => format!("updated {}", registration_text(r)),
        ServerEvent::Deregistered { endpoint } => format!("deregistered {endpoint}"),
        ServerEvent::Expired { endpoint } => {
            format!("registration of {endpoint} expired (lifetime passed without Update)")
        }
        ServerEvent::Discarded { endpoint, location } => {
            format!("registration of {endpoint} at {location} discarded by the server")
        }
        ServerEvent::Response {
            id,
            endpoint,
            result,
        } => match result {
            Ok(r) => format!(
                "response #{} from {endpoint}: {}",
                id.0,
                describe_response(r)
            ),
            Err(e) => format!("request #{} to {endpoint} failed: {e}", id.0),
        },
        ServerEvent::Notification {
            observation,
            endpoint,
            path,
            records,
        } => {
            format!(
                "notification #{} from {endpoint} for {path}: {}",
                observation.0,
                values_text(records)
            )
        }
        ServerEvent::Malformed { peer, reason } => {
            format!("malformed datagram from {peer}: {reason}")
        }
        ServerEvent::PushProgress {
            id,
            endpoint,
            progress,
        } => format!("request #{} to {endpoint}: {progress}", id.0),
        ServerEvent::Forbidden {
            peer,
            endpoint,
            identity,
            operation,
            reason,
        } => format!(
            "4.03 Forbidden: {operation} of {endpoint} from {peer} authenticated as {}: {reason}",
            identity_text(identity.as_deref())
        ),
        ServerEvent::Security(e) => describe_security_event(e),
        ServerEvent::Sent { endpoint, records } => {
            format!(
                "Send from {endpoint} (answered 2.04): {}",
                values_text(records)
            )
        }
        ServerEvent::Queue(e) => e.to_string(),
    }
}

/// One line per bootstrap server event, e.g. `bootstrap of meter-1: step 1
/// Bootstrap-Write /0/1 answered 2.04`. Written values are never shown.
pub fn describe_bootstrap_event(event: &BootstrapEvent) -> String {
    match event {
        BootstrapEvent::Requested {
            endpoint,
            peer,
            preferred_format,
        } => format!(
            "Bootstrap-Request from {endpoint} at {peer}{}",
            preferred_format
                .map(|f| format!(" (prefers {})", f.name()))
                .unwrap_or_default()
        ),
        BootstrapEvent::Rejected {
            peer,
            endpoint,
            reason,
        } => format!(
            "Bootstrap-Request from {peer} ({}) refused with 4.00: {reason}",
            endpoint.as_deref().unwrap_or("no endpoint name")
        ),
        BootstrapEvent::OpCompleted {
            endpoint,
            index,
            op,
            code,
            ..
        } => format!(
            "bootstrap of {endpoint}: step {index} {op} answered {}",
            code_text(*code)
        ),
        BootstrapEvent::Finished { endpoint, .. } => format!("bootstrap of {endpoint} finished"),
        BootstrapEvent::Failed {
            endpoint,
            index,
            op,
            expected,
            got,
            reason,
        } => format!(
            "bootstrap of {endpoint} FAILED at step {index} {op}: {}",
            bootstrap_outcome(expected, *got, reason)
        ),
        BootstrapEvent::Malformed { peer, reason } => {
            format!("malformed datagram from {peer}: {reason}")
        }
    }
}

fn identity_text(identity: Option<&str>) -> String {
    match identity {
        Some(id) => authenticated_as(id),
        None => "no identity (plain CoAP)".into(),
    }
}

/// `PSK identity "meter-1"`, or for a certificate session
/// `certificate CN "meter-1"`.
fn authenticated_as(identity: &str) -> String {
    match identity.strip_prefix(crate::credentials::CERTIFICATE_IDENTITY_PREFIX) {
        Some(cn) => format!("certificate CN {cn:?}"),
        None => format!("PSK identity {identity:?}"),
    }
}

/// One line for a DTLS report: `DTLS handshake with 127.0.0.1:40000 failed
/// (PSK identity "meter-1"): ... (wrong key)`. Never shows a key.
pub fn describe_security_event(event: &SecurityEvent) -> String {
    match event {
        SecurityEvent::HandshakeCompleted {
            peer,
            identity,
            suite,
        } => format!(
            "DTLS handshake with {peer} completed: {}, {suite}",
            authenticated_as(identity)
        ),
        SecurityEvent::HandshakeFailed {
            peer,
            identity,
            reason,
            ..
        } => format!(
            "DTLS handshake with {peer} failed ({}): {reason}",
            identity_text(identity.as_deref())
        ),
        SecurityEvent::SessionClosed {
            peer,
            identity,
            reason,
        } => format!("DTLS session with {peer} (PSK identity {identity:?}) closed: {reason}"),
        SecurityEvent::Dropped { peer, reason } => {
            format!("DTLS datagram from {peer} dropped: {reason}")
        }
    }
}

/// `Read /3/0/0 (tlv)`, `Execute /3/0/4`, ... for error messages and logs.
pub fn describe_request(request: &DmRequest) -> String {
    let fmt = |f: &Option<lwm2m::ContentFormat>| {
        f.map(|f| format!(" ({})", f.name())).unwrap_or_default()
    };
    match request {
        DmRequest::Read { path, format } => format!("Read {path}{}", fmt(format)),
        DmRequest::Write {
            path,
            mode,
            records,
            format,
        } => {
            let m = match mode {
                WriteMode::Replace => "replace",
                WriteMode::PartialUpdate => "partial update",
            };
            format!(
                "Write {path} {m} of {} record(s){}",
                records.len(),
                fmt(format)
            )
        }
        DmRequest::Execute { path, arguments } => match arguments {
            Some(a) => format!("Execute {path} args {a:?}"),
            None => format!("Execute {path}"),
        },
        DmRequest::Discover { path } => format!("Discover {path}"),
        DmRequest::Create {
            object,
            records,
            format,
        } => {
            format!(
                "Create in {object} with {} record(s){}",
                records.len(),
                fmt(format)
            )
        }
        DmRequest::Delete { path } => format!("Delete {path}"),
        DmRequest::WriteAttributes { path, attributes } => {
            format!("Write-Attributes {path}{}", attributes_text(attributes))
        }
        DmRequest::Observe { path, format } => format!("Observe {path}{}", fmt(format)),
        DmRequest::CancelObserve { path } => format!("Cancel-Observe {path}"),
        DmRequest::ReadComposite { paths, format } => {
            format!("Read-Composite {}{}", path_list(paths), fmt(format))
        }
        DmRequest::WriteComposite { records, format } => format!(
            "Write-Composite of {}{}",
            path_list(&records.iter().map(|r| r.path).collect::<Vec<_>>()),
            fmt(format)
        ),
        DmRequest::ObserveComposite { paths, format } => {
            format!("Observe-Composite {}{}", path_list(paths), fmt(format))
        }
        DmRequest::CancelObserveComposite { paths } => {
            format!("Cancel Observation-Composite {}", path_list(paths))
        }
        DmRequest::WriteBlockwise {
            path,
            format,
            body,
            szx,
        } => format!(
            "Block1 Write {path} of {} bytes ({}) in blocks of {}",
            body.len(),
            format.name(),
            16usize << (*szx).min(6)
        ),
    }
}

fn attributes_text(a: &Attributes) -> String {
    let mut s = String::new();
    let mut add = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!(
                "{}{name}={v}",
                if s.is_empty() { "?" } else { "&" }
            ));
        }
    };
    add("pmin", a.pmin.map(|v| v.to_string()));
    add("pmax", a.pmax.map(|v| v.to_string()));
    add("gt", a.gt.map(|v| v.to_string()));
    add("lt", a.lt.map(|v| v.to_string()));
    add("st", a.st.map(|v| v.to_string()));
    add("epmin", a.epmin.map(|v| v.to_string()));
    add("epmax", a.epmax.map(|v| v.to_string()));
    for name in &a.unset {
        s.push_str(if s.is_empty() { "?" } else { "&" });
        s.push_str(name);
    }
    s
}

/// Why a bootstrap step failed: a wrong answer code, or (the code being
/// one that was wanted) an answer whose content a check refused — then
/// "expected 2.05, got 2.05" would read as no reason at all.
pub fn bootstrap_outcome(expected: &[u16], got: Option<u16>, reason: &str) -> String {
    match got {
        Some(code) if expected.contains(&code) => {
            format!("answered {}, but {reason}", code_text(code))
        }
        _ => format!(
            "expected {}, got {}: {reason}",
            expected
                .iter()
                .map(|c| code_text(*c))
                .collect::<Vec<_>>()
                .join(" or "),
            got.map(code_text).unwrap_or_else(|| "no answer".into())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_registration_reads_like_the_serve_output() {
        let now = Instant::now();
        let reg = Registration {
            endpoint: "meter-1".into(),
            location: "/rd/1a2b".into(),
            lifetime: Duration::from_secs(60),
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            queue_mode: false,
            sms_number: None,
            objects: vec![Link::new("/1/0"), Link::new("/3/0")].into(),
            root: String::new(),
            content_formats: Vec::new(),
            peer: "127.0.0.1:40000".parse().unwrap(),
            registered_at: now,
            updated_at: now,
        };
        assert_eq!(
            describe_event(&ServerEvent::Registered(std::sync::Arc::new(reg))),
            "registered meter-1 at /rd/1a2b lifetime 60s lwm2m 1.1 binding U from 127.0.0.1:40000 objects </1/0>,</3/0>"
        );
    }

    /// A notification and a Send log their values alike, the Security
    /// object's Secret Key (/0/x/5, Core §E.1) never in the clear.
    #[test]
    fn notifications_and_sends_show_values_with_secrets_redacted() {
        let records = vec![
            lwm2m::Record::new("/0/0/5".parse().unwrap(), lwm2m::Value::Opaque(vec![1, 2])),
            lwm2m::Record::new("/3/0/9".parse().unwrap(), lwm2m::Value::Integer(87)),
        ];
        assert_eq!(
            describe_event(&ServerEvent::Notification {
                observation: lwm2m::server::RequestId(4),
                endpoint: "meter-1".into(),
                path: "/3/0".parse().unwrap(),
                records: records.clone(),
            }),
            "notification #4 from meter-1 for /3/0: /0/0/5=<redacted> /3/0/9=87"
        );
        assert_eq!(
            describe_event(&ServerEvent::Sent {
                endpoint: "meter-1".into(),
                records,
            }),
            "Send from meter-1 (answered 2.04): /0/0/5=<redacted> /3/0/9=87"
        );
    }

    #[test]
    fn codes_print_as_class_dot_detail() {
        assert_eq!(code_text(205), "2.05");
        assert_eq!(code_text(404), "4.04");
    }

    #[test]
    fn write_attributes_prints_its_query() {
        let req = DmRequest::WriteAttributes {
            path: "/3/0/9".parse().unwrap(),
            attributes: Attributes {
                pmin: Some(1),
                pmax: Some(10),
                ..Default::default()
            },
        };
        assert_eq!(
            describe_request(&req),
            "Write-Attributes /3/0/9?pmin=1&pmax=10"
        );
    }

    #[test]
    fn a_bootstrap_failure_on_a_wanted_code_names_the_check_not_the_codes() {
        assert_eq!(
            bootstrap_outcome(&[205], Some(205), "the answer still shows /1/0"),
            "answered 2.05, but the answer still shows /1/0"
        );
        assert_eq!(
            bootstrap_outcome(&[204, 205], Some(404), "refused"),
            "expected 2.04 or 2.05, got 4.04: refused"
        );
        assert_eq!(
            bootstrap_outcome(&[204], None, "timed out"),
            "expected 2.04, got no answer: timed out"
        );
    }
}
