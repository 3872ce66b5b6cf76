//! The Bootstrap-Server core against LwM2M 1.1.1 Core §6.1 / Transport
//! §6.1 (Bootstrap-Request `POST /bs?ep=..&pct=..`, Bootstrap-Finish) and
//! RFC 7252 (§5.4.1 critical options, §4.5 duplicates): hand-built
//! datagrams in, every answer checked byte for byte.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::bootstrap::{
    BootstrapEvent, BootstrapOp, BootstrapScript, BootstrapServer, BootstrapServerConfig,
};
use lwm2m::format::{ContentFormat, Record};
use lwm2m::{Path, Value};

use crate::support::registry;

const CLIENT: &str = "192.0.2.20:56830";

fn client() -> SocketAddr {
    CLIENT.parse().unwrap()
}

fn bootstrap_server(script: BootstrapScript) -> BootstrapServer {
    let mut s = BootstrapServer::new(BootstrapServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 3,
    });
    s.set_script("meter-1", script);
    s
}

fn write_server_lifetime() -> BootstrapOp {
    BootstrapOp::Write {
        path: Path::instance(1, 0),
        records: vec![
            Record::new(Path::resource(1, 0, 0), Value::Integer(101)),
            Record::new(Path::resource(1, 0, 1), Value::Integer(300)),
        ],
    }
}

/// `POST /bs` with token 0x0a and the given Uri-Query; `extra` options
/// (number, value) are added as they are.
fn bootstrap_request(
    ty: MessageType,
    mid: u16,
    query: &[&str],
    extra: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(ty);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![0x0a]);
    p.add_option(CoapOption::UriPath, b"bs".to_vec());
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    for (number, value) in extra {
        p.add_option(CoapOption::from(*number), value.clone());
    }
    p.to_bytes().unwrap()
}

fn feed(s: &mut BootstrapServer, now: Instant, datagram: &[u8]) -> Vec<Vec<u8>> {
    s.handle_datagram(now, client(), datagram);
    drain(s)
}

fn drain(s: &mut BootstrapServer) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| {
            assert_eq!(t.destination, client());
            t.payload
        })
        .collect()
}

fn events(s: &mut BootstrapServer) -> Vec<BootstrapEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// `ACK <code>` on `mid`, token 0x0a, optionally with a diagnostic payload.
fn ack(code: u8, mid: u16, diagnostic: Option<&str>) -> Vec<u8> {
    let mut v = vec![0x61, code, (mid >> 8) as u8, mid as u8, 0x0a];
    if let Some(d) = diagnostic {
        v.push(0xff);
        v.extend(d.as_bytes());
    }
    v
}

/// An answer (piggybacked in the ACK) to the request `to`.
fn answer(to: &Packet, code: ResponseType, diagnostic: &str) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.code = MessageClass::Response(code);
    p.header.message_id = to.header.message_id;
    p.set_token(to.get_token().to_vec());
    p.payload = diagnostic.as_bytes().to_vec();
    p.to_bytes().unwrap()
}

