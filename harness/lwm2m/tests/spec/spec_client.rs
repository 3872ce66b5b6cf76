//! The client role — what the virtual meter runs — against the LwM2M TS
//! (Discover, LwM2M 1.0.2 TS §5.4.2 / 1.1.1 Core; Transport §6.3), RFC 7641
//! (§3.6 cancellation, §4.4 sequence numbers, §4.5 confirmable
//! notifications, §4.5.1 NSTART) and RFC 7252 (§4.5 duplicates over
//! EXCHANGE_LIFETIME / NON_LIFETIME): hand-built server datagrams in, each
//! answer checked byte for byte.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m::client::{
    Client, ClientConfig, ClientEvent, ObjectStore, RegistrationState, CON_AT_LEAST_EVERY,
    CON_EVERY,
};
use lwm2m::coap::exchange::{EXCHANGE_LIFETIME, NON_LIFETIME};
use lwm2m::format::ContentFormat;
use lwm2m::{Path, Value};

use crate::support::registry;

const SERVER: &str = "127.0.0.1:5683";
const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

fn server() -> SocketAddr {
    SERVER.parse().unwrap()
}

fn store() -> ObjectStore {
    let mut s = ObjectStore::new(registry());
    s.set(Path::resource(1, 0, 0), Value::Integer(1));
    s.set(Path::resource(1, 0, 1), Value::Integer(86_400 * 7));
    s.set(Path::resource(1, 0, 7), Value::String("U".into()));
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource_instance(3, 0, 7, 0), Value::Integer(3300));
    s.set(Path::resource_instance(3, 0, 7, 1), Value::Integer(5000));
    s.set(Path::resource(3, 0, 9), Value::Integer(87));
    s.set(Path::resource(3, 0, 16), Value::String("U".into()));
    s
}

/// A client registered at `/rd/1` (its Register answered 2.01), with a
/// lifetime of a week so no Update interferes.
fn registered() -> (Client, Instant) {
    let t0 = Instant::now();
    let mut c = Client::new(
        ClientConfig {
            endpoint: "meter-1".into(),
            server: server(),
            lifetime: Duration::from_secs(86_400 * 7),
            lwm2m_version: "1.1".into(),
            binding: "U".into(),
            registry: registry(),
            preferred_format: ContentFormat::Tlv,
            seed: 22,
            bootstrap: None,
            retry: Default::default(),
        },
        store(),
    );
    c.start(t0);
    let register = Packet::from_bytes(&c.poll_transmit().unwrap().payload).unwrap();
    let mut created = Packet::new();
    created.header.set_type(MessageType::Acknowledgement);
    created.header.code = MessageClass::Response(ResponseType::Created);
    created.header.message_id = register.header.message_id;
    created.set_token(register.get_token().to_vec());
    created.add_option(CoapOption::LocationPath, b"rd".to_vec());
    created.add_option(CoapOption::LocationPath, b"1".to_vec());
    c.handle_datagram(t0, server(), &created.to_bytes().unwrap());
    assert!(matches!(c.state(), RegistrationState::Registered { .. }));
    while c.poll_event().is_some() {}
    (c, t0)
}

/// A request from the server: token `token`, Uri-Path, Uri-Query, and the
/// uint options given (Observe 6, Accept 17).
struct Req<'a> {
    ty: MessageType,
    method: RequestType,
    mid: u16,
    token: u8,
    path: &'a str,
    query: &'a [&'a str],
    observe: Option<u8>,
    accept: Option<u8>,
}

impl Req<'_> {
    fn con(method: RequestType, mid: u16, token: u8, path: &str) -> Req<'_> {
        Req {
            ty: MessageType::Confirmable,
            method,
            mid,
            token,
            path,
            query: &[],
            observe: None,
            accept: None,
        }
    }
    fn bytes(&self) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_type(self.ty);
        p.header.code = MessageClass::Request(self.method);
        p.header.message_id = self.mid;
        p.set_token(vec![self.token]);
        for seg in self.path.split('/').filter(|s| !s.is_empty()) {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        for q in self.query {
            p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        if let Some(o) = self.observe {
            p.add_option(CoapOption::Observe, if o == 0 { vec![] } else { vec![o] });
        }
        if let Some(a) = self.accept {
            p.add_option(CoapOption::Accept, if a == 0 { vec![] } else { vec![a] });
        }
        p.to_bytes().unwrap()
    }
}

