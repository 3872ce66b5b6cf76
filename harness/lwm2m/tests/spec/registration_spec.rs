//! The server role's registration interface fed hand-built datagrams, each
//! answer checked byte for byte against what the TS says a server answers
//! (LwM2M 1.1.1 Core §6.2.1 Register, §6.2.2 Update; RFC 7252 §5.2.1
//! piggybacked responses; RFC 7641 §3.6, §4.1 observation bookkeeping).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, ResponseType};
use lwm2m::coap::summarize;
use lwm2m::format::ContentFormat;
use lwm2m::server::{DmRequest, RequestId, Server, ServerEvent};
use lwm2m::Path;

use crate::support;
// `CON POST /<path>?<query>`, token 0x0a, a link-format payload when given.
use crate::support::{con_post as post, registry};

const CLIENT: &str = "127.0.0.1:56830";

fn server() -> Server {
    support::seeded_server(&registry(), 7)
}

fn peer() -> SocketAddr {
    CLIENT.parse().unwrap()
}

/// Feeds one datagram and returns the server's answer, decoded.
fn exchange(server: &mut Server, now: Instant, datagram: &[u8]) -> Packet {
    server.handle_datagram(now, peer(), datagram);
    let t = server.poll_transmit().expect("the server answers");
    assert_eq!(t.destination, peer());
    Packet::from_bytes(&t.payload).unwrap()
}

fn code(p: &Packet) -> MessageClass {
    p.header.code
}

fn diagnostic(p: &Packet) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

const OBJECTS: &str = "</1/0>,</3/0>";

fn register(server: &mut Server, now: Instant, query: &[&str]) -> Packet {
    let mut q = vec!["ep=meter-1"];
    q.extend_from_slice(query);
    exchange(server, now, &post(0x100, &["rd"], &q, Some(OBJECTS)))
}

fn location(reply: &Packet) -> Vec<String> {
    reply
        .get_option(CoapOption::LocationPath)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The Register datagram the tests build, pinned byte for byte (RFC 7252
/// §3: header 0x41 = ver 1, CON, TKL 1; code 0.02 POST; options in number
/// order, Uri-Path (11) "rd", Content-Format (12) 40, Uri-Query (15)
/// "ep=meter-1"; 0xFF; the link-format payload).
#[test]
fn the_register_datagram_is_the_one_the_transport_ts_describes() {
    let bytes = post(0x0100, &["rd"], &["ep=meter-1"], Some("</3/0>"));
    let mut expected = vec![
        0x41, 0x02, 0x01, 0x00, 0x0a, 0xb2, b'r', b'd', 0x11, 40, 0x3a,
    ];
    expected.extend(b"ep=meter-1");
    expected.push(0xff);
    expected.extend(b"</3/0>");
    assert_eq!(bytes, expected);
}

/// LwM2M 1.1 Core §6.2.1: `lt` is the client's lifetime in seconds; any
/// number a peer sends must be answered, never crash the server. The
/// largest u64 is accepted and the registration simply never expires
/// within the run; a number beyond u64 is not a lifetime: 4.00.
#[test]
fn a_lifetime_of_u64_max_is_accepted_and_never_overflows_the_clock() {
    let mut s = server();
    let now = Instant::now();
    let reply = register(&mut s, now, &["lt=18446744073709551615", "lwm2m=1.1"]);
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    assert_eq!(location(&reply)[0], "rd");
    let reg = s.registration("meter-1").unwrap().clone();
    assert_eq!(reg.lifetime, Duration::from_secs(u64::MAX));
    assert_eq!(reg.expires_at(), None);
    // Timers and expiry go on without overflow.
    let _ = s.poll_timeout();
    s.handle_timeout(now + Duration::from_secs(10 * 365 * 86_400));
    assert!(s.registration("meter-1").is_some());

    // The same value in an Update (§6.2.2): 2.04, no panic.
    let loc: Vec<String> = location(&reply);
    let segs: Vec<&str> = loc.iter().map(String::as_str).collect();
    let reply = exchange(
        &mut s,
        now,
        &post(0x101, &segs, &["lt=18446744073709551615"], None),
    );
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Changed));
    let _ = s.poll_timeout();
    s.handle_timeout(now + Duration::from_secs(1));

    // One more than u64::MAX is no lifetime at all.
    let reply = exchange(
        &mut s,
        now,
        &post(0x102, &segs, &["lt=18446744073709551616"], None),
    );
    assert_eq!(
        code(&reply),
        MessageClass::Response(ResponseType::BadRequest)
    );
    assert!(diagnostic(&reply).contains("lt"), "{}", diagnostic(&reply));
}

