//! The LwM2M 1.1 composite operations and Send (Core §6.3.8 Read-Composite,
//! §6.3.9 Write-Composite, §6.4.3 Observe-Composite, §6.4.4 its cancel,
//! §6.4.6 Send; Transport §6.4, §6.5): the path lists and requests
//! byte-exact, then the server role against the client role over a
//! fake-clock link, and the client's refusals against hand-built requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{registry, Dir, CLIENT, SERVER};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::client::{Client, ClientEvent, ObjectStore, SendError};
use lwm2m::coap::wire;
use lwm2m::format::{ContentFormat, Record};
use lwm2m::server::composite::{
    decode_paths, encode_paths, observe_request, read_request, write_request,
};
use lwm2m::server::{Content, DmRequest, RequestError, RequestId, Response, Server, ServerEvent};
use lwm2m::{Path, Registry, Value};

const LATENCY: Duration = Duration::from_millis(20);

// Method codes as they sit in the header: FETCH 0.05, iPATCH 0.07 (RFC 8132 §2, §3, §6).
const FETCH: u8 = 0x05;
const IPATCH: u8 = 0x07;

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn meter_store(registry: &Registry) -> ObjectStore {
    let mut s = ObjectStore::new(registry.clone());
    s.set(Path::resource(1, 0, 0), Value::Integer(1));
    s.set(Path::resource(1, 0, 1), Value::Integer(60));
    s.set(Path::resource(1, 0, 7), Value::String("U".into()));
    s.set(Path::resource(1, 0, 23), Value::Boolean(false));
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource(3, 0, 9), Value::Integer(87));
    s.set(Path::resource(3, 0, 14), Value::String("+01:00".into()));
    s.set(Path::resource(4, 0, 2), Value::Integer(-93));
    s
}

/// The two roles over a loss-free link with a fake clock.
struct Duo {
    now: Instant,
    server: Server,
    client: Client,
    queue: Vec<(Instant, Dir, Vec<u8>)>,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    /// Message ids of the requests [`Duo::answer`] hands the client.
    next_mid: u16,
    /// Datagrams the client sent.
    to_server: usize,
    /// Every datagram the server sent, in order.
    to_client: Vec<Vec<u8>>,
}

impl support::Link for Duo {
    support::link_fields!();
    fn next_arrival(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.0).min()
    }
    fn send(&mut self, dir: Dir, bytes: Vec<u8>) {
        self.to_server += usize::from(dir == Dir::ToServer);
        if dir == Dir::ToClient {
            self.to_client.push(bytes.clone());
        }
        self.queue.push((self.now + LATENCY, dir, bytes));
    }
    fn take_due(&mut self) -> Option<(Dir, Vec<u8>)> {
        support::pop_due(&mut self.queue, self.now, |q| q.0).map(|q| (q.1, q.2))
    }
}

impl Duo {
    /// Registered, events cleared.
    fn registered() -> Duo {
        let registry = registry();
        let mut duo = Duo {
            now: Instant::now(),
            server: support::server(&registry),
            client: Client::new(
                support::client_config(&registry, Duration::from_secs(3600)),
                meter_store(&registry),
            ),
            queue: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            next_mid: 0x7000,
            to_server: 0,
            to_client: Vec::new(),
        };
        duo.client.start(duo.now);
        duo.run_until(|d| support::both_registered(&d.server, &d.client));
        duo.server_events.clear();
        duo.client_events.clear();
        duo
    }

    fn drive(&mut self) {
        assert!(support::settle(self), "the link did not settle");
    }

    fn run_until(&mut self, done: impl FnMut(&Duo) -> bool) {
        let until = self.now + Duration::from_secs(300);
        assert!(
            support::advance(self, until, Duo::drive, done),
            "condition not met"
        );
    }

    fn request(&mut self, request: DmRequest) -> Result<Response, RequestError> {
        let id = self.server.request(self.now, "meter-1", request)?;
        self.run_until(|d| d.response(id).is_some());
        self.response(id).unwrap()
    }

    fn response(&self, id: RequestId) -> Option<Result<Response, RequestError>> {
        support::response_to(&self.server_events, id)
    }

    fn notifications(&self) -> Vec<Vec<Record>> {
        support::notifications(&self.server_events)
    }