/// Everything the client sends in reaction to `datagram` from the server.
fn feed(c: &mut Client, now: Instant, datagram: &[u8]) -> Vec<Vec<u8>> {
    c.handle_datagram(now, server(), datagram);
    sent(c)
}

fn sent(c: &mut Client) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|t| {
            assert_eq!(t.destination, server());
            t.payload
        })
        .collect()
}

fn events(c: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// `ACK <code>` on `mid` with token `token`, then `rest` (options, payload).
fn ack(code: u8, mid: u16, token: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x61, code, (mid >> 8) as u8, mid as u8, token];
    v.extend_from_slice(rest);
    v
}

/// `ACK 2.05` with Content-Format 40 (option delta 12, length 1) and `links`.
fn links_ack(mid: u16, token: u8, links: &str) -> Vec<u8> {
    let mut rest = vec![0xc1, 40, 0xff];
    rest.extend(links.as_bytes());
    ack(0x45, mid, token, &rest)
}

fn discover(c: &mut Client, now: Instant, mid: u16, path: &str) -> Vec<u8> {
    let mut r = Req::con(RequestType::Get, mid, 0x0d, path);
    r.accept = Some(40);
    let out = feed(c, now, &r.bytes());
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].clone()
}

/// Discover at each level, as LwM2M 1.0.2 TS §5.4.2 (kept in 1.1.1 Core)
/// describes it, with the TS's own example attributes (pmin=10 on /3,
/// pmax=60 on /3/0, gt=50 and lt=42.2 on /3/0/7):
/// - Object: the Object with the Attributes assigned at the Object level
///   (and `ver`, object 3 being v1.1), then the instances and their
///   instantiated Resources as bare links — the TS example
///   `</3>;pmin=10,</3/0>,</3/0/1>,...`;
/// - Object Instance: the instance with the Attributes assigned to it (not
///   the Object's pmin), its Resources with `dim` and their own
///   Attributes — the TS example `</3/0>;pmax=60,...,</3/0/7>;dim=8;gt=50;lt=42.2`;
/// - Resource: "the attached Attributes of that Resource ... (includes the
///   assigned R-Attributes and the R-Attributes inherited from the Object
///   and Object Instance)" — the TS example `</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2`;
///   a 1.1 client follows it with the Resource Instances and their own
///   Attributes (what ETS 1.1 int-260 and int-261 check).
///
/// A Resource Instance is no Discover target: 4.05 (Transport §6.3).
#[test]
fn discover_lists_what_the_ts_says_at_object_instance_and_resource_level() {
    let (mut c, t0) = registered();
    for (mid, path, query) in [
        (0x100, "/3", &["pmin=10"][..]),
        (0x101, "/3/0", &["pmax=60"][..]),
        (0x102, "/3/0/7", &["gt=50", "lt=42.2"][..]),
    ] {
        let mut r = Req::con(RequestType::Put, mid, 0x0c, path);
        r.query = query;
        assert_eq!(
            feed(&mut c, t0, &r.bytes()),
            vec![ack(0x44, mid, 0x0c, &[])]
        );
    }
    // Executable resources 4, 5 and 12 exist on the instance without a value.
    assert_eq!(
        discover(&mut c, t0, 0x110, "/3"),
        links_ack(
            0x110,
            0x0d,
            "</3>;ver=1.1;pmin=10,</3/0>,</3/0/0>,</3/0/4>,</3/0/5>,</3/0/7>,</3/0/9>,</3/0/12>,</3/0/16>"
        )
    );
    assert_eq!(
        discover(&mut c, t0, 0x111, "/3/0"),
        links_ack(
            0x111,
            0x0d,
            "</3/0>;pmax=60,</3/0/0>,</3/0/4>,</3/0/5>,</3/0/7>;dim=2;gt=50;lt=42.2,</3/0/9>,</3/0/12>,</3/0/16>"
        )
    );
    assert_eq!(
        discover(&mut c, t0, 0x112, "/3/0/7"),
        links_ack(
            0x112,
            0x0d,
            "</3/0/7>;dim=2;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/7/0>,</3/0/7/1>"
        )
    );
    // Attributes on a Resource Instance, 1.1's epmin/epmax among them
    // (ETS 1.1 int-261), come with that instance's link only.
    let mut r = Req::con(RequestType::Put, 0x103, 0x0c, "/3/0/7/1");
    r.query = &["pmax=100", "epmin=1", "epmax=20"];
    assert_eq!(
        feed(&mut c, t0, &r.bytes()),
        vec![ack(0x44, 0x103, 0x0c, &[])]
    );
    assert_eq!(
        discover(&mut c, t0, 0x117, "/3/0/7"),
        links_ack(
            0x117,
            0x0d,
            "</3/0/7>;dim=2;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/7/0>,</3/0/7/1>;pmax=100;epmin=1;epmax=20"
        )
    );
    // A bare name removes the attribute (Core §5.1.2).
    let mut r = Req::con(RequestType::Put, 0x104, 0x0c, "/3/0/7/1");
    r.query = &["epmin", "pmax"];
    assert_eq!(
        feed(&mut c, t0, &r.bytes()),
        vec![ack(0x44, 0x104, 0x0c, &[])]
    );
    assert_eq!(
        discover(&mut c, t0, 0x118, "/3/0/7"),
        links_ack(
            0x118,
            0x0d,
            "</3/0/7>;dim=2;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/7/0>,</3/0/7/1>;epmax=20"
        )
    );
    assert_eq!(
        discover(&mut c, t0, 0x113, "/3/0/9"),
        links_ack(0x113, 0x0d, "</3/0/9>;pmin=10;pmax=60"),
        "a resource without its own attributes still shows the inherited ones"
    );
    // Object 1 is v1.1 as well; no attributes anywhere.
    assert_eq!(
        discover(&mut c, t0, 0x114, "/1/0"),
        links_ack(
            0x114,
            0x0d,
            "</1/0>,</1/0/0>,</1/0/1>,</1/0/4>,</1/0/7>,</1/0/8>,</1/0/9>"
        )
    );
    let diag = b"Discover targets an object, an instance or a resource, not a resource instance";
    let mut rest = vec![0xff];
    rest.extend(diag);
    assert_eq!(
        discover(&mut c, t0, 0x115, "/3/0/7/0"),
        ack(0x85, 0x115, 0x0d, &rest),
        "4.05 Method Not Allowed"
    );
    let not_found = discover(&mut c, t0, 0x116, "/3/0/1");
    assert_eq!(
        &not_found[..5],
        &ack(0x84, 0x116, 0x0d, &[])[..],
        "absent resource: 4.04"
    );
}

