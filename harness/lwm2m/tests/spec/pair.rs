//! The server role and the client role of `lwm2m` talking to each other
//! through an in-memory link with a fake clock, the quinn-proto `Pair` way:
//! every exchange runs in microseconds, deterministically, with loss,
//! duplication, delay and reordering injected by the test.

use std::time::{Duration, Instant};

use crate::support;
use crate::support::{registry, Dir};

use lwm2m::client::{Client, ClientEvent, ObjectStore, RegistrationState};
use lwm2m::coap::summarize;
use lwm2m::format::{ContentFormat, Record};
use lwm2m::server::{
    Attributes, Content, DmRequest, RequestError, RequestId, Response, Server, ServerConfig,
    ServerEvent, WriteMode,
};
use lwm2m::{Path, Registry, Value};
use proptest::prelude::*;

const LATENCY: Duration = Duration::from_millis(20);

/// What the link does with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Delay(Duration),
}

struct InFlight {
    at: Instant,
    dir: Dir,
    bytes: Vec<u8>,
}

/// One line of the link's log: when, which way, what happened, the summary.
#[derive(Debug, Clone)]
struct Logged {
    at: Duration,
    dir: Dir,
    fate: Fate,
    summary: String,
}

type Filter = Box<dyn FnMut(Dir, &str) -> Fate>;

struct Pair {
    start: Instant,
    now: Instant,
    server: Server,
    client: Client,
    queue: Vec<InFlight>,
    filter: Filter,
    log: Vec<Logged>,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
}

fn meter_store(registry: &Registry) -> ObjectStore {
    let mut s = ObjectStore::new(registry.clone());
    s.set(Path::resource(1, 0, 0), Value::Integer(1));
    s.set(Path::resource(1, 0, 1), Value::Integer(60));
    s.set(Path::resource(1, 0, 7), Value::String("U".into()));
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource(3, 0, 1), Value::String("VM-1".into()));
    s.set(Path::resource(3, 0, 3), Value::String("1.0".into()));
    s.set(Path::resource_instance(3, 0, 6, 0), Value::Integer(1));
    s.set(Path::resource_instance(3, 0, 6, 1), Value::Integer(5));
    s.set(Path::resource(3, 0, 9), Value::Integer(87));
    s.set(Path::resource_instance(3, 0, 11, 0), Value::Integer(0));
    s.set(Path::resource(3, 0, 13), Value::Time(1_700_000_000));
    s.set(Path::resource(3, 0, 14), Value::String("+01:00".into()));
    s.set(Path::resource(3, 0, 16), Value::String("U".into()));
    s.set(Path::resource(4, 0, 2), Value::Integer(-93));
    s
}

impl Pair {
    fn new() -> Self {
        Self::with_lifetime(Duration::from_secs(60))
    }