/// LwM2M 1.0 Core §5.3.1.1 carries queue mode in the binding: an Update
/// with `b=U` after a Register with `b=UQ` ends queue mode.
#[test]
fn an_update_with_b_u_after_b_uq_leaves_queue_mode() {
    let mut s = server();
    let now = Instant::now();
    let reply = register(&mut s, now, &["lwm2m=1.0", "b=UQ"]);
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    assert!(s.registration("meter-1").unwrap().queue_mode);
    let loc = location(&reply);
    let segs: Vec<&str> = loc.iter().map(String::as_str).collect();
    let reply = exchange(&mut s, now, &post(0x101, &segs, &["b=U"], None));
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Changed));
    let reg = s.registration("meter-1").unwrap();
    assert!(!reg.queue_mode, "b=U ends queue mode under LwM2M 1.0");
    assert_eq!(reg.binding, "U");
}

/// LwM2M 1.1 Core §6.2.1 moved queue mode to the `Q` parameter: a Register
/// with `Q` is in queue mode; an Update that does not mention it keeps it.
#[test]
fn queue_mode_under_1_1_is_the_q_parameter() {
    let mut s = server();
    let now = Instant::now();
    let reply = register(&mut s, now, &["lwm2m=1.1", "b=U", "Q"]);
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    assert!(s.registration("meter-1").unwrap().queue_mode);
    let loc = location(&reply);
    let segs: Vec<&str> = loc.iter().map(String::as_str).collect();
    let reply = exchange(&mut s, now, &post(0x101, &segs, &["lt=90"], None));
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Changed));
    assert!(s.registration("meter-1").unwrap().queue_mode);
}

