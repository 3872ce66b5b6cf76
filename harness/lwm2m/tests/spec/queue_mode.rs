//! The server role's Queue Mode (LwM2M 1.1 Core §6.5; `Q` in Register,
//! Transport Table 6.2.1-1; binding `UQ` in 1.0, 1.0 Core §5.3.1.1):
//! hand-built datagrams in, time driven by the test. Nothing may go to a
//! client the server believes asleep; what is asked for meanwhile goes out
//! in order after the client's next message; what waits past the lifetime
//! fails with a reason.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use lwm2m::coap::exchange::MAX_TRANSMIT_WAIT;
use lwm2m::server::{
    DmRequest, QueueEvent, RequestError, RequestId, Server, ServerEvent, DEFAULT_AWAKE_WINDOW,
};
use lwm2m::Path;

use crate::support;
use crate::support::{con_post, registry};

const A: &str = "192.0.2.10:56830";
const B: &str = "198.51.100.7:40001";
const SECOND: Duration = Duration::from_secs(1);

fn server() -> Server {
    support::server(&registry())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn feed(s: &mut Server, now: Instant, from: &str, datagram: &[u8]) -> Vec<Packet> {
    s.handle_datagram(now, addr(from), datagram);
    drain(s, from)
}

/// Everything the server sends; all of it must go to `to`.
fn drain(s: &mut Server, to: &str) -> Vec<Packet> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| {
            assert_eq!(t.destination, addr(to));
            Packet::from_bytes(&t.payload).unwrap()
        })
        .collect()
}

fn events(s: &mut Server) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn queue_events(ev: &[ServerEvent]) -> Vec<QueueEvent> {
    ev.iter()
        .filter_map(|e| match e {
            ServerEvent::Queue(q) => Some(q.clone()),
            _ => None,
        })
        .collect()
}

/// Registers `meter-q` from `from` with `query` and returns its location segments.
fn register(s: &mut Server, now: Instant, from: &str, query: &[&str]) -> Vec<String> {
    let mut q = vec!["ep=meter-q", "lt=300"];
    q.extend_from_slice(query);
    let out = feed(
        s,
        now,
        from,
        &con_post(1, &["rd"], &q, Some("</1/0>,</3/0>")),
    );
    assert_eq!(out.len(), 1, "one answer: {out:?}");
    assert_eq!(
        out[0].header.code,
        MessageClass::Response(coap_lite::ResponseType::Created)
    );
    s.registration("meter-q")
        .expect("registered")
        .location
        .split('/')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn update(s: &mut Server, now: Instant, from: &str, mid: u16, location: &[String]) -> Vec<Packet> {
    let path: Vec<&str> = location.iter().map(String::as_str).collect();
    feed(s, now, from, &con_post(mid, &path, &[], None))
}

fn read(path: &str) -> DmRequest {
    DmRequest::Read {
        path: path.parse::<Path>().unwrap(),
        format: None,
    }
}

fn uri(p: &Packet) -> String {
    lwm2m::coap::options::uri_path_string(p)
}

/// 2.05 Content piggybacked on the ACK to `request`, plain text.
fn content_ack(request: &Packet, text: &str) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Acknowledgement);
    p.header.code = MessageClass::Response(coap_lite::ResponseType::Content);
    p.header.message_id = request.header.message_id;
    p.set_token(request.get_token().to_vec());
    p.add_option(CoapOption::ContentFormat, vec![0]);
    p.payload = text.as_bytes().to_vec();
    p.to_bytes().unwrap()
}

#[test]
fn a_queue_mode_client_is_believed_awake_for_max_transmit_wait_by_default() {
    // LwM2M 1.1 Core §6.5: the client stays online MAX_TRANSMIT_WAIT
    // (RFC 7252 §4.8.2: 93 s) after sending, unless configured otherwise.
    assert_eq!(DEFAULT_AWAKE_WINDOW, MAX_TRANSMIT_WAIT);
    assert_eq!(MAX_TRANSMIT_WAIT, Duration::from_secs(93));
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    assert!(s.registration("meter-q").unwrap().queue_mode);
    assert!(!s.is_asleep("meter-q", t0 + Duration::from_secs(92)));
    assert!(s.is_asleep("meter-q", t0 + Duration::from_secs(93)));
    // A request while awake goes out at once.
    s.request(t0 + Duration::from_secs(92), "meter-q", read("/3/0/0"))
        .unwrap();
    assert_eq!(drain(&mut s, A).len(), 1);
}