    fn with_lifetime(lifetime: Duration) -> Self {
        let registry = registry();
        let start = Instant::now();
        let server = support::server(&registry);
        let client = Client::new(
            support::client_config(&registry, lifetime),
            meter_store(&registry),
        );
        Pair {
            start,
            now: start,
            server,
            client,
            queue: Vec::new(),
            filter: Box::new(|_, _| Fate::Deliver),
            log: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn set_filter(&mut self, f: impl FnMut(Dir, &str) -> Fate + 'static) {
        self.filter = Box::new(f);
    }

    /// Every datagram travelling `towards` meets `fate`; the rest arrive.
    fn set_fate(&mut self, towards: Dir, fate: Fate) {
        self.set_filter(move |dir, _| if dir == towards { fate } else { Fate::Deliver });
    }

    /// How many of the server's events `f` picks.
    fn server_event_count(&self, f: impl Fn(&ServerEvent) -> bool) -> usize {
        self.server_events.iter().filter(|e| f(e)).count()
    }

    /// Injects raw bytes as if the peer had sent them.
    fn inject(&mut self, dir: Dir, bytes: &[u8]) {
        self.queue.push(InFlight {
            at: self.now,
            dir,
            bytes: bytes.to_vec(),
        });
    }

    /// Processes everything due at the current instant.
    fn drive(&mut self) {
        assert!(
            support::settle(self),
            "the pair did not settle at {:?}: a timer keeps firing",
            self.elapsed()
        );
    }

    /// Runs the fake clock forward by `d`, waking each side when it asked to be woken.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        support::advance(self, until, Pair::drive, |_| false);
        self.now = until;
        self.drive();
    }

    /// Runs until `done` holds, at most `limit` of fake time, checking after
    /// every instant at which something happened (so `now` is exact).
    fn run_until(&mut self, limit: Duration, done: impl FnMut(&Pair) -> bool) {
        let until = self.now + limit;
        if !support::advance(self, until, Pair::drive, done) {
            panic!(
                "condition not met within {limit:?}; log:\n{}",
                self.log_text()
            );
        }
    }

    fn log_text(&self) -> String {
        self.log
            .iter()
            .map(|l| {
                format!(
                    "{:>9.3}s {:?} {:?} {}",
                    l.at.as_secs_f64(),
                    l.dir,
                    l.fate,
                    l.summary
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn registered(&mut self) {
        self.client.start(self.now);
        self.run_until(Duration::from_secs(10), |p| {
            support::both_registered(&p.server, &p.client)
        });
        self.server_events.clear();
        self.client_events.clear();
    }

    /// Sends a request and runs until its response event; returns the result.
    fn request(&mut self, request: DmRequest) -> Result<Response, RequestError> {
        let id = self
            .server
            .request(self.now, "meter-1", request)
            .expect("endpoint registered");
        self.run_until(Duration::from_secs(120), |p| p.response(id).is_some());
        self.response(id).unwrap()
    }

    /// The response code of `request`, for tests that check only that.
    fn code(&mut self, request: DmRequest) -> Result<u16, RequestError> {
        self.request(request).map(|r| r.code)
    }

    fn response(&self, id: RequestId) -> Option<Result<Response, RequestError>> {
        support::response_to(&self.server_events, id)
    }

    /// The records of every notification the server delivered, in order.
    fn notifications(&self) -> Vec<Vec<Record>> {
        support::notifications(&self.server_events)
    }

    /// Times (since start) at which datagrams whose summary contains `needle` were sent.
    fn sent_at(&self, dir: Dir, needle: &str) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|l| l.dir == dir && l.summary.contains(needle))
            .map(|l| l.at)
            .collect()
    }

    fn set(&mut self, path: Path, value: Value) {
        self.client
            .set_value(self.now, path, value)
            .expect("set_value");
        self.drive();
    }
}

impl support::Link for Pair {
    support::link_fields!();

    fn next_arrival(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.at).min()
    }

    fn send(&mut self, dir: Dir, bytes: Vec<u8>) {
        let summary = summarize(&bytes);
        let fate = (self.filter)(dir, &summary);
        self.log.push(Logged {
            at: self.elapsed(),
            dir,
            fate,
            summary,
        });
        let at = self.now + LATENCY;
        match fate {
            Fate::Deliver => self.queue.push(InFlight { at, dir, bytes }),
            Fate::Drop => {}
            Fate::Duplicate => {
                self.queue.push(InFlight {
                    at,
                    dir,
                    bytes: bytes.clone(),
                });
                self.queue.push(InFlight {
                    at: at + LATENCY,
                    dir,
                    bytes,
                });
            }
            Fate::Delay(d) => self.queue.push(InFlight {
                at: at + d,
                dir,
                bytes,
            }),
        }
    }

    fn take_due(&mut self) -> Option<(Dir, Vec<u8>)> {
        let due = support::pop_due(&mut self.queue, self.now, |q| q.at);
        due.map(|d| (d.dir, d.bytes))
    }
}

/// Write (Replace) of the one resource `path` as plain text.
fn write_text(path: Path, text: &str) -> DmRequest {
    DmRequest::Write {
        path,
        mode: WriteMode::Replace,
        records: vec![Record::new(path, Value::String(text.into()))],
        format: Some(ContentFormat::Text),
    }
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

fn value_at(records: &[Record], path: Path) -> Option<Value> {
    records
        .iter()
        .find(|r| r.path == path)
        .map(|r| r.value.clone())
}

#[test]
fn registration_carries_the_object_list() {
    let mut p = Pair::new();
    p.client.start(p.now);
    p.run_for(Duration::from_secs(1));
    let reg = match &p.server_events[..] {
        [ServerEvent::Registered(r)] => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reg.endpoint, "meter-1");
    assert_eq!(reg.lifetime, Duration::from_secs(60));
    assert_eq!(reg.lwm2m_version, "1.1");
    assert_eq!(reg.binding, "U");
    assert!(reg.location.starts_with("/rd/"));
    assert_eq!(
        reg.instances(),
        vec![
            Path::instance(1, 0),
            Path::instance(3, 0),
            Path::instance(4, 0)
        ]
    );
    assert!(reg.has_object(4));
    let ver: Vec<_> = reg
        .objects
        .iter()
        .filter_map(|l| {
            l.attribute("ver")
                .map(|v| (l.target().into_owned(), v.to_string()))
        })
        .collect();
    assert_eq!(
        ver,
        vec![
            ("/1".into(), "1.1".into()),
            ("/3".into(), "1.1".into()),
            ("/4".into(), "1.2".into())
        ]
    );
    assert_eq!(
        p.client.state(),
        &RegistrationState::Registered {
            location: reg.location.clone()
        }
    );
    assert_eq!(
        p.client_events,
        vec![ClientEvent::Registered {
            location: reg.location.clone()
        }]
    );
    let first = &p.log[0].summary;
    assert!(
        first.starts_with("CON POST ")
            && first.contains(" /rd?ep=meter-1&lt=60&lwm2m=1.1&b=U cf=40"),
        "{first}"
    );
    assert!(
        p.log[1].summary.contains("ACK 2.01 Created")
            && p.log[1]
                .summary
                .contains(&format!("Location-Path={}", reg.location))
    );
}

#[test]
fn update_is_sent_at_half_the_lifetime_and_keeps_the_registration() {
    let mut p = Pair::new();
    p.registered();
    p.run_for(Duration::from_secs(305));
    let updates = p.sent_at(Dir::ToServer, "/rd/");
    // Every 30 s (half of lt=60), each a bare POST to the location.
    assert_eq!(updates.len(), 10, "{}", p.log_text());
    for (i, at) in updates.iter().enumerate() {
        let expected = Duration::from_secs(30 * (i as u64 + 1));
        // Each interval starts when the previous Update's response arrives (one round trip later).
        assert!(
            at.abs_diff(expected) < Duration::from_secs(1),
            "update {i} at {at:?}"
        );
    }
    assert!(p
        .server_events
        .iter()
        .all(|e| matches!(e, ServerEvent::Updated(_))));
    assert_eq!(p.server_events.len(), 10);
    assert!(p.client_events.iter().all(|e| *e == ClientEvent::Updated));
    assert!(p.server.registration("meter-1").is_some());
}

#[test]
fn registration_expires_when_no_update_arrives() {
    let mut p = Pair::new();
    p.registered();
    let registered_at = p.server.registration("meter-1").unwrap().registered_at;
    p.set_fate(Dir::ToServer, Fate::Drop);
    p.run_until(Duration::from_secs(120), |p| !p.server_events.is_empty());
    assert_eq!(
        p.server_events[0],
        ServerEvent::Expired {
            endpoint: "meter-1".into()
        }
    );
    assert_eq!(
        p.now,
        registered_at + Duration::from_secs(60),
        "expires exactly at registration + lifetime"
    );
    assert!(p.server.registration("meter-1").is_none());
    assert_eq!(
        p.server.request(
            p.now,
            "meter-1",
            DmRequest::Read {
                path: Path::resource(3, 0, 0),
                format: None
            }
        ),
        Err(RequestError::NotRegistered("meter-1".into()))
    );
}

#[test]
fn stop_deregisters() {
    let mut p = Pair::new();
    p.registered();
    p.client.stop(p.now);
    assert_eq!(p.client.state(), &RegistrationState::Deregistering);
    p.run_for(Duration::from_secs(1));
    assert_eq!(
        p.server_events,
        vec![ServerEvent::Deregistered {
            endpoint: "meter-1".into()
        }]
    );
    assert_eq!(p.client_events, vec![ClientEvent::Deregistered]);
    assert_eq!(p.client.state(), &RegistrationState::Idle);
    assert!(p.server.registrations().is_empty());
    assert!(p.log.iter().any(|l| l.summary.contains("ACK 2.02 Deleted")));
    // Nothing more is sent: no Update timer survives De-register.
    let n = p.log.len();
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.log.len(), n);
}

#[test]
fn read_device_instance_in_tlv_and_senml_cbor() {
    let mut p = Pair::new();
    p.registered();
    for format in [
        ContentFormat::Tlv,
        ContentFormat::SenmlCbor,
        ContentFormat::SenmlJson,
        ContentFormat::Lwm2mCbor,
    ] {
        let result = p.request(DmRequest::Read {
            path: Path::instance(3, 0),
            format: Some(format),
        });
        assert_eq!(result.as_ref().map(|r| r.format), Ok(Some(format)));
        let r = records(result);
        assert_eq!(
            value_at(&r, Path::resource(3, 0, 0)),
            Some(Value::String("meterbench".into())),
            "{format}"
        );
        assert_eq!(
            value_at(&r, Path::resource(3, 0, 9)),
            Some(Value::Integer(87)),
            "{format}"
        );
        assert_eq!(
            value_at(&r, Path::resource_instance(3, 0, 6, 1)),
            Some(Value::Integer(5)),
            "{format}"
        );
        assert_eq!(
            value_at(&r, Path::resource(3, 0, 13)),
            Some(Value::Time(1_700_000_000)),
            "{format}"
        );
        assert_eq!(r.len(), 10, "{format}: {r:?}");
    }
}

#[test]
fn read_single_resource_as_text_and_refuse_text_for_an_instance() {
    let mut p = Pair::new();
    p.registered();
    let r = records(p.request(DmRequest::Read {
        path: Path::resource(3, 0, 9),
        format: Some(ContentFormat::Text),
    }));
    assert_eq!(
        r,
        vec![Record::new(Path::resource(3, 0, 9), Value::Integer(87))]
    );
    assert_eq!(
        p.code(DmRequest::Read {
            path: Path::instance(3, 0),
            format: Some(ContentFormat::Text),
        }),
        Ok(406)
    );
    assert_eq!(
        p.code(DmRequest::Read {
            path: Path::instance(3, 7),
            format: None,
        }),
        Ok(404)
    );
    assert_eq!(
        p.code(DmRequest::Read {
            path: Path::resource(3, 0, 4),
            format: None,
        }),
        Ok(405),
        "Reboot is executable, not readable"
    );
}

#[test]
fn write_then_read_back() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 14);
    assert_eq!(p.code(write_text(path, "+02:00")), Ok(204));
    assert_eq!(p.client_events, vec![ClientEvent::Written { path }]);
    assert_eq!(
        p.client.store().get(&path),
        Some(&Value::String("+02:00".into()))
    );
    let r = records(p.request(DmRequest::Read {
        path,
        format: Some(ContentFormat::SenmlJson),
    }));
    assert_eq!(r, vec![Record::new(path, Value::String("+02:00".into()))]);
    // Partial update of the instance in TLV.
    assert_eq!(
        p.code(DmRequest::Write {
            path: Path::instance(3, 0),
            mode: WriteMode::PartialUpdate,
            records: vec![Record::new(
                Path::resource(3, 0, 13),
                Value::Time(1_800_000_000),
            )],
            format: Some(ContentFormat::Tlv),
        }),
        Ok(204)
    );
    assert_eq!(
        p.client.store().get(&Path::resource(3, 0, 13)),
        Some(&Value::Time(1_800_000_000))
    );
    assert_eq!(
        p.client.store().get(&path),
        Some(&Value::String("+02:00".into())),
        "partial update keeps the rest"
    );
}