/// Register requests the TS does not allow, and what the server answers
/// (LwM2M 1.1.1 Core §6.2.1: the object list is mandatory; a version the
/// server does not support gets 4.12 Precondition Failed; bindings per
/// version as in 1.0 Core Table 5.3.1.1-1 and 1.1 object 1 resource 7;
/// objects 0 and 21 MUST NOT be listed). Nothing is registered.
#[test]
fn registers_the_ts_does_not_allow_are_refused_with_their_code() {
    let cases: [(&[&str], Option<&str>, ResponseType, &str); 10] = [
        (
            &["lwm2m=1.1"],
            Some(""),
            ResponseType::BadRequest,
            "lists none",
        ),
        (&["lwm2m=1.1"], None, ResponseType::BadRequest, "lists none"),
        (
            &["lwm2m=9.9"],
            Some(OBJECTS),
            ResponseType::PreconditionFailed,
            "9.9",
        ),
        (
            &["lwm2m=eleven"],
            Some(OBJECTS),
            ResponseType::BadRequest,
            "lwm2m",
        ),
        (
            &["lwm2m=1.1", "b=UQ"],
            Some(OBJECTS),
            ResponseType::BadRequest,
            "queue mode is Q",
        ),
        (
            &["lwm2m=1.0", "Q"],
            Some(OBJECTS),
            ResponseType::BadRequest,
            "does not exist in LwM2M 1.0",
        ),
        (
            &["lwm2m=1.0", "b=UM"],
            Some(OBJECTS),
            ResponseType::BadRequest,
            "UQS",
        ),
        (
            &["lwm2m=1.1", "b=UU"],
            Some(OBJECTS),
            ResponseType::BadRequest,
            "each once",
        ),
        (
            &["lwm2m=1.1"],
            Some("</0/0>,</1/0>,</3/0>"),
            ResponseType::BadRequest,
            "</0/0>",
        ),
        (
            &["lwm2m=1.1"],
            Some("</1/0>,</3/0>,</21/0>"),
            ResponseType::BadRequest,
            "</21/0>",
        ),
    ];
    for (query, objects, expected, says) in cases {
        let mut s = server();
        let mut q = vec!["ep=meter-1"];
        q.extend_from_slice(query);
        let bytes = post(0x200, &["rd"], &q, objects);
        let reply = exchange(&mut s, Instant::now(), &bytes);
        assert_eq!(
            code(&reply),
            MessageClass::Response(expected),
            "{} answered {}",
            summarize(&bytes),
            summarize(&reply.to_bytes().unwrap())
        );
        assert_eq!(reply.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(reply.header.message_id, 0x200);
        assert!(
            diagnostic(&reply).contains(says),
            "{}: diagnostic {:?} names {says:?}",
            summarize(&bytes),
            diagnostic(&reply)
        );
        assert!(s.registrations().is_empty());
    }
}

/// The versions and bindings the TS does allow are registered.
#[test]
fn registers_the_ts_allows_are_created() {
    let cases: [&[&str]; 6] = [
        &[],
        &["lwm2m=1.0", "b=UQS"],
        &["lwm2m=1.1", "b=UT", "Q"],
        &["lwm2m=1.2", "b=N"],
        &["lwm2m=1.2", "b=MHS"],
        &["lwm2m=1.0", "b=SQ"],
    ];
    for query in cases {
        let mut s = server();
        let reply = register(&mut s, Instant::now(), query);
        assert_eq!(
            code(&reply),
            MessageClass::Response(ResponseType::Created),
            "{query:?}: {}",
            diagnostic(&reply)
        );
    }
    // No `lwm2m` means LwM2M 1.0 (its clients may omit it).
    let mut s = server();
    register(&mut s, Instant::now(), &[]);
    assert_eq!(s.registration("meter-1").unwrap().lwm2m_version, "1.0");
}

/// LwM2M 1.1 Core §6.2.1 "Alternate path": `</lwm2m>;rt="oma.lwm2m"` puts
/// the client's objects under /lwm2m. The object list holds /1/0 and /3/0,
/// and a Read of /3/0 goes to /lwm2m/3/0.
#[test]
fn an_alternate_path_roots_the_object_list_and_the_requests() {
    let mut s = server();
    let now = Instant::now();
    let bytes = post(
        0x300,
        &["rd"],
        &["ep=meter-1", "lwm2m=1.1"],
        Some("</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/1/0>,</lwm2m/3/0>"),
    );
    let reply = exchange(&mut s, now, &bytes);
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    let reg = s.registration("meter-1").unwrap();
    assert_eq!(reg.root, "/lwm2m");
    assert_eq!(
        reg.instances(),
        vec![Path::instance(1, 0), Path::instance(3, 0)]
    );
    s.request(
        now,
        "meter-1",
        DmRequest::Read {
            path: Path::instance(3, 0),
            format: None,
        },
    )
    .unwrap();
    let sent = Packet::from_bytes(&s.poll_transmit().unwrap().payload).unwrap();
    let path: Vec<&[u8]> = sent
        .get_option(CoapOption::UriPath)
        .unwrap()
        .iter()
        .map(Vec::as_slice)
        .collect();
    assert_eq!(path, vec![&b"lwm2m"[..], b"3", b"0"]);
}

/// LwM2M 1.1 Core §6.2.1: the root link's `ct` lists the Content-Formats
/// the client supports (`ct="60 110"`, 1.1 form). A server whose default
/// (TLV, 11542) is not among them asks in one that is: SenML JSON (110).
#[test]
fn the_root_links_ct_chooses_the_format_the_server_asks_for() {
    let mut s = server();
    let now = Instant::now();
    let bytes = post(
        0x301,
        &["rd"],
        &["ep=meter-1", "lwm2m=1.1"],
        Some("</>;rt=\"oma.lwm2m\";ct=\"60 110\",</1/0>,</3/0>"),
    );
    let reply = exchange(&mut s, now, &bytes);
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    assert_eq!(
        s.registration("meter-1").unwrap().content_formats,
        vec![60, 110]
    );
    s.request(
        now,
        "meter-1",
        DmRequest::Read {
            path: Path::instance(3, 0),
            format: None,
        },
    )
    .unwrap();
    let sent = Packet::from_bytes(&s.poll_transmit().unwrap().payload).unwrap();
    let accept = sent
        .get_option(CoapOption::Accept)
        .unwrap()
        .front()
        .unwrap();
    assert_eq!(accept, &vec![110]);
}

fn registered() -> (Server, Instant) {
    let mut s = server();
    let now = Instant::now();
    let reply = register(&mut s, now, &["lwm2m=1.1"]);
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    while s.poll_event().is_some() {}
    (s, now)
}

fn sent(s: &mut Server) -> Packet {
    Packet::from_bytes(&s.poll_transmit().expect("a datagram").payload).unwrap()
}

/// `ACK 2.05` piggybacked on `request`, with Observe `seq` when given.
fn content_ack(request: &Packet, seq: Option<u8>) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.code = MessageClass::Response(ResponseType::Content);
    p.header.message_id = request.header.message_id;
    p.set_token(request.get_token().to_vec());
    if let Some(seq) = seq {
        p.add_option(CoapOption::Observe, vec![seq]);
    }
    p.add_option(CoapOption::ContentFormat, vec![0]);
    p.payload = b"42".to_vec();
    p.to_bytes().unwrap()
}