#[test]
fn a_request_made_while_the_client_sleeps_is_held_and_sent_after_its_update() {
    let mut s = server();
    s.set_queue_awake_window(10 * SECOND);
    let t0 = Instant::now();
    let location = register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    events(&mut s);
    // The window passes: the server says so once, when the timer fires.
    assert_eq!(s.poll_timeout(), Some(t0 + 10 * SECOND));
    s.handle_timeout(t0 + 10 * SECOND);
    let ev = queue_events(&events(&mut s));
    assert!(
        matches!(&ev[..], [QueueEvent::Asleep { endpoint, last_heard, awake, .. }] if endpoint == "meter-q" && *last_heard == t0 && *awake == 10 * SECOND),
        "{ev:?}"
    );
    // Two requests while asleep: held, nothing on the wire.
    let t1 = t0 + 20 * SECOND;
    let first = s.request(t1, "meter-q", read("/3/0/0")).unwrap();
    let second = s.request(t1, "meter-q", read("/3/0/1")).unwrap();
    assert_ne!(first, second);
    assert!(
        drain(&mut s, A).is_empty(),
        "nothing sent to a sleeping client"
    );
    assert_eq!(s.held_requests("meter-q"), 2);
    let ev = queue_events(&events(&mut s));
    assert!(
        matches!(&ev[..], [QueueEvent::Held { id, queued: 1, .. }, QueueEvent::Held { id: id2, queued: 2, .. }] if *id == first && *id2 == second),
        "{ev:?}"
    );
    // Retransmission timers have nothing to do either.
    s.handle_timeout(t1 + 60 * SECOND);
    assert!(drain(&mut s, A).is_empty());
    // The Update: answered 2.04 first, then the held requests in the order asked.
    let t2 = t1 + 70 * SECOND;
    let out = update(&mut s, t2, A, 2, &location);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        out[0].header.code,
        MessageClass::Response(coap_lite::ResponseType::Changed)
    );
    assert_eq!(uri(&out[1]), "/3/0/0");
    assert_eq!(uri(&out[2]), "/3/0/1");
    assert_eq!(out[1].header.get_type(), MessageType::Confirmable);
    let ev = queue_events(&events(&mut s));
    assert_eq!(
        ev,
        [
            QueueEvent::Delivered {
                id: first,
                endpoint: "meter-q".into(),
                path: "/3/0/0".parse().unwrap(),
                held_for: 70 * SECOND
            },
            QueueEvent::Delivered {
                id: second,
                endpoint: "meter-q".into(),
                path: "/3/0/1".parse().unwrap(),
                held_for: 70 * SECOND
            }
        ]
    );
    // The answer carries the id the caller got when the request was held.
    s.handle_datagram(t2 + SECOND, addr(A), &content_ack(&out[1], "Meterbench"));
    let answered: Vec<RequestId> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Response {
                id, result: Ok(r), ..
            } if r.code == 205 => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(answered, [first]);
}