#[test]
fn write_to_a_read_only_resource_is_method_not_allowed() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 0);
    assert_eq!(p.code(write_text(path, "evil")), Ok(405));
    assert_eq!(
        p.client.store().get(&path),
        Some(&Value::String("meterbench".into()))
    );
    assert!(p.client_events.is_empty());
}

#[test]
fn undecodable_writes_and_unknown_paths_are_refused() {
    let mut p = Pair::new();
    p.registered();
    // CON PUT /3/0/14, Content-Format 11542 (TLV), a TLV header claiming 5 bytes of value with 1 present.
    let bytes = [
        0x41, 0x03, 0x00, 0x21, 0x77, 0xb1, b'3', 0x01, b'0', 0x02, b'1', b'4', 0x12, 0x2d, 0x16,
        0xff, 0xc8, 0x0e, 0x05, b'a',
    ];
    p.inject(Dir::ToClient, &bytes);
    p.run_for(Duration::from_millis(100));
    assert!(
        p.log.iter().any(|l| l
            .summary
            .starts_with("ACK 4.00 Bad Request mid=0x0021 tok=77")),
        "{}",
        p.log_text()
    );
    // Same for a path the model does not have.
    let bytes = [
        0x41, 0x01, 0x00, 0x22, 0x78, 0xb3, b'9', b'9', b'9', 0x01, b'0',
    ];
    p.inject(Dir::ToClient, &bytes);
    p.run_for(Duration::from_millis(100));
    assert!(
        p.log.iter().any(|l| l
            .summary
            .starts_with("ACK 4.04 Not Found mid=0x0022 tok=78")),
        "{}",
        p.log_text()
    );
    assert!(p.client_events.is_empty());
    assert_eq!(
        p.client.store().get(&Path::resource(3, 0, 14)),
        Some(&Value::String("+01:00".into()))
    );
}