/// `GET /3/0/9 Observe:0 Accept:0` with token 0x7b: the 2.05 carries the
/// Observe sequence number and the value (RFC 7641 §4.1).
fn observe_battery(c: &mut Client, now: Instant) -> u32 {
    let mut r = Req::con(RequestType::Get, 0x200, 0x7b, "/3/0/9");
    r.observe = Some(0);
    r.accept = Some(0);
    let out = feed(c, now, &r.bytes());
    // Observe (6): delta 6, length 1, value 2; Content-Format (12): delta 6, length 0.
    assert_eq!(
        out,
        vec![ack(
            0x45,
            0x200,
            0x7b,
            &[0x61, 0x02, 0x60, 0xff, b'8', b'7']
        )]
    );
    2
}

/// The one notification a value change sends, checked byte for byte:
/// `<type> 2.05`, token 0x7b, Observe `seq`, Content-Format 0, `value`.
/// Returns its message id.
fn notification(c: &mut Client, now: Instant, value: i64, confirmable: bool, seq: u8) -> u16 {
    c.set_value(now, Path::resource(3, 0, 9), Value::Integer(value))
        .unwrap();
    let out = sent(c);
    assert_eq!(out.len(), 1, "one notification for {value}: {out:?}");
    let d = &out[0];
    let mid = u16::from_be_bytes([d[2], d[3]]);
    let mut expected = vec![
        if confirmable { 0x41 } else { 0x51 },
        0x45,
        d[2],
        d[3],
        0x7b,
        0x61,
        seq,
        0x60,
        0xff,
    ];
    expected.extend(value.to_string().as_bytes());
    assert_eq!(d, &expected, "notification of {value}");
    mid
}