#[test]
fn any_message_from_the_client_wakes_it_not_only_an_update() {
    // Core §6.5: the server sends what it holds "when the LwM2M Client is
    // online", which any message from it shows (here a De-register of
    // nothing: a 4.04 that still proves the client awake).
    let mut s = server();
    s.set_queue_awake_window(5 * SECOND);
    let t0 = Instant::now();
    register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    let t1 = t0 + 30 * SECOND;
    s.request(t1, "meter-q", read("/3/0/2")).unwrap();
    assert!(drain(&mut s, A).is_empty());
    let out = feed(
        &mut s,
        t1 + SECOND,
        A,
        &con_post(9, &["rd", "nope"], &[], None),
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(uri(&out[1]), "/3/0/2");
    // Awake again for the window from that message.
    assert!(!s.is_asleep("meter-q", t1 + 5 * SECOND));
    assert!(s.is_asleep("meter-q", t1 + 6 * SECOND));
}

#[test]
fn the_time_awake_runs_from_the_wake_to_the_window_after_the_last_message() {
    let mut s = server();
    s.set_queue_awake_window(2 * SECOND);
    let t0 = Instant::now();
    let location = register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    s.handle_timeout(t0 + 2 * SECOND);
    events(&mut s);
    // Wakes at t0+10, talks again at t0+11: awake 10..13.
    update(&mut s, t0 + 10 * SECOND, A, 2, &location);
    update(&mut s, t0 + 11 * SECOND, A, 3, &location);
    s.handle_timeout(t0 + 12 * SECOND);
    assert!(
        queue_events(&events(&mut s)).is_empty(),
        "the first window was extended"
    );
    s.handle_timeout(t0 + 13 * SECOND);
    let ev = queue_events(&events(&mut s));
    assert!(
        matches!(&ev[..], [QueueEvent::Asleep { awake_since, awake, .. }] if *awake_since == t0 + 10 * SECOND && *awake == 3 * SECOND),
        "{ev:?}"
    );
}

#[test]
fn a_new_awake_window_applies_at_once_from_the_last_message() {
    let mut s = server();
    let t0 = Instant::now();
    register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    // Registered under the default 93 s; told 2 s at t0 + 1 s.
    s.set_queue_awake_window(2 * SECOND);
    assert_eq!(s.poll_timeout(), Some(t0 + 2 * SECOND));
    s.handle_timeout(t0 + 2 * SECOND);
    assert!(s.is_asleep("meter-q", t0 + 2 * SECOND));
    assert!(matches!(
        &queue_events(&events(&mut s))[..],
        [QueueEvent::Asleep { .. }]
    ));
}

#[test]
fn a_lwm2m_1_0_client_in_binding_uq_is_in_queue_mode() {
    let mut s = server();
    s.set_queue_awake_window(SECOND);
    let t0 = Instant::now();
    register(&mut s, t0, A, &["lwm2m=1.0", "b=UQ"]);
    s.request(t0 + 2 * SECOND, "meter-q", read("/3/0/0"))
        .unwrap();
    assert!(drain(&mut s, A).is_empty());
}

#[test]
fn a_client_without_queue_mode_is_never_believed_asleep() {
    let mut s = server();
    s.set_queue_awake_window(SECOND);
    let t0 = Instant::now();
    register(&mut s, t0, A, &["lwm2m=1.1"]);
    let later = t0 + 200 * SECOND;
    assert!(!s.is_asleep("meter-q", later));
    s.request(later, "meter-q", read("/3/0/0")).unwrap();
    assert_eq!(drain(&mut s, A).len(), 1);
    assert!(queue_events(&events(&mut s)).is_empty());
}

#[test]
fn a_request_held_past_the_lifetime_fails_saying_the_client_never_woke() {
    let mut s = server();
    s.set_queue_awake_window(5 * SECOND);
    let t0 = Instant::now();
    register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    let held = s
        .request(t0 + 100 * SECOND, "meter-q", read("/3/0/0"))
        .unwrap();
    events(&mut s);
    // lt=300: the registration ends at t0 + 300 s with the request unsent.
    s.handle_timeout(t0 + 300 * SECOND);
    assert!(drain(&mut s, A).is_empty());
    let ev = events(&mut s);
    let failure = ev
        .iter()
        .find_map(|e| match e {
            ServerEvent::Response {
                id, result: Err(e), ..
            } if *id == held => Some(e.clone()),
            _ => None,
        })
        .expect("the held request fails");
    assert_eq!(
        failure,
        RequestError::NeverWoke {
            held_for: 200 * SECOND,
            lifetime: 300 * SECOND
        }
    );
    let text = failure.to_string();
    assert!(
        text.contains("never sent") && text.contains("did not wake"),
        "{text}"
    );
    assert!(ev.iter().any(|e| matches!(e, ServerEvent::Expired { .. })));
    assert_eq!(s.held_requests("meter-q"), 0);
}

#[test]
fn a_client_that_wakes_at_another_address_gets_its_requests_there() {
    // NAT rebinding while asleep is the common case on cellular links.
    let mut s = server();
    s.set_queue_awake_window(5 * SECOND);
    let t0 = Instant::now();
    let location = register(&mut s, t0, A, &["lwm2m=1.1", "Q"]);
    s.request(t0 + 60 * SECOND, "meter-q", read("/3/0/0"))
        .unwrap();
    let out = update(&mut s, t0 + 90 * SECOND, B, 2, &location);
    assert_eq!(out.len(), 2);
    assert_eq!(uri(&out[1]), "/3/0/0");
    // The old address means nothing any more.
    s.request(t0 + 200 * SECOND, "meter-q", read("/3/0/1"))
        .unwrap();
    let out = feed(
        &mut s,
        t0 + 201 * SECOND,
        A,
        &con_post(3, &["rd", "x"], &[], None),
    );
    assert_eq!(out.len(), 1, "only the 4.04 to the stranger: {out:?}");
}

#[test]
fn leaving_queue_mode_in_an_update_releases_what_was_held() {
    // LwM2M 1.0 (binding in Update, 1.0 Core §5.3.2): b=U ends queue mode.
    let mut s = server();
    s.set_queue_awake_window(SECOND);
    let t0 = Instant::now();
    let location = register(&mut s, t0, A, &["lwm2m=1.0", "b=UQ"]);
    s.request(t0 + 10 * SECOND, "meter-q", read("/3/0/0"))
        .unwrap();
    let path: Vec<&str> = location.iter().map(String::as_str).collect();
    let out = feed(
        &mut s,
        t0 + 20 * SECOND,
        A,
        &con_post(4, &path, &["b=U"], None),
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(uri(&out[1]), "/3/0/0");
    assert!(!s.is_asleep("meter-q", t0 + 500 * SECOND));
}