#[test]
fn execute_reboot_emits_the_event() {
    let mut p = Pair::new();
    p.registered();
    assert_eq!(
        p.code(DmRequest::Execute {
            path: Path::resource(3, 0, 4),
            arguments: None,
        }),
        Ok(204)
    );
    assert_eq!(
        p.client_events,
        vec![ClientEvent::Executed {
            path: Path::resource(3, 0, 4),
            arguments: None
        }]
    );
    assert_eq!(
        p.code(DmRequest::Execute {
            path: Path::resource(3, 0, 4),
            arguments: Some("0='5'".into()),
        }),
        Ok(204)
    );
    assert_eq!(
        p.client_events[1],
        ClientEvent::Executed {
            path: Path::resource(3, 0, 4),
            arguments: Some("0='5'".into())
        }
    );
    assert_eq!(
        p.code(DmRequest::Execute {
            path: Path::resource(3, 0, 9),
            arguments: None,
        }),
        Ok(405),
        "Battery Level is not executable"
    );
}

#[test]
fn discover_lists_instances_resources_and_attributes() {
    let mut p = Pair::new();
    p.registered();
    let attrs = Attributes {
        pmin: Some(10),
        pmax: Some(60),
        ..Default::default()
    };
    assert_eq!(
        p.code(DmRequest::WriteAttributes {
            path: Path::resource(3, 0, 9),
            attributes: attrs.clone(),
        }),
        Ok(204)
    );
    assert_eq!(
        p.client.attributes().get(&Path::resource(3, 0, 9)),
        Some(&attrs)
    );
    let links = match p.request(DmRequest::Discover {
        path: Path::object(3),
    }) {
        Ok(Response {
            code: 205,
            content: Content::Links(l),
            format: Some(ContentFormat::LinkFormat),
        }) => l,
        other => panic!("{other:?}"),
    };
    let targets: Vec<&str> = links.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/3", "/3/0", "/3/0/0", "/3/0/1", "/3/0/3", "/3/0/4", "/3/0/5", "/3/0/6", "/3/0/9",
            "/3/0/11", "/3/0/12", "/3/0/13", "/3/0/14", "/3/0/16"
        ]
    );
    assert_eq!(links[0].attribute("ver"), Some("1.1"));
    // Discover on an Object lists the instances and resources bare: only
    // the Object level's own attributes are returned (LwM2M 1.0.2 TS
    // §5.4.2, kept in 1.1.1); `dim` and the resources' attributes come with
    // Discover on the instance (see spec_client.rs).
    assert!(
        links[1..].iter().all(|l| l.attributes.is_empty()),
        "{links:?}"
    );
    let links = match p.request(DmRequest::Discover {
        path: Path::instance(3, 0),
    }) {
        Ok(Response {
            code: 205,
            content: Content::Links(l),
            ..
        }) => l,
        other => panic!("{other:?}"),
    };
    let battery = links.iter().find(|l| l.target == "/3/0/9").unwrap();
    assert_eq!(
        (battery.attribute("pmin"), battery.attribute("pmax")),
        (Some("10"), Some("60"))
    );
    let reboot = links.iter().find(|l| l.target == "/3/0/4").unwrap();
    assert_eq!(
        reboot.attribute("dim"),
        None,
        "an executable has no instances"
    );
    let sources = links.iter().find(|l| l.target == "/3/0/6").unwrap();
    assert_eq!(sources.attribute("dim"), Some("2"));
}

fn battery_notifications(p: &Pair) -> Vec<Value> {
    p.notifications()
        .into_iter()
        .filter_map(|r| value_at(&r, Path::resource(3, 0, 9)))
        .collect()
}

#[test]
fn observe_notifies_on_change_until_cancelled() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    let obs = p
        .server
        .request(
            p.now,
            "meter-1",
            DmRequest::Observe {
                path,
                format: Some(ContentFormat::Text),
            },
        )
        .unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(
        records(p.response(obs).unwrap()),
        vec![Record::new(path, Value::Integer(87))]
    );
    assert_eq!(p.server.observations("meter-1"), vec![(obs, path)]);
    for v in [80, 79, 78] {
        p.set(path, Value::Integer(v));
        p.run_for(Duration::from_secs(1));
    }
    assert_eq!(
        battery_notifications(&p),
        vec![Value::Integer(80), Value::Integer(79), Value::Integer(78)]
    );
    assert!(p.server_events.iter().any(
        |e| matches!(e, ServerEvent::Notification { observation, .. } if *observation == obs)
    ));
    // An unchanged value sends nothing.
    p.set(path, Value::Integer(78));
    p.run_for(Duration::from_secs(1));
    assert_eq!(battery_notifications(&p).len(), 3);
    assert_eq!(p.code(DmRequest::CancelObserve { path }), Ok(205));
    assert!(p.client.observed_paths().is_empty());
    p.set(path, Value::Integer(50));
    p.run_for(Duration::from_secs(5));
    assert_eq!(battery_notifications(&p).len(), 3);
    assert!(p
        .log
        .iter()
        .any(|l| l.summary.contains("GET") && l.summary.contains("obs=1")));
}