/// LwM2M 1.1.1 Transport §6.1 (Table 6.1-1): Bootstrap-Request is
/// `POST /bs?ep={Endpoint Client Name}&pct={Preferred Content Format}`,
/// answered 2.04 Changed; Core §6.1.5: `pct` (LwM2M 1.1) names the format
/// the client prefers for the Bootstrap-Server's payloads, used when the
/// server can write it. `pct=112` makes the first Bootstrap-Write SenML
/// CBOR; `pct=11543` (LwM2M JSON, which this server does not write) leaves
/// the default, TLV; without `pct` the default. A request without `ep`, or
/// with a `pct` that is no number, is 4.00 Bad Request.
#[test]
fn a_bootstrap_request_is_answered_2_04_and_pct_chooses_the_write_format() {
    for (pct, format) in [
        (Some("pct=112"), ContentFormat::SenmlCbor),
        (Some("pct=11543"), ContentFormat::Tlv),
        (None, ContentFormat::Tlv),
    ] {
        let mut s = bootstrap_server(BootstrapScript::new().then(write_server_lifetime()));
        let now = Instant::now();
        let mut query = vec!["ep=meter-1"];
        query.extend(pct);
        let out = feed(
            &mut s,
            now,
            &bootstrap_request(MessageType::Confirmable, 0x100, &query, &[]),
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], ack(0x44, 0x100, None), "{pct:?}: 2.04 Changed");
        let write = Packet::from_bytes(&out[1]).unwrap();
        assert_eq!(write.header.code, MessageClass::Request(RequestType::Put));
        let cf = write.get_first_option(CoapOption::ContentFormat).unwrap();
        assert_eq!(
            cf.as_slice(),
            &format.code().to_be_bytes()[usize::from(format.code() < 256)..],
            "{pct:?}"
        );
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [BootstrapEvent::Requested { endpoint, .. }] if endpoint == "meter-1"),
            "{ev:?}"
        );
    }
    let mut s = bootstrap_server(BootstrapScript::new().then(BootstrapOp::Finish));
    let now = Instant::now();
    let no_ep = bootstrap_request(MessageType::Confirmable, 0x101, &["pct=112"], &[]);
    assert_eq!(
        feed(&mut s, now, &no_ep),
        vec![ack(0x80, 0x101, Some("Bootstrap-Request without ep"))]
    );
    let bad_pct = bootstrap_request(
        MessageType::Confirmable,
        0x102,
        &["ep=meter-1", "pct=cbor"],
        &[],
    );
    assert_eq!(
        feed(&mut s, now, &bad_pct),
        vec![ack(
            0x80,
            0x102,
            Some("pct=\"cbor\" is not a content format number")
        )]
    );
    assert!(!s.in_session("meter-1"));
}

/// RFC 7252 §5.4.1: a request carrying a critical option the server does
/// not implement must not be processed as if it were absent — a CON gets
/// 4.02 Bad Option, a NON is rejected with Reset. If-Match (1) and Block1
/// (27: a Bootstrap-Request has no body to assemble) are such options
/// here; an unknown elective option (even number, 2048) is ignored (§5.4.1)
/// and the request served.
#[test]
fn a_bootstrap_request_with_an_unknown_critical_option_gets_4_02() {
    let mut s = bootstrap_server(BootstrapScript::new().then(BootstrapOp::Finish));
    let now = Instant::now();
    let q = ["ep=meter-1"];
    let if_match = bootstrap_request(MessageType::Confirmable, 0x200, &q, &[(1, vec![0xab])]);
    assert_eq!(
        feed(&mut s, now, &if_match),
        vec![ack(
            0x82,
            0x200,
            Some("critical option 1 is not understood (RFC 7252 §5.4.1)")
        )]
    );
    // Block1 0/0/16 (a one-block body): still not implemented for /bs.
    let block1 = bootstrap_request(MessageType::Confirmable, 0x201, &q, &[(27, vec![0x00])]);
    assert_eq!(
        feed(&mut s, now, &block1),
        vec![ack(
            0x82,
            0x201,
            Some("critical option 27 is not understood (RFC 7252 §5.4.1)")
        )]
    );
    let non = bootstrap_request(MessageType::NonConfirmable, 0x202, &q, &[(5, vec![])]);
    assert_eq!(
        feed(&mut s, now, &non),
        vec![vec![0x70, 0x00, 0x02, 0x02]],
        "RST"
    );
    assert!(events(&mut s).is_empty());
    assert!(!s.in_session("meter-1"), "nothing was acted on");
    let elective = bootstrap_request(MessageType::Confirmable, 0x203, &q, &[(2048, vec![1])]);
    let out = feed(&mut s, now, &elective);
    assert_eq!(out[0], ack(0x44, 0x203, None));
    assert!(s.in_session("meter-1"));
}