/// RFC 7641 §3.6: a Reset in answer to a notification cancels the
/// observation; the client sends nothing more for it. §4.4: the
/// notifications' sequence numbers follow the registration's (2, 3, ...).
#[test]
fn a_reset_to_a_notification_cancels_the_observation() {
    let (mut c, t0) = registered();
    observe_battery(&mut c, t0);
    let mid = notification(&mut c, t0 + MS, 88, false, 3);
    let rst = [0x70, 0x00, (mid >> 8) as u8, mid as u8];
    assert!(feed(&mut c, t0 + MS, &rst).is_empty());
    assert!(c.observed_paths().is_empty());
    c.set_value(t0 + 2 * MS, Path::resource(3, 0, 9), Value::Integer(89))
        .unwrap();
    assert!(sent(&mut c).is_empty());
}

/// RFC 7641 §3.6: a GET with Observe=1 and the observation's token
/// deregisters it and is "processed as usual": a 2.05 with the value and
/// without an Observe option. Later changes send nothing.
#[test]
fn a_get_with_observe_1_cancels_and_is_answered_without_observe() {
    let (mut c, t0) = registered();
    observe_battery(&mut c, t0);
    notification(&mut c, t0 + MS, 88, false, 3);
    let mut r = Req::con(RequestType::Get, 0x201, 0x7b, "/3/0/9");
    r.observe = Some(1);
    r.accept = Some(0);
    assert_eq!(
        feed(&mut c, t0 + MS, &r.bytes()),
        // Content-Format (12): delta 12, length 0.
        vec![ack(0x45, 0x201, 0x7b, &[0xc0, 0xff, b'8', b'8'])]
    );
    assert!(c.observed_paths().is_empty());
    c.set_value(t0 + 2 * MS, Path::resource(3, 0, 9), Value::Integer(89))
        .unwrap();
    assert!(sent(&mut c).is_empty());
}

/// Sends notifications 1..CON_EVERY (values 1, 2, ...): all NON but the
/// last, which is CON (every CON_EVERY-th, RFC 7641 §4.5). Returns the
/// CON's message id and bytes.
fn up_to_the_con(c: &mut Client, t0: Instant) -> (u16, Vec<u8>) {
    observe_battery(c, t0);
    for i in 1..CON_EVERY {
        notification(c, t0 + MS * i, i64::from(i), false, 2 + i as u8);
    }
    let at = t0 + MS * CON_EVERY;
    let mid = notification(c, at, 100, true, 2 + CON_EVERY as u8);
    let mut bytes = vec![0x41, 0x45, (mid >> 8) as u8, mid as u8, 0x7b, 0x61];
    bytes.extend([2 + CON_EVERY as u8, 0x60, 0xff, b'1', b'0', b'0']);
    (mid, bytes)
}

/// RFC 7641 §4.5: "if the last attempt to retransmit a confirmable
/// notification times out, then the client is considered no longer
/// interested and is removed by the server from the list of observers".
/// The CON is retransmitted MAX_RETRANSMIT (4) times, byte-identical (RFC
/// 7252 §4.2), then the observation is gone. Meanwhile (§4.5.1, NSTART 1)
/// no other notification goes to that observer, and the change held back
/// is never sent.
#[test]
fn an_unacknowledged_con_notification_ends_the_observation_after_its_retransmissions() {
    let (mut c, t0) = registered();
    let (_, con) = up_to_the_con(&mut c, t0);
    let held = t0 + MS * (CON_EVERY + 1);
    c.set_value(held, Path::resource(3, 0, 9), Value::Integer(101))
        .unwrap();
    assert!(
        sent(&mut c).is_empty(),
        "held back while the CON is outstanding"
    );
    let mut retransmissions = 0;
    let mut now = held;
    while !c.observed_paths().is_empty() {
        now = c
            .poll_timeout()
            .expect("a retransmission or the give-up is due");
        assert!(
            now < t0 + Duration::from_secs(100),
            "gave up within MAX_TRANSMIT_WAIT"
        );
        c.handle_timeout(now);
        for d in sent(&mut c) {
            assert_eq!(
                d, con,
                "retransmission {retransmissions} is the same datagram"
            );
            retransmissions += 1;
        }
    }
    assert_eq!(retransmissions, 4);
    c.set_value(now + MS, Path::resource(3, 0, 9), Value::Integer(102))
        .unwrap();
    assert!(sent(&mut c).is_empty());
}