#[test]
fn every_eighth_notification_is_confirmable() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    p.request(DmRequest::Observe {
        path,
        format: Some(ContentFormat::Text),
    })
    .unwrap();
    for v in 0..16 {
        p.set(path, Value::Integer(v));
        p.run_for(Duration::from_secs(1));
    }
    let kinds: Vec<&str> = p
        .log
        .iter()
        .filter(|l| l.summary.contains(" 2.05 "))
        .map(|l| &l.summary[..3])
        .collect();
    // The Observe response (piggybacked ACK), then NON x7, CON, NON x7, CON.
    let mut expected = vec!["ACK"];
    for _ in 0..2 {
        expected.extend(["NON"; 7]);
        expected.push("CON");
    }
    assert_eq!(kinds, expected);
    assert_eq!(
        p.log
            .iter()
            .filter(|l| l.dir == Dir::ToClient && l.summary.starts_with("ACK 0.00"))
            .count(),
        2
    );
    assert_eq!(battery_notifications(&p).len(), 16);
}

#[test]
fn a_reset_to_a_notification_cancels_the_observation() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    p.request(DmRequest::Observe { path, format: None })
        .unwrap();
    // The server forgets the observation but its cancel request is lost: the
    // next notification finds no observer and is answered with Reset.
    p.set_filter(|dir, s| {
        if dir == Dir::ToClient && s.contains("obs=1") {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let _ = p
        .server
        .request(p.now, "meter-1", DmRequest::CancelObserve { path })
        .unwrap();
    p.run_for(Duration::from_millis(100));
    p.set_filter(|_, _| Fate::Deliver);
    assert_eq!(p.client.observed_paths(), vec![path]);
    // The notification carries the observation's token, which the cancel
    // request waits on; but it carries Observe, so it is not the cancel's
    // answer (RFC 7641 §3.6): it matches no observation and is answered with
    // Reset, which ends the observation at the client.
    p.set(path, Value::Integer(10));
    p.run_for(Duration::from_secs(1));
    assert!(
        p.log
            .iter()
            .any(|l| l.dir == Dir::ToClient && l.summary.starts_with("RST")),
        "{}",
        p.log_text()
    );
    assert!(p.client.observed_paths().is_empty());
    assert!(battery_notifications(&p).is_empty());
    p.set(path, Value::Integer(12));
    p.run_for(Duration::from_secs(1));
    assert!(
        !p.log.last().unwrap().summary.contains("2.05"),
        "no notification after the Reset"
    );
}

#[test]
fn observe_honours_pmin_and_pmax() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    let attrs = Attributes {
        pmin: Some(10),
        pmax: Some(30),
        ..Default::default()
    };
    p.request(DmRequest::WriteAttributes {
        path,
        attributes: attrs,
    })
    .unwrap();
    p.request(DmRequest::Observe {
        path,
        format: Some(ContentFormat::Text),
    })
    .unwrap();
    p.run_for(Duration::from_secs(1));
    p.set(path, Value::Integer(70));
    p.run_for(Duration::from_secs(5));
    assert!(
        battery_notifications(&p).is_empty(),
        "pmin holds the change back"
    );
    p.run_for(Duration::from_secs(5));
    assert_eq!(battery_notifications(&p), vec![Value::Integer(70)]);
    // Then, with no change, one every pmax.
    p.run_for(Duration::from_secs(61));
    assert_eq!(battery_notifications(&p).len(), 3);
    let sent = p.sent_at(Dir::ToServer, "2.05 Content");
    // [0] is the Observe response; [1] at pmin, then every pmax.
    let rel: Vec<u64> = sent
        .iter()
        .map(|t| (*t - sent[0]).as_millis() as u64 / 100)
        .collect();
    assert_eq!(
        rel[1..],
        [100, 400, 700],
        "tenths of seconds after the Observe: {sent:?}"
    );
}

#[test]
fn observe_with_gt_notifies_only_on_crossing() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    p.request(DmRequest::WriteAttributes {
        path,
        attributes: Attributes {
            gt: Some(90.0),
            ..Default::default()
        },
    })
    .unwrap();
    p.request(DmRequest::Observe {
        path,
        format: Some(ContentFormat::SenmlCbor),
    })
    .unwrap();
    for v in [88, 89, 95, 96, 85] {
        p.set(path, Value::Integer(v));
        p.run_for(Duration::from_secs(1));
    }
    assert_eq!(
        battery_notifications(&p),
        vec![Value::Integer(95), Value::Integer(85)]
    );
}

#[test]
fn reordered_notifications_keep_the_newest() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    p.request(DmRequest::Observe {
        path,
        format: Some(ContentFormat::Text),
    })
    .unwrap();
    let mut first = true;
    p.set_filter(move |dir, s| {
        if dir == Dir::ToServer && s.contains("2.05") && std::mem::take(&mut first) {
            Fate::Delay(Duration::from_secs(2))
        } else {
            Fate::Deliver
        }
    });
    p.set(path, Value::Integer(60));
    p.run_for(Duration::from_millis(500));
    p.set(path, Value::Integer(61));
    p.run_for(Duration::from_secs(5));
    assert_eq!(
        battery_notifications(&p),
        vec![Value::Integer(61)],
        "the older notification arrived last and was dropped"
    );
}