    fn set(&mut self, path: Path, value: Value) {
        self.client.set_value(self.now, path, value).unwrap();
        let until = self.now + Duration::from_secs(1);
        support::advance(self, until, Duo::drive, |_| false);
        self.now = until;
        self.drive();
    }

    /// Hands `request` to the client as the server would send it and returns its answer.
    fn answer(&mut self, mut request: Packet) -> Packet {
        request.header.set_type(MessageType::Confirmable);
        self.next_mid += 1;
        request.header.message_id = self.next_mid;
        request.set_token(self.next_mid.to_be_bytes().to_vec());
        self.client
            .handle_datagram(self.now, SERVER.parse().unwrap(), &wire::encode(&request));
        let t = self.client.poll_transmit().expect("an answer");
        wire::decode(&t.payload).unwrap()
    }
}

fn code(p: &Packet) -> u8 {
    p.header.code.into()
}

fn records(result: Result<Response, RequestError>) -> Vec<Record> {
    match result {
        Ok(Response {
            code: 205,
            content: Content::Records(r),
            ..
        }) => r,
        other => panic!("expected 2.05 with records, got {other:?}"),
    }
}

fn value_at(records: &[Record], path: &str) -> Option<Value> {
    records
        .iter()
        .find(|r| r.path == p(path))
        .map(|r| r.value.clone())
}

#[test]
fn a_path_list_is_senml_names_without_values() {
    // Core §7.4.4 (SenML JSON, RFC 8428 §5): one record per path, `n` only.
    let paths = [p("/3/0/0"), p("/3/0/9")];
    assert_eq!(
        encode_paths(ContentFormat::SenmlJson, &paths).unwrap(),
        br#"[{"n":"/3/0/0"},{"n":"/3/0/9"}]"#.to_vec()
    );
    // Core §7.4.5 (SenML CBOR, RFC 8428 §6 Table 4: n is label 0): array(2),
    // map(1) {0: text(6) "/3/0/0"}, map(1) {0: text(6) "/3/0/9"} (RFC 8949 §3.1).
    assert_eq!(
        hex::encode(encode_paths(ContentFormat::SenmlCbor, &paths).unwrap()),
        "82a100662f332f302f30a100662f332f302f39"
    );
    assert_eq!(
        decode_paths(
            ContentFormat::SenmlCbor,
            &hex::decode("82a100662f332f302f30a100662f332f302f39").unwrap()
        )
        .unwrap(),
        paths
    );
}