/// RFC 7641 §4.5.1: at most NSTART (1) outstanding notification per
/// client; a change while the CON is unacknowledged waits, and goes out
/// — with the newest value and the next sequence number — as soon as the
/// Empty ACK comes (§4.5.2).
#[test]
fn a_change_while_a_con_notification_is_outstanding_goes_out_after_its_ack() {
    let (mut c, t0) = registered();
    let (mid, _) = up_to_the_con(&mut c, t0);
    let at = t0 + MS * (CON_EVERY + 1);
    c.set_value(at, Path::resource(3, 0, 9), Value::Integer(101))
        .unwrap();
    c.set_value(at, Path::resource(3, 0, 9), Value::Integer(102))
        .unwrap();
    assert!(sent(&mut c).is_empty());
    let empty_ack = [0x60, 0x00, (mid >> 8) as u8, mid as u8];
    let out = feed(&mut c, at + MS, &empty_ack);
    assert_eq!(out.len(), 1, "{out:?}");
    let d = &out[0];
    let seq = 3 + CON_EVERY as u8;
    assert_eq!(
        d,
        &vec![0x51, 0x45, d[2], d[3], 0x7b, 0x61, seq, 0x60, 0xff, b'1', b'0', b'2']
    );
    assert_eq!(c.observed_paths(), vec![Path::resource(3, 0, 9)]);
}

/// RFC 7641 §4.5: "A server that transmits notifications mostly in
/// non-confirmable messages MUST send a notification in a confirmable
/// message instead of a non-confirmable message at least every 24 hours."
/// A meter notifying rarely sends its next notification CON once 24 h have
/// passed since the Observe (or the last CON), whatever the count.
#[test]
fn a_notification_is_confirmable_at_least_every_24_hours() {
    assert_eq!(CON_AT_LEAST_EVERY, Duration::from_secs(86_400));
    let (mut c, t0) = registered();
    observe_battery(&mut c, t0);
    notification(&mut c, t0 + HOUR, 1, false, 3);
    notification(&mut c, t0 + 24 * HOUR - MS, 2, false, 4);
    let mid = notification(&mut c, t0 + 24 * HOUR, 3, true, 5);
    let t1 = t0 + 24 * HOUR + MS;
    assert!(feed(&mut c, t1, &[0x60, 0x00, (mid >> 8) as u8, mid as u8]).is_empty());
    notification(&mut c, t1 + HOUR, 4, false, 6);
    notification(&mut c, t0 + 48 * HOUR - MS, 5, false, 7);
    notification(&mut c, t0 + 48 * HOUR, 6, true, 8);
}

/// RFC 7252 §4.5 with §4.8.2: a CON request repeated within
/// EXCHANGE_LIFETIME (247 s) is a duplicate — the client answers it with
/// the same ACK and does not execute again; after 247 s the same message
/// id is a new request. A NON is a duplicate for NON_LIFETIME (145 s) and
/// silently dropped (answered with a NON 2.04 when new, §5.2.3).
#[test]
fn a_duplicate_execute_within_exchange_lifetime_is_answered_but_not_executed_again() {
    let (mut c, t0) = registered();
    let execute = Req::con(RequestType::Post, 0x300, 0x0b, "/3/0/4").bytes();
    let reply = vec![ack(0x44, 0x300, 0x0b, &[])];
    let executed = vec![ClientEvent::Executed {
        path: Path::resource(3, 0, 4),
        arguments: None,
    }];
    assert_eq!(feed(&mut c, t0, &execute), reply);
    assert_eq!(events(&mut c), executed);
    assert_eq!(feed(&mut c, t0 + EXCHANGE_LIFETIME - MS, &execute), reply);
    assert!(
        events(&mut c).is_empty(),
        "a duplicate is not executed again"
    );
    assert_eq!(feed(&mut c, t0 + EXCHANGE_LIFETIME, &execute), reply);
    assert_eq!(events(&mut c), executed, "after 247 s it is a new request");

    let mut non = Req::con(RequestType::Post, 0x301, 0x0e, "/3/0/4");
    non.ty = MessageType::NonConfirmable;
    let non = non.bytes();
    let t1 = t0 + EXCHANGE_LIFETIME;
    let out = feed(&mut c, t1, &non);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][..2], &[0x51, 0x44], "NON 2.04");
    assert_eq!(out[0][4], 0x0e);
    assert_eq!(events(&mut c), executed);
    assert!(feed(&mut c, t1 + NON_LIFETIME - MS, &non).is_empty());
    assert!(events(&mut c).is_empty());
    assert_eq!(feed(&mut c, t1 + NON_LIFETIME, &non).len(), 1);
    assert_eq!(events(&mut c), executed);
}