#[test]
fn retransmission_timing_doubles_when_the_first_two_are_lost() {
    let mut p = Pair::new();
    let mut dropped = 0;
    p.set_filter(move |dir, s| {
        if dir == Dir::ToServer && s.contains("/rd?") && dropped < 2 {
            dropped += 1;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.client.start(p.now);
    p.run_until(Duration::from_secs(30), |p| {
        p.server.registration("meter-1").is_some()
    });
    let sends = p.sent_at(Dir::ToServer, "/rd?");
    assert_eq!(sends.len(), 3, "{}", p.log_text());
    let first = sends[1] - sends[0];
    assert!(
        first >= Duration::from_secs(2) && first <= Duration::from_secs(3),
        "initial timeout {first:?}"
    );
    assert_eq!(sends[2] - sends[1], first * 2);
    // All three are the same message (same id and token).
    let ids: Vec<&str> = p
        .log
        .iter()
        .filter(|l| l.summary.contains("/rd?"))
        .map(|l| &l.summary[..30])
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(
        p.server_event_count(|e| matches!(e, ServerEvent::Registered(_))),
        1
    );
}

#[test]
fn server_request_times_out_after_five_transmissions() {
    let mut p = Pair::new();
    p.registered();
    p.set_fate(Dir::ToClient, Fate::Drop);
    let id = p
        .server
        .request(
            p.now,
            "meter-1",
            DmRequest::Read {
                path: Path::resource(3, 0, 9),
                format: None,
            },
        )
        .unwrap();
    p.run_until(Duration::from_secs(100), |p| p.response(id).is_some());
    assert_eq!(
        p.response(id),
        Some(Err(RequestError::Timeout { attempts: 5 }))
    );
    assert_eq!(p.sent_at(Dir::ToClient, "CON GET").len(), 5);
}

#[test]
fn duplicate_con_is_answered_from_cache_without_executing_twice() {
    let mut p = Pair::new();
    p.registered();
    p.set_filter(|dir, s| {
        if dir == Dir::ToClient && s.contains("CON POST") {
            Fate::Duplicate
        } else {
            Fate::Deliver
        }
    });
    let result = p.request(DmRequest::Execute {
        path: Path::resource(3, 0, 4),
        arguments: None,
    });
    p.run_for(Duration::from_secs(1));
    assert_eq!(result.map(|r| r.code), Ok(204));
    assert_eq!(
        p.client_events.len(),
        1,
        "executed once: {:?}",
        p.client_events
    );
    let acks: Vec<&Logged> = p
        .log
        .iter()
        .filter(|l| l.dir == Dir::ToServer && l.summary.contains("2.04"))
        .collect();
    assert_eq!(acks.len(), 2, "the duplicate got the cached ACK");
    assert_eq!(acks[0].summary, acks[1].summary);
    assert_eq!(
        p.server_event_count(|e| matches!(e, ServerEvent::Response { .. })),
        1
    );
}

#[test]
fn duplicated_register_creates_one_registration() {
    let mut p = Pair::new();
    p.set_fate(Dir::ToServer, Fate::Duplicate);
    p.client.start(p.now);
    p.run_for(Duration::from_secs(2));
    assert_eq!(
        p.server_event_count(|e| matches!(e, ServerEvent::Registered(_))),
        1
    );
    let created: Vec<&str> = p
        .log
        .iter()
        .filter(|l| l.summary.contains("2.01 Created"))
        .map(|l| l.summary.as_str())
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0], created[1], "same location replayed");
}

#[test]
fn a_big_payload_travels_without_block_transfer() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 15);
    let big: String = "Europe/Amsterdam;".repeat(200);
    assert!(big.len() > 3000);
    assert_eq!(
        p.code(DmRequest::Write {
            path,
            mode: WriteMode::Replace,
            records: vec![Record::new(path, Value::String(big.clone()))],
            format: Some(ContentFormat::Text),
        }),
        Ok(204)
    );
    let r = records(p.request(DmRequest::Read {
        path,
        format: Some(ContentFormat::Tlv),
    }));
    assert_eq!(r, vec![Record::new(path, Value::String(big))]);
}

#[test]
fn garbage_datagrams_are_survived_on_both_sides() {
    let mut p = Pair::new();
    p.registered();
    let garbage: [&[u8]; 6] = [
        b"",
        &[0x40],
        &[0x44, 0x01, 0x12, 0x34, 0xaa], // CON with truncated token: Reset
        &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3], // version 3: dropped
        &[0x40, 0x01, 0x00, 0x01, 0xf0, 0xff], // bad option delta
        &[0x52, 0x45, 0x00, 0x02, 0x01, 0x02, 0xff, 0x00], // NON 2.05 for an unknown token
    ];
    for g in garbage {
        p.inject(Dir::ToServer, g);
        p.inject(Dir::ToClient, g);
    }
    p.run_for(Duration::from_secs(1));
    let server_malformed = p
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Malformed { .. }))
        .count();
    let client_malformed = p
        .client_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Malformed { .. }))
        .count();
    assert_eq!((server_malformed, client_malformed), (5, 5));
    // Resets for the undecodable CONs and the unknown-token response, from both sides.
    assert_eq!(
        p.log
            .iter()
            .filter(|l| l.summary.starts_with("RST"))
            .count(),
        6,
        "{}",
        p.log_text()
    );
    // Both still work.
    let r = records(p.request(DmRequest::Read {
        path: Path::resource(3, 0, 0),
        format: Some(ContentFormat::Text),
    }));
    assert_eq!(r[0].value, Value::String("meterbench".into()));
}