#[test]
fn a_path_list_resolves_base_names_and_refuses_values() {
    // RFC 8428 §4.5.1: name = base name + name; §4.1: bn carries over.
    let json = br#"[{"bn":"/3/0/","n":"0"},{"n":"9"},{"bn":"/1/0/","n":"1"},{"n":"","bn":"/4"}]"#;
    assert_eq!(
        decode_paths(ContentFormat::SenmlJson, json).unwrap(),
        vec![p("/3/0/0"), p("/3/0/9"), p("/1/0/1"), p("/4")]
    );
    // CBOR: {-2 (0x21): "/3/0/", 0: "9"}.
    let cbor = hex::decode("81a221652f332f302f006139").unwrap();
    assert_eq!(
        decode_paths(ContentFormat::SenmlCbor, &cbor).unwrap(),
        vec![p("/3/0/9")]
    );
    let e = decode_paths(
        ContentFormat::SenmlJson,
        br#"[{"n":"/3/0/9"},{"n":"/3/0/0","v":1}]"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("record 1") && e.to_string().contains("\"v\""),
        "{e}"
    );
    let e = decode_paths(ContentFormat::SenmlJson, br#"[{"n":"3/0/9"}]"#).unwrap_err();
    assert!(e.to_string().contains("not an LwM2M path"), "{e}");
    let e = decode_paths(ContentFormat::Tlv, b"").unwrap_err();
    assert!(e.to_string().contains("SenML"), "{e}");
}

#[test]
fn composite_requests_use_fetch_and_ipatch_on_the_root() {
    let registry = registry();
    let paths = [p("/3/0/9")];
    // Transport §6.4: Read-Composite = FETCH, Content-Format and Accept SenML.
    let r = read_request(ContentFormat::SenmlJson, &paths).unwrap();
    assert_eq!(code(&r), FETCH);
    assert!(r.get_option(CoapOption::UriPath).is_none());
    assert_eq!(lwm2m::coap::options::content_format(&r), Some(110));
    assert_eq!(lwm2m::coap::options::accept(&r), Some(110));
    assert_eq!(lwm2m::coap::options::observe(&r), None);
    // Observe-Composite: the same FETCH with Observe 0; its cancel Observe 1 (RFC 7641 §2).
    let o = observe_request(ContentFormat::SenmlCbor, &paths, false).unwrap();
    assert_eq!(
        (code(&o), lwm2m::coap::options::observe(&o)),
        (FETCH, Some(0))
    );
    let c = observe_request(ContentFormat::SenmlCbor, &paths, true).unwrap();
    assert_eq!(lwm2m::coap::options::observe(&c), Some(1));
    // Write-Composite: iPATCH with records at absolute paths.
    let w = write_request(
        ContentFormat::SenmlJson,
        &[Record::new(p("/1/0/1"), Value::Integer(120))],
        &registry,
    )
    .unwrap();
    assert_eq!(code(&w), IPATCH);
    assert_eq!(w.payload, br#"[{"bn":"/","n":"1/0/1","v":120}]"#.to_vec());
}

#[test]
fn read_composite_returns_values_from_several_objects() {
    for format in [ContentFormat::SenmlCbor, ContentFormat::SenmlJson] {
        let mut duo = Duo::registered();
        let r = records(duo.request(DmRequest::ReadComposite {
            paths: vec![p("/3/0/0"), p("/3/0/9"), p("/1/0/1")],
            format: Some(format),
        }));
        assert_eq!(
            value_at(&r, "/3/0/0"),
            Some(Value::String("meterbench".into()))
        );
        assert_eq!(value_at(&r, "/3/0/9"), Some(Value::Integer(87)));
        assert_eq!(value_at(&r, "/1/0/1"), Some(Value::Integer(60)));
        assert_eq!(r.len(), 3, "{format}: {r:?}");
    }
}

#[test]
fn read_composite_leaves_out_what_the_device_lacks_and_is_404_when_it_has_none() {
    let mut duo = Duo::registered();
    let r = records(duo.request(DmRequest::ReadComposite {
        paths: vec![p("/3/0/9"), p("/3/0/2"), p("/3442/0/1")],
        format: None,
    }));
    assert_eq!(r, vec![Record::new(p("/3/0/9"), Value::Integer(87))]);
    // ETS int-281: an executable resource (/1/0/8) is left out, the rest read.
    let r = records(duo.request(DmRequest::ReadComposite {
        paths: vec![p("/1/0/1"), p("/1/0/7"), p("/1/0/8")],
        format: None,
    }));
    assert_eq!(r.len(), 2, "{r:?}");
    let none = duo
        .request(DmRequest::ReadComposite {
            paths: vec![p("/3/0/2"), p("/9/0/1"), p("/0/0/3")],
            format: None,
        })
        .unwrap();
    assert_eq!(none.code, 404);
    // ETS int-235: `/` reads every readable value.
    let all = records(duo.request(DmRequest::ReadComposite {
        paths: vec![Path::ROOT],
        format: None,
    }));
    assert!(all.iter().any(|r| r.path.object_id() == Some(1)));
    assert!(all.iter().any(|r| r.path.object_id() == Some(3)));
    assert!(all.iter().any(|r| r.path.object_id() == Some(4)));
}

#[test]
fn write_composite_is_all_or_nothing() {
    let mut duo = Duo::registered();
    let ok = duo
        .request(DmRequest::WriteComposite {
            records: vec![
                Record::new(p("/1/0/1"), Value::Integer(120)),
                Record::new(p("/3/0/14"), Value::String("+02:00".into())),
            ],
            format: Some(ContentFormat::SenmlJson),
        })
        .unwrap();
    assert_eq!(ok.code, 204);
    assert_eq!(
        duo.client.store().get(&p("/1/0/1")),
        Some(&Value::Integer(120))
    );
    assert!(duo
        .client_events
        .contains(&ClientEvent::Written { path: p("/3/0/14") }));
    // /3/0/0 Manufacturer is read-only: the whole request is refused, /1/0/1 untouched.
    let refused = duo
        .request(DmRequest::WriteComposite {
            records: vec![
                Record::new(p("/1/0/1"), Value::Integer(300)),
                Record::new(p("/3/0/0"), Value::String("other".into())),
            ],
            format: None,
        })
        .unwrap();
    assert_eq!(refused.code, 405);
    assert_eq!(
        duo.client.store().get(&p("/1/0/1")),
        Some(&Value::Integer(120))
    );
}

#[test]
fn observe_composite_notifies_changes_of_its_paths_until_cancelled() {
    let mut duo = Duo::registered();
    let paths = vec![p("/3/0/9"), p("/1/0/1")];
    let first = records(duo.request(DmRequest::ObserveComposite {
        paths: paths.clone(),
        format: None,
    }));
    assert_eq!(first.len(), 2);
    assert_eq!(duo.server.observations("meter-1").len(), 1);
    duo.set(p("/3/0/9"), Value::Integer(80));
    let n = duo.notifications();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(value_at(&n[0], "/3/0/9"), Some(Value::Integer(80)));
    assert_eq!(value_at(&n[0], "/1/0/1"), Some(Value::Integer(60)));
    // A resource outside the list changes: no notification.
    duo.set(p("/4/0/2"), Value::Integer(-80));
    assert_eq!(duo.notifications().len(), 1);
    let cancelled = duo
        .request(DmRequest::CancelObserveComposite {
            paths: vec![p("/1/0/1"), p("/3/0/9")],
        })
        .unwrap();
    assert_eq!(cancelled.code, 205);
    assert!(duo.client.observed_paths().is_empty());
    duo.set(p("/3/0/9"), Value::Integer(70));
    assert_eq!(duo.notifications().len(), 1);
    let e = duo
        .server
        .request(
            duo.now,
            "meter-1",
            DmRequest::CancelObserveComposite { paths },
        )
        .unwrap_err();
    assert!(e.to_string().contains("no Observe-Composite"), "{e}");
}

/// An Observe-Composite targets no one path, so the attributes of the
/// paths it covers pace it (Core §5.1.2; ETS int-304 writes pmin/pmax on
/// one observed resource, /1/0/1, and int-310 pmax on one observed
/// object): with nothing changing and no attribute, no notification comes;
/// once /1/0/1 has pmin 1 s and pmax 2 s, one comes every 2 s (fake
/// clock), each with every observed path.
#[test]
fn pmax_written_on_one_observed_resource_paces_the_composite_observation() {
    let mut duo = Duo::registered();
    let paths = vec![p("/1/0/1"), p("/3/0/0")];
    records(duo.request(DmRequest::ObserveComposite {
        paths: paths.clone(),
        format: None,
    }));
    let quiet_until = duo.now + Duration::from_secs(10);
    support::advance(&mut duo, quiet_until, Duo::drive, |_| false);
    assert!(duo.notifications().is_empty(), "nothing changed, no pmax");
    let written = duo
        .request(DmRequest::WriteAttributes {
            path: p("/1/0/1"),
            attributes: lwm2m::server::Attributes {
                pmin: Some(1),
                pmax: Some(2),
                ..Default::default()
            },
        })
        .unwrap();
    assert_eq!(written.code, 204);
    duo.run_until(|d| !d.notifications().is_empty());
    let first = duo.now;
    duo.run_until(|d| d.notifications().len() >= 2);
    let between = duo.now - first;
    assert!(
        between >= Duration::from_secs(2) && between <= Duration::from_secs(2) + 4 * LATENCY,
        "pmax 2 s apart, got {between:?}"
    );
    for n in duo.notifications() {
        let got: Vec<Path> = n.iter().map(|r| r.path).collect();
        assert_eq!(got.len(), 2, "{n:?}");
        assert!(paths.iter().all(|q| got.contains(q)), "{n:?}");
    }
}

#[test]
fn the_client_refuses_formats_other_than_senml_with_415_and_406() {
    let mut duo = Duo::registered();
    let mut fetch = read_request(ContentFormat::SenmlJson, &[p("/3/0/9")]).unwrap();
    fetch.clear_option(CoapOption::ContentFormat);
    lwm2m::coap::options::set_uint(&mut fetch, CoapOption::ContentFormat, 11542);
    assert_eq!(
        code(&duo.answer(fetch)),
        0x8f,
        "4.15 Unsupported Content-Format"
    );
    let mut accept_tlv = read_request(ContentFormat::SenmlJson, &[p("/3/0/9")]).unwrap();
    accept_tlv.clear_option(CoapOption::Accept);
    lwm2m::coap::options::set_uint(&mut accept_tlv, CoapOption::Accept, 11542);
    assert_eq!(code(&duo.answer(accept_tlv)), 0x86, "4.06 Not Acceptable");
    let mut garbled = read_request(ContentFormat::SenmlJson, &[p("/3/0/9")]).unwrap();
    garbled.payload = b"[{\"n\":".to_vec();
    let answer = duo.answer(garbled);
    assert_eq!(code(&answer), 0x80, "4.00 Bad Request");
    assert!(String::from_utf8_lossy(&answer.payload).contains("senml-json (110) payload"));
}

#[test]
fn a_client_without_composite_support_answers_405_and_does_not_send() {
    let mut duo = Duo::registered();
    duo.client.set_composite_support(false);
    let r = duo
        .request(DmRequest::ReadComposite {
            paths: vec![p("/3/0/9")],
            format: None,
        })
        .unwrap();
    assert_eq!(r.code, 405);
    let w = duo.request(DmRequest::WriteComposite {
        records: vec![Record::new(p("/1/0/1"), Value::Integer(5))],
        format: None,
    });
    assert_eq!(w.unwrap().code, 405);
    assert_eq!(
        duo.client
            .send(duo.now, &[p("/3/0/9")], ContentFormat::SenmlCbor),
        Err(SendError::Unsupported)
    );
}

#[test]
fn send_reaches_the_server_as_an_event_and_is_answered_2_04() {
    let mut duo = Duo::registered();
    duo.client
        .send(
            duo.now,
            &[p("/3/0/9"), p("/4/0/2")],
            ContentFormat::SenmlCbor,
        )
        .unwrap();
    duo.run_until(|d| {
        d.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::SendAnswered { .. }))
    });
    assert!(duo
        .client_events
        .contains(&ClientEvent::SendAnswered { code: Some(204) }));
    let sent: Vec<_> = duo
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Sent { endpoint, records } => Some((endpoint.clone(), records.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![(
            "meter-1".to_string(),
            vec![
                Record::new(p("/3/0/9"), Value::Integer(87)),
                Record::new(p("/4/0/2"), Value::Integer(-93)),
            ]
        )]
    );
}

#[test]
fn mute_send_and_no_registration_stop_a_send() {
    let mut duo = Duo::registered();
    // Object 1 resource 23, Mute Send: true (or absent) de-activates Send.
    let ok = duo
        .request(DmRequest::WriteComposite {
            records: vec![Record::new(p("/1/0/23"), Value::Boolean(true))],
            format: None,
        })
        .unwrap();
    assert_eq!(ok.code, 204);
    assert_eq!(
        duo.client
            .send(duo.now, &[p("/3/0/9")], ContentFormat::SenmlCbor),
        Err(SendError::Muted(0))
    );
    let registry = registry();
    let mut store = meter_store(&registry);
    store.clear(&p("/1/0/23"));
    let unset = Client::new(
        support::client_config(&registry, Duration::from_secs(60)),
        store,
    );
    assert!(unset.send_muted(), "absent Mute Send de-activates Send");
    let mut idle = Client::new(
        support::client_config(&registry, Duration::from_secs(60)),
        meter_store(&registry),
    );
    assert_eq!(
        idle.send(Instant::now(), &[p("/3/0/9")], ContentFormat::SenmlJson),
        Err(SendError::NotRegistered)
    );
}

#[test]
fn the_server_answers_a_send_from_an_unregistered_address_with_4_04() {
    let registry = registry();
    let mut server = support::server(&registry);
    let mut send = lwm2m::server::composite::send_request(
        ContentFormat::SenmlJson,
        &[Record::new(p("/3/0/9"), Value::Integer(1))],
        &registry,
    )
    .unwrap();
    send.header.set_type(MessageType::Confirmable);
    send.header.message_id = 9;
    send.set_token(vec![1]);
    let stranger: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    server.handle_datagram(Instant::now(), stranger, &wire::encode(&send));
    let answer = wire::decode(&server.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(code(&answer), 0x84, "4.04 Not Found");
    assert!(
        std::iter::from_fn(|| server.poll_event()).all(|e| !matches!(e, ServerEvent::Sent { .. }))
    );
    // Registered but in TLV: 4.15, and no Sent event.
    let mut duo = Duo::registered();
    let mut tlv = Packet::new();
    tlv.header.code = MessageClass::Request(RequestType::Post);
    tlv.header.set_type(MessageType::Confirmable);
    tlv.header.message_id = 10;
    tlv.set_token(vec![2]);
    lwm2m::coap::options::add_strings(&mut tlv, CoapOption::UriPath, &["dp"]);
    lwm2m::coap::options::set_uint(&mut tlv, CoapOption::ContentFormat, 11542);
    tlv.payload = vec![0xc1, 0x09, 0x01];
    duo.server
        .handle_datagram(duo.now, CLIENT.parse().unwrap(), &wire::encode(&tlv));
    let answer = wire::decode(&duo.server.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(code(&answer), 0x8f, "4.15 Unsupported Content-Format");
}

#[test]
fn a_large_read_composite_answer_comes_block_wise_and_is_fetched_whole() {
    // RFC 7959 §2.4 with RFC 8132 §2.3.1 (FETCH carries Block2): the server
    // repeats the FETCH, path list and all, for each next block.
    let mut duo = Duo::registered();
    let whole = records(duo.request(DmRequest::ReadComposite {
        paths: vec![Path::ROOT],
        format: Some(ContentFormat::SenmlJson),
    }));
    duo.client.set_block2_size(Some(2)); // 64-byte blocks
    let before = duo.to_server;
    let blockwise = records(duo.request(DmRequest::ReadComposite {
        paths: vec![Path::ROOT],
        format: Some(ContentFormat::SenmlJson),
    }));
    assert_eq!(blockwise, whole);
    assert!(
        duo.to_server - before > 2,
        "the answer came in several blocks"
    );
}

/// `bytes` decoded, its message id and token cleared, encoded again: the
/// request as a vector can pin it (the id and token are the layer's draw).
fn normalised(bytes: &[u8]) -> Vec<u8> {
    let mut p = wire::decode(bytes).unwrap();
    p.header.message_id = 0;
    p.set_token(Vec::new());
    wire::encode(&p)
}

#[test]
fn a_composite_notification_larger_than_one_block_is_completed_by_fetch_of_its_paths() {
    // RFC 7959 §2.6: the device sends the first block of a large
    // notification; RFC 8132 §2.3.1: the rest of a FETCH's body is asked
    // for by repeating the FETCH, payload and all, with Block2.
    let mut duo = Duo::registered();
    let paths = vec![p("/3/0"), p("/4/0")];
    let first = records(duo.request(DmRequest::ObserveComposite {
        paths: paths.clone(),
        format: Some(ContentFormat::SenmlJson),
    }));
    duo.client.set_block2_size(Some(2)); // 64-byte blocks
    let sent_before = duo.to_client.len();
    duo.set(p("/3/0/9"), Value::Integer(55));
    let n = duo.notifications();
    assert_eq!(n.len(), 1, "one whole notification: {n:?}");
    assert_eq!(
        n[0].len(),
        first.len(),
        "every value, not the first block's"
    );
    assert_eq!(value_at(&n[0], "/3/0/9"), Some(Value::Integer(55)));
    assert_eq!(value_at(&n[0], "/4/0/2"), value_at(&first, "/4/0/2"));
    // The server's request for block 1: CON FETCH (0.05), no Uri-Path (/),
    // Content-Format 110 (option 12: 0xC1 0x6E), Accept 110 (option 17,
    // delta 5: 0x51 0x6E), Block2 NUM 1 M 0 SZX 2 (option 23, delta 6:
    // 0x61 0x12; RFC 7959 §2.2), then the same SenML JSON path list.
    let fetches: Vec<Vec<u8>> = duo.to_client[sent_before..]
        .iter()
        .map(|b| normalised(b))
        .filter(|b| b[1] == 0x05)
        .collect();
    let list = br#"[{"n":"/3/0"},{"n":"/4/0"}]"#;
    let mut block1 = vec![
        0x40, 0x05, 0x00, 0x00, 0xC1, 0x6E, 0x51, 0x6E, 0x61, 0x12, 0xFF,
    ];
    block1.extend_from_slice(list);
    assert_eq!(fetches.first(), Some(&block1), "{fetches:02x?}");
    assert!(
        !duo.to_client[sent_before..].iter().any(
            |b| wire::decode(b).unwrap().header.code == MessageClass::Request(RequestType::Get)
        ),
        "no GET of / for a composite notification"
    );
}

#[test]
fn a_write_composite_larger_than_one_block_goes_as_ipatch_blocks_with_block1() {
    // RFC 7959 §2.5 with RFC 8132 §3.2 (iPATCH carries Block1): 1024-byte
    // blocks, each but the last answered 2.31 Continue echoing Block1
    // (§2.3), the last 2.04 Changed; the blocks put together are the SenML.
    let mut duo = Duo::registered();
    let zone = "Z".repeat(1500);
    let recs = vec![Record::new(p("/3/0/15"), Value::String(zone))];
    let whole =
        lwm2m::server::composite::write_request(ContentFormat::SenmlJson, &recs, &registry())
            .unwrap()
            .payload;
    assert!(whole.len() > 1024 && whole.len() <= 2048, "{}", whole.len());
    let id = duo
        .server
        .request(
            duo.now,
            "meter-1",
            DmRequest::WriteComposite {
                records: recs,
                format: Some(ContentFormat::SenmlJson),
            },
        )
        .unwrap();
    let first = wire::decode(&duo.server.poll_transmit().expect("block 0").payload).unwrap();
    // CON iPATCH (0.07), no Uri-Path, Content-Format 110 (0xC1 0x6E),
    // Block1 NUM 0 M 1 SZX 6 (option 27, delta 15: 0xD1 0x02 0x0E), Size1
    // the whole body's size (option 60, delta 33: 0xD2 0x14 and two bytes;
    // RFC 7959 §4), then the payload marker.
    let head = normalised(&wire::encode(&first));
    let size = u16::try_from(whole.len()).unwrap().to_be_bytes();
    let expected = [
        0x40, 0x07, 0x00, 0x00, 0xC1, 0x6E, 0xD1, 0x02, 0x0E, 0xD2, 0x14, size[0], size[1], 0xFF,
    ];
    assert_eq!(&head[..expected.len()], &expected[..], "{head:02x?}");
    assert_eq!(first.payload, whole[..1024]);
    // 2.31 Continue, echoing Block1 0/1/6.
    let mut cont = Packet::new();
    cont.header.set_type(MessageType::Acknowledgement);
    cont.header.message_id = first.header.message_id;
    cont.set_token(first.get_token().to_vec());
    cont.header.code = MessageClass::Response(coap_lite::ResponseType::Continue);
    cont.add_option(CoapOption::Block1, vec![0x0E]);
    duo.server
        .handle_datagram(duo.now, CLIENT.parse().unwrap(), &wire::encode(&cont));
    let second = wire::decode(&duo.server.poll_transmit().expect("block 1").payload).unwrap();
    assert_eq!(
        second.header.code,
        MessageClass::Request(RequestType::IPatch)
    );
    assert_eq!(
        second
            .get_option(CoapOption::Block1)
            .and_then(|v| v.front().cloned()),
        Some(vec![0x16]),
        "Block1 NUM 1 M 0 SZX 6"
    );
    let mut sent = first.payload.clone();
    sent.extend_from_slice(&second.payload);
    assert_eq!(sent, whole);
    let mut changed = Packet::new();
    changed.header.set_type(MessageType::Acknowledgement);
    changed.header.message_id = second.header.message_id;
    changed.set_token(second.get_token().to_vec());
    changed.header.code = MessageClass::Response(coap_lite::ResponseType::Changed);
    changed.add_option(CoapOption::Block1, vec![0x16]);
    duo.server
        .handle_datagram(duo.now, CLIENT.parse().unwrap(), &wire::encode(&changed));
    let mut answered = None;
    while let Some(e) = duo.server.poll_event() {
        if let ServerEvent::Response {
            id: got, result, ..
        } = e
        {
            if got == id {
                answered = Some(result);
            }
        }
    }
    assert_eq!(answered.expect("the final answer").unwrap().code, 204);
}