fn responses(s: &mut Server) -> Vec<RequestId> {
    let mut ids = Vec::new();
    while let Some(e) = s.poll_event() {
        if let ServerEvent::Response { id, .. } = e {
            ids.push(id);
        }
    }
    ids
}

/// RFC 7641 §3.6: Cancel-Observe is a GET with Observe=1 and the
/// observation's token. A notification with that token that crosses it on
/// the wire is not its answer: the notification (it carries Observe) is
/// refused with Reset, and the cancel is retransmitted (RFC 7252 §4.2)
/// until its own answer comes.
#[test]
fn a_notification_crossing_a_cancel_is_not_taken_as_its_answer() {
    let (mut s, now) = registered();
    let path = Path::resource(3, 0, 9);
    let observe = s
        .request(
            now,
            "meter-1",
            DmRequest::Observe {
                path,
                format: Some(ContentFormat::Text),
            },
        )
        .unwrap();
    let get = sent(&mut s);
    s.handle_datagram(now, peer(), &content_ack(&get, Some(5)));
    assert_eq!(responses(&mut s), vec![observe]);
    assert_eq!(s.observations("meter-1").len(), 1);

    let cancel = s
        .request(now, "meter-1", DmRequest::CancelObserve { path })
        .unwrap();
    let cancel_get = sent(&mut s);
    assert_eq!(cancel_get.get_token(), get.get_token());

    // CON 2.05 Observe=6, same token, its own message id: a notification.
    let mut note = Packet::new();
    note.header.set_type(MessageType::Confirmable);
    note.header.code = MessageClass::Response(ResponseType::Content);
    note.header.message_id = 0x7777;
    note.set_token(get.get_token().to_vec());
    note.add_option(CoapOption::Observe, vec![6]);
    note.add_option(CoapOption::ContentFormat, vec![0]);
    note.payload = b"43".to_vec();
    s.handle_datagram(now, peer(), &note.to_bytes().unwrap());
    // RST with the notification's message id: 0x70 = ver 1, RST, TKL 0; code 0.00.
    let rst = s.poll_transmit().unwrap().payload;
    assert_eq!(rst, vec![0x70, 0x00, 0x77, 0x77]);
    assert!(responses(&mut s).is_empty(), "the cancel is still waiting");

    // The cancel is retransmitted, same message id (RFC 7252 §4.2).
    s.handle_timeout(now + Duration::from_secs(4));
    let again = sent(&mut s);
    assert_eq!(again.header.message_id, cancel_get.header.message_id);

    // Its own answer, without Observe, completes it.
    s.handle_datagram(
        now + Duration::from_secs(4),
        peer(),
        &content_ack(&cancel_get, None),
    );
    assert_eq!(responses(&mut s), vec![cancel]);
}