#[test]
fn register_without_endpoint_is_a_bad_request() {
    let mut p = Pair::new();
    // CON POST /rd?lt=60, token 01.
    let mut bytes = vec![0x41, 0x02, 0x00, 0x07, 0x01, 0xb2, b'r', b'd', 0x45];
    bytes.extend(b"lt=60");
    p.inject(Dir::ToServer, &bytes);
    p.run_for(Duration::from_millis(100));
    assert!(
        p.log.iter().any(|l| l
            .summary
            .starts_with("ACK 4.00 Bad Request mid=0x0007 tok=01")),
        "{}",
        p.log_text()
    );
    assert!(p.server.registrations().is_empty());
    // Update and De-register of an unknown location: 4.04.
    let bytes = [
        0x41, 0x02, 0x00, 0x08, 0x02, 0xb2, b'r', b'd', 0x02, b'z', b'z',
    ];
    p.inject(Dir::ToServer, &bytes);
    p.run_for(Duration::from_millis(100));
    assert!(p
        .log
        .iter()
        .any(|l| l.summary.starts_with("ACK 4.04 Not Found mid=0x0008")));
}

#[test]
fn an_update_refused_with_not_found_leads_to_a_new_registration() {
    let mut p = Pair::new();
    p.registered();
    // The server restarts and forgets everything.
    p.server = Server::new(ServerConfig {
        registry: registry(),
        default_format: ContentFormat::Tlv,
        seed: 99,
    });
    p.run_until(Duration::from_secs(40), |p| {
        p.server.registration("meter-1").is_some_and(|r| {
            p.client.state()
                == &RegistrationState::Registered {
                    location: r.location.clone(),
                }
        })
    });
    assert!(
        p.log.iter().any(|l| l.summary.contains("4.04 Not Found")),
        "{}",
        p.log_text()
    );
    assert!(matches!(
        p.client.state(),
        RegistrationState::Registered { .. }
    ));
    assert!(matches!(
        p.client_events.last(),
        Some(ClientEvent::Registered { .. })
    ));
}

#[test]
fn failed_registration_is_retried_with_backoff() {
    let mut p = Pair::new();
    p.set_fate(Dir::ToServer, Fate::Drop);
    p.client.start(p.now);
    p.run_until(Duration::from_secs(200), |p| {
        matches!(p.client.state(), RegistrationState::Failed { .. })
    });
    assert!(matches!(
        p.client_events[..],
        [ClientEvent::RegistrationFailed { .. }]
    ));
    let failed_at = p.now;
    p.set_filter(|_, _| Fate::Deliver);
    p.run_until(Duration::from_secs(120), |p| {
        p.server.registration("meter-1").is_some()
    });
    let retry = p.sent_at(Dir::ToServer, "/rd?").last().copied().unwrap();
    assert_eq!(
        retry - (failed_at - p.start),
        Duration::from_secs(30),
        "first retry after 30 s"
    );
}

#[test]
fn create_and_delete_instances_update_the_object_list() {
    let mut p = Pair::new();
    p.registered();
    let object = Path::object(19);
    assert_eq!(
        p.code(DmRequest::Create {
            object,
            records: vec![Record::new(
                Path::resource_instance(19, 0, 0, 0),
                Value::Opaque(vec![1, 2, 3]),
            )],
            format: Some(ContentFormat::Tlv),
        }),
        Ok(201)
    );
    assert!(p.client_events.contains(&ClientEvent::Created {
        path: Path::instance(19, 0)
    }));
    p.run_for(Duration::from_secs(1));
    let reg = p.server.registration("meter-1").unwrap();
    assert!(
        reg.instances().contains(&Path::instance(19, 0)),
        "Update carried the new list: {:?}",
        reg.objects
    );
    assert_eq!(
        p.code(DmRequest::Delete {
            path: Path::instance(19, 0),
        }),
        Ok(202)
    );
    p.run_for(Duration::from_secs(1));
    assert!(!p
        .server
        .registration("meter-1")
        .unwrap()
        .instances()
        .contains(&Path::instance(19, 0)));
    assert_eq!(
        p.code(DmRequest::Delete {
            path: Path::instance(19, 0),
        }),
        Ok(404)
    );
}

#[test]
fn set_value_checks_the_model() {
    let mut p = Pair::new();
    assert!(p
        .client
        .set_value(p.now, Path::resource(3, 0, 9), Value::String("x".into()))
        .is_err());
    assert!(p
        .client
        .set_value(p.now, Path::resource(3, 0, 999), Value::Integer(1))
        .is_err());
    assert!(p
        .client
        .set_value(p.now, Path::resource(3, 0, 13), Value::Integer(5))
        .is_ok());
    assert_eq!(
        p.client.store().get(&Path::resource(3, 0, 13)),
        Some(&Value::Time(5))
    );
}

#[test]
fn a_new_register_replaces_the_old_registration() {
    let mut p = Pair::new();
    p.registered();
    let old = p.server.registration("meter-1").unwrap().location.clone();
    // The device rebooted and registers again without De-register.
    p.client.start(p.now);
    p.run_until(Duration::from_secs(10), |p| {
        p.server
            .registration("meter-1")
            .is_some_and(|r| r.location != old)
            && matches!(p.client.state(), RegistrationState::Registered { .. })
    });
    assert_eq!(p.server.registrations().len(), 1);
    assert!(matches!(&p.server_events[..], [ServerEvent::Registered(r)] if r.location != old));
    // The old location is gone: an Update to it is 4.04.
    let mut bytes = vec![0x41, 0x02, 0x00, 0x31, 0x05, 0xb2, b'r', b'd', 0x04];
    bytes.extend(old.trim_start_matches("/rd/").as_bytes());
    p.inject(Dir::ToServer, &bytes);
    p.run_for(Duration::from_millis(100));
    assert!(
        p.log
            .iter()
            .any(|l| l.summary.starts_with("ACK 4.04 Not Found mid=0x0031")),
        "{}",
        p.log_text()
    );
}