/// LwM2M 1.1.1 Core §6.1.5 / §6.1.3: a client that sends a new
/// Bootstrap-Request has given up on the session it had; the server starts
/// over from the first step, and the old session's request is no longer
/// waited on (a late answer to it is ignored). A retransmission of the
/// same request (same message id within EXCHANGE_LIFETIME, RFC 7252 §4.5)
/// is not a new request: the cached 2.04 goes back and nothing restarts.
#[test]
fn a_new_bootstrap_request_restarts_the_session_a_retransmission_does_not() {
    let script = BootstrapScript::new()
        .then(BootstrapOp::Delete { path: Path::ROOT })
        .then(BootstrapOp::Finish);
    let mut s = bootstrap_server(script);
    let t0 = Instant::now();
    let first = bootstrap_request(MessageType::Confirmable, 0x300, &["ep=meter-1"], &[]);
    let out = feed(&mut s, t0, &first);
    assert_eq!(out[0], ack(0x44, 0x300, None));
    let old_delete = Packet::from_bytes(&out[1]).unwrap();
    assert_eq!(
        old_delete.header.code,
        MessageClass::Request(RequestType::Delete)
    );
    assert_eq!(events(&mut s).len(), 1);

    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        feed(&mut s, t1, &first),
        vec![ack(0x44, 0x300, None)],
        "a retransmission gets the cached 2.04 and no new Bootstrap-Delete"
    );
    assert!(events(&mut s).is_empty());

    let again = bootstrap_request(MessageType::Confirmable, 0x301, &["ep=meter-1"], &[]);
    let out = feed(&mut s, t1, &again);
    assert_eq!(out[0], ack(0x44, 0x301, None));
    let new_delete = Packet::from_bytes(&out[1]).unwrap();
    assert_eq!(
        new_delete.header.code,
        MessageClass::Request(RequestType::Delete)
    );
    assert_ne!(new_delete.header.message_id, old_delete.header.message_id);
    assert!(matches!(
        &events(&mut s)[..],
        [BootstrapEvent::Requested { .. }]
    ));

    // The old Delete's answer: no longer waited on.
    assert!(feed(&mut s, t1, &answer(&old_delete, ResponseType::Deleted, "")).is_empty());
    assert!(events(&mut s).is_empty());
    // The new one's: the session goes on with Bootstrap-Finish.
    let out = feed(&mut s, t1, &answer(&new_delete, ResponseType::Deleted, ""));
    let finish = Packet::from_bytes(&out[0]).unwrap();
    assert_eq!(finish.header.code, MessageClass::Request(RequestType::Post));
    let ev = events(&mut s);
    assert!(
        matches!(
            &ev[..],
            [BootstrapEvent::OpCompleted {
                index: 0,
                code: 202,
                ..
            }]
        ),
        "{ev:?}"
    );
}

/// LwM2M 1.1.1 Transport §6.1: Bootstrap-Finish is `POST /bs`, answered
/// 2.04 Changed, or 4.06 Not Acceptable when the configuration is
/// inconsistent (Core §6.1.7.6), or 4.00. The datagram is a CON POST with
/// Uri-Path "bs" and nothing else; 2.04 finishes the session, 4.06 fails
/// it naming the operation, what was expected and the client's diagnostic.
#[test]
fn bootstrap_finish_is_post_bs_and_its_answer_decides_the_session() {
    for (code, diagnostic) in [
        (ResponseType::Changed, ""),
        (
            ResponseType::NotAcceptable,
            "no usable LwM2M Server account",
        ),
    ] {
        let mut s = bootstrap_server(BootstrapScript::new().then(BootstrapOp::Finish));
        let now = Instant::now();
        let out = feed(
            &mut s,
            now,
            &bootstrap_request(MessageType::Confirmable, 0x400, &["ep=meter-1"], &[]),
        );
        let finish = &out[1];
        // CON, TKL 4, 0.02 POST; the token; Uri-Path (11) "bs"; no payload.
        assert_eq!(&finish[..2], &[0x44, 0x02]);
        assert_eq!(&finish[8..], &[0xb2, b'b', b's']);
        let finish = Packet::from_bytes(finish).unwrap();
        let _ = events(&mut s);
        // The answer comes later than the request was sent; the session's
        // end names when Finish was sent, the bound for a Register made
        // with the new configuration.
        let later = now + std::time::Duration::from_millis(5);
        assert!(feed(&mut s, later, &answer(&finish, code, diagnostic)).is_empty());
        let ev = events(&mut s);
        match code {
            ResponseType::Changed => assert_eq!(
                &ev[1..],
                &[BootstrapEvent::Finished {
                    endpoint: "meter-1".into(),
                    finish_sent: Some(now),
                }]
            ),
            _ => assert_eq!(
                ev,
                vec![BootstrapEvent::Failed {
                    endpoint: "meter-1".into(),
                    index: 0,
                    op: "Bootstrap-Finish".into(),
                    expected: vec![204],
                    got: Some(406),
                    reason: format!("answered 4.06: {diagnostic}"),
                }]
            ),
        }
        assert!(!s.in_session("meter-1"));
    }
}