/// RFC 7641 §4.1: observers are keyed by endpoint and token, so two
/// observations of one path with different tokens coexist; each receives
/// its notifications, and Cancel-Observe ends the newest.
#[test]
fn two_observations_of_one_path_with_different_tokens_coexist() {
    let (mut s, now) = registered();
    let path = Path::resource(3, 0, 9);
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for seq in [1, 2] {
        let id = s
            .request(
                now,
                "meter-1",
                DmRequest::Observe {
                    path,
                    format: Some(ContentFormat::Text),
                },
            )
            .unwrap();
        let get = sent(&mut s);
        s.handle_datagram(now, peer(), &content_ack(&get, Some(seq)));
        tokens.push(get.get_token().to_vec());
        ids.push(id);
    }
    assert_ne!(tokens[0], tokens[1]);
    let _ = responses(&mut s);
    assert_eq!(
        s.observations("meter-1"),
        vec![(ids[0], path), (ids[1], path)]
    );
    // A NON notification for the first one is still delivered to it.
    let mut note = Packet::new();
    note.header.set_type(MessageType::NonConfirmable);
    note.header.code = MessageClass::Response(ResponseType::Content);
    note.header.message_id = 0x5151;
    note.set_token(tokens[0].clone());
    note.add_option(CoapOption::Observe, vec![9]);
    note.add_option(CoapOption::ContentFormat, vec![0]);
    note.payload = b"50".to_vec();
    s.handle_datagram(now, peer(), &note.to_bytes().unwrap());
    let observed: Vec<RequestId> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            ServerEvent::Notification { observation, .. } => Some(observation),
            _ => None,
        })
        .collect();
    assert_eq!(observed, vec![ids[0]]);
    // Cancel takes the newest one's token.
    s.request(now, "meter-1", DmRequest::CancelObserve { path })
        .unwrap();
    let cancel = sent(&mut s);
    assert_eq!(cancel.get_token(), tokens[1].as_slice());
    assert_eq!(s.observations("meter-1"), vec![(ids[0], path)]);
}

/// LwM2M 1.1 Core §6.2.2: an Update's object list without the root link
/// stays under the alternate path the Register named, and keeps its `ct`.
#[test]
fn an_update_without_the_root_link_keeps_the_alternate_path() {
    let mut s = server();
    let now = Instant::now();
    let reply = exchange(
        &mut s,
        now,
        &post(
            0x310,
            &["rd"],
            &["ep=meter-1", "lwm2m=1.1"],
            Some("</lwm2m>;rt=\"oma.lwm2m\";ct=110,</lwm2m/1/0>,</lwm2m/3/0>"),
        ),
    );
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Created));
    let loc = location(&reply);
    let segs: Vec<&str> = loc.iter().map(String::as_str).collect();
    let reply = exchange(
        &mut s,
        now,
        &post(
            0x311,
            &segs,
            &[],
            Some("</lwm2m/1/0>,</lwm2m/3/0>,</lwm2m/4/0>"),
        ),
    );
    assert_eq!(code(&reply), MessageClass::Response(ResponseType::Changed));
    let reg = s.registration("meter-1").unwrap();
    assert_eq!(reg.root, "/lwm2m");
    assert_eq!(reg.content_formats, vec![110]);
    assert_eq!(
        reg.instances(),
        vec![
            Path::instance(1, 0),
            Path::instance(3, 0),
            Path::instance(4, 0)
        ]
    );
}