#[test]
fn device_side_instance_changes_reach_the_server_on_the_next_update() {
    let mut p = Pair::new();
    p.registered();
    p.client.store_mut().create_instance(5, 0);
    p.client.trigger_update(p.now);
    p.run_for(Duration::from_secs(1));
    assert!(p
        .server
        .registration("meter-1")
        .unwrap()
        .instances()
        .contains(&Path::instance(5, 0)));
}

/// A random CoAP request: method, a path among known and unknown objects,
/// options LwM2M uses and a random payload.
fn arbitrary_request() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..4,
        1u8..=7,
        proptest::collection::vec(
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(3),
                Just(4),
                Just(5),
                Just(19),
                0u32..70_000
            ],
            0..5,
        ),
        proptest::option::of(prop_oneof![
            Just(0u16),
            Just(40),
            Just(42),
            Just(110),
            Just(112),
            Just(11542),
            Just(11544),
            any::<u16>()
        ]),
        proptest::option::of(prop_oneof![Just(0u32), Just(1), any::<u32>()]),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec("[a-z]{1,5}=?[0-9.a-z]{0,4}", 0..3),
    )
        .prop_map(|(t, method, path, cf, observe, payload, query)| {
            let mut msg = coap_lite::Packet::new();
            msg.header.set_type(match t {
                0 => coap_lite::MessageType::Confirmable,
                _ => coap_lite::MessageType::NonConfirmable,
            });
            msg.header.code = coap_lite::MessageClass::from(method);
            msg.header.message_id = 0x4242;
            msg.set_token(vec![0xee]);
            for seg in path {
                msg.add_option(coap_lite::CoapOption::UriPath, seg.to_string().into_bytes());
            }
            for q in query {
                msg.add_option(coap_lite::CoapOption::UriQuery, q.into_bytes());
            }
            if let Some(cf) = cf {
                msg.add_option(
                    coap_lite::CoapOption::ContentFormat,
                    cf.to_be_bytes().to_vec(),
                );
            }
            if let Some(o) = observe {
                msg.add_option(
                    coap_lite::CoapOption::Observe,
                    o.to_be_bytes()[1..].to_vec(),
                );
            }
            msg.payload = payload;
            msg.to_bytes().unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Neither role panics on any request or any bytes, and both still answer a
    /// Read afterwards.
    #[test]
    fn random_datagrams_never_break_either_role(
        requests in proptest::collection::vec(arbitrary_request(), 1..6),
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..4),
    ) {
        let mut p = Pair::new();
        p.registered();
        for (i, r) in requests.iter().enumerate() {
            // Distinct message ids, or deduplication would hide all but the first.
            let mut r = r.clone();
            r[3] = i as u8;
            p.inject(Dir::ToClient, &r);
            p.inject(Dir::ToServer, &r);
        }
        for n in &noise {
            p.inject(Dir::ToClient, n);
            p.inject(Dir::ToServer, n);
        }
        p.run_for(Duration::from_secs(2));
        if p.server.registration("meter-1").is_some() {
            let r = p.request(DmRequest::Read { path: Path::resource(3, 0, 0), format: Some(ContentFormat::Text) });
            prop_assert!(r.is_ok());
        }
    }
}

#[test]
fn set_value_on_a_new_instance_updates_the_object_list() {
    let mut p = Pair::new();
    p.registered();
    p.set(Path::resource(5, 0, 3), Value::Integer(0));
    p.run_for(Duration::from_secs(1));
    let reg = p.server.registration("meter-1").unwrap();
    assert!(
        reg.instances().contains(&Path::instance(5, 0)),
        "{:?}",
        reg.objects
    );
}

/// RFC 7641 §4.1: the client keys observers by endpoint and token, so a
/// second Observe of a path with a new token is a second observer; both
/// are notified, and cancelling one (§3.6) leaves the other.
#[test]
fn observing_a_path_again_with_a_new_token_adds_an_observer() {
    let mut p = Pair::new();
    p.registered();
    let path = Path::resource(3, 0, 9);
    p.request(DmRequest::Observe { path, format: None })
        .unwrap();
    p.request(DmRequest::Observe {
        path,
        format: Some(ContentFormat::SenmlJson),
    })
    .unwrap();
    assert_eq!(p.server.observations("meter-1").len(), 2);
    assert_eq!(p.client.observed_paths(), vec![path, path]);
    p.set(path, Value::Integer(1));
    p.run_for(Duration::from_secs(1));
    assert_eq!(
        battery_notifications(&p),
        vec![Value::Integer(1), Value::Integer(1)]
    );
    p.request(DmRequest::CancelObserve { path }).unwrap();
    assert_eq!(p.server.observations("meter-1").len(), 1);
    assert_eq!(p.client.observed_paths(), vec![path]);
}

/// LwM2M 1.1 Core Appendix E.1 (Security object): only the Bootstrap-Server
/// reaches it; an LwM2M Server's Read, Write or Discover of /0 is refused
/// 4.01 Unauthorized (the procedure of ETS int-221).
#[test]
fn an_lwm2m_server_is_refused_the_security_object() {
    let mut p = Pair::new();
    p.registered();
    for request in [
        DmRequest::Read {
            path: Path::object(0),
            format: None,
        },
        DmRequest::Discover {
            path: Path::instance(0, 0),
        },
        DmRequest::Read {
            path: Path::resource(0, 0, 0),
            format: Some(ContentFormat::Text),
        },
    ] {
        let r = p.request(request.clone()).unwrap();
        assert_eq!(r.code, 401, "{request:?}");
    }
}
