//! The Bootstrap Interface end to end (LwM2M 1.1 Core §6.1): the
//! Bootstrap-Server role, the LwM2M server role and the client role of
//! `lwm2m` on one in-memory network with a fake clock and a lossy link, the
//! quinn-proto `Pair` way, plus the secret redaction the message log uses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::bootstrap::{
    redact_datagram, BootstrapEvent, BootstrapOp, BootstrapScript, BootstrapServer,
    BootstrapServerConfig, Redactor, SecurityMode, ServerAccount,
};
use lwm2m::client::{
    BootstrapConfig, Client, ClientConfig, ClientEvent, ObjectStore, RegistrationState, RetryPolicy,
};
use lwm2m::coap::{summarize, wire};
use lwm2m::format::{self, ContentFormat, Record};
use lwm2m::server::{Content, Server, ServerConfig};
use lwm2m::{Path, Registry, Value};
use proptest::prelude::*;

const BS: &str = "127.0.0.1:5783";
const SERVER: &str = "127.0.0.1:5683";
const CLIENT: &str = "127.0.0.1:56830";
/// An address nobody listens on: what a decommissioned server looks like.
const DEAD: &str = "127.0.0.1:5999";
const LATENCY: Duration = Duration::from_millis(20);
const KEY: [u8; 16] = [
    0x4b, 0xe1, 0x9f, 0x02, 0x7c, 0x33, 0xa8, 0x5d, 0x10, 0xee, 0x61, 0x2f, 0x94, 0x07, 0xc5, 0xb3,
];

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn registry() -> Registry {
    Registry::core()
}

fn psk_account() -> ServerAccount {
    ServerAccount::psk(
        101,
        format!("coaps://{SERVER}"),
        b"meter-1".to_vec(),
        KEY.to_vec(),
    )
}

fn meter_store() -> ObjectStore {
    let mut s = ObjectStore::new(registry());
    s.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
    s.set(Path::resource(3, 0, 9), Value::Integer(87));
    s.set(Path::resource(4, 0, 2), Value::Integer(-93));
    s
}

fn client_config(version: &str) -> ClientConfig {
    let mut bs = BootstrapConfig::new(addr(BS));
    bs.finish_timeout = Duration::from_secs(60);
    ClientConfig {
        endpoint: "meter-1".into(),
        server: addr(DEAD),
        lifetime: Duration::from_secs(300),
        lwm2m_version: version.into(),
        binding: "U".into(),
        registry: registry(),
        preferred_format: ContentFormat::Tlv,
        seed: 22,
        bootstrap: Some(bs),
        retry: RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            bootstrap_after: 2,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
}

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

type Filter = Box<dyn FnMut(SocketAddr, SocketAddr, &str) -> Fate>;

/// Bootstrap-Server, LwM2M server and client on one fake network.
struct Net {
    start: Instant,
    now: Instant,
    bs: BootstrapServer,
    server: Server,
    client: Client,
    queue: Vec<InFlight>,
    filter: Filter,
    log: Vec<String>,
    /// Every datagram that crossed the network, as sent.
    wire: Vec<Vec<u8>>,
    bs_events: Vec<BootstrapEvent>,
    client_events: Vec<ClientEvent>,
}

impl Net {
    fn new(client: Client) -> Self {
        let start = Instant::now();
        Net {
            start,
            now: start,
            bs: BootstrapServer::new(BootstrapServerConfig {
                registry: registry(),
                default_format: ContentFormat::Tlv,
                seed: 33,
            }),
            server: Server::new(ServerConfig {
                registry: registry(),
                default_format: ContentFormat::Tlv,
                seed: 11,
            }),
            client,
            queue: Vec::new(),
            filter: Box::new(|_, _, _| Fate::Deliver),
            log: Vec::new(),
            wire: Vec::new(),
            bs_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    fn fresh(version: &str) -> Self {
        Self::new(Client::new(client_config(version), meter_store()))
    }

    /// Drops every `n`-th datagram, whichever way it goes.
    fn lossy(&mut self, n: usize) {
        let mut count = 0;
        self.filter = Box::new(move |_, _, _| {
            count += 1;
            if count % n == 0 {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let summary = summarize(&bytes);
        let fate = (self.filter)(from, to, &summary);
        self.log.push(format!(
            "{:>9.3}s {from} -> {to} {fate:?} {summary}",
            (self.now - self.start).as_secs_f64()
        ));
        self.wire.push(bytes.clone());
        if fate == Fate::Deliver {
            self.queue.push(InFlight {
                at: self.now + LATENCY,
                from,
                to,
                bytes,
            });
        }
    }

    fn drive(&mut self) {
        for _ in 0..100_000 {
            let mut progressed = false;
            while let Some(t) = self.bs.poll_transmit() {
                self.send(addr(BS), t.destination, t.payload);
                progressed = true;
            }
            while let Some(t) = self.server.poll_transmit() {
                self.send(addr(SERVER), t.destination, t.payload);
                progressed = true;
            }
            while let Some(t) = self.client.poll_transmit() {
                self.send(addr(CLIENT), t.destination, t.payload);
                progressed = true;
            }
            self.queue.sort_by_key(|d| d.at);
            if self.queue.first().is_some_and(|d| d.at <= self.now) {
                let d = self.queue.remove(0);
                if d.to == addr(BS) {
                    self.bs.handle_datagram(self.now, d.from, &d.bytes);
                } else if d.to == addr(SERVER) {
                    self.server.handle_datagram(self.now, d.from, &d.bytes);
                } else if d.to == addr(CLIENT) {
                    self.client.handle_datagram(self.now, d.from, &d.bytes);
                }
                progressed = true;
            }
            if self.bs.poll_timeout().is_some_and(|t| t <= self.now) {
                self.bs.handle_timeout(self.now);
                progressed = true;
            }
            if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                self.server.handle_timeout(self.now);
                progressed = true;
            }
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
                progressed = true;
            }
            self.bs_events
                .extend(std::iter::from_fn(|| self.bs.poll_event()));
            while self.server.poll_event().is_some() {}
            self.client_events
                .extend(std::iter::from_fn(|| self.client.poll_event()));
            if !progressed {
                return;
            }
        }
        panic!("the network did not settle: a timer keeps firing");
    }

    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.queue.iter().map(|q| q.at).min(),
            self.bs.poll_timeout(),
            self.server.poll_timeout(),
            self.client.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) {
        let until = self.now + limit;
        loop {
            self.drive();
            if done(self) {
                return;
            }
            match self.next_wakeup().filter(|t| *t <= until) {
                Some(t) => self.now = self.now.max(t),
                None => panic!(
                    "condition not met within {limit:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.drive();
            match self.next_wakeup().filter(|t| *t <= until) {
                Some(t) => self.now = self.now.max(t),
                None => {
                    self.now = until;
                    self.drive();
                    return;
                }
            }
        }
    }

    fn registered(&self) -> bool {
        self.server.registration("meter-1").is_some()
            && matches!(self.client.state(), RegistrationState::Registered { .. })
    }

    fn bs_done(&self) -> bool {
        self.bs_events.iter().any(|e| {
            matches!(
                e,
                BootstrapEvent::Finished { .. } | BootstrapEvent::Failed { .. }
            )
        })
    }

    fn failure(&self) -> Option<(String, Vec<u16>, Option<u16>, String)> {
        self.bs_events.iter().find_map(|e| match e {
            BootstrapEvent::Failed {
                op,
                expected,
                got,
                reason,
                ..
            } => Some((op.clone(), expected.clone(), *got, reason.clone())),
            _ => None,
        })
    }

    fn completed(&self) -> Vec<(String, u16)> {
        self.bs_events
            .iter()
            .filter_map(|e| match e {
                BootstrapEvent::OpCompleted { op, code, .. } => Some((op.clone(), *code)),
                _ => None,
            })
            .collect()
    }

    /// When each Bootstrap-Request (`POST /bs?ep=…`) crossed the network,
    /// counted from the start of the test.
    fn bootstrap_request_times(&self) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|l| l.contains("/bs?ep="))
            .map(|l| {
                let seconds = l.trim_start().split('s').next().unwrap_or_default();
                Duration::from_secs_f64(seconds.parse().expect("log line starts with its time"))
            })
            .collect()
    }

    fn content_of(&self, index: usize) -> Content {
        self.bs_events
            .iter()
            .find_map(|e| match e {
                BootstrapEvent::OpCompleted {
                    index: i, content, ..
                } if *i == index => Some(content.clone()),
                _ => None,
            })
            .expect("step completed")
    }
}

#[test]
fn standard_bootstrap_then_registration_with_the_provisioned_account() {
    // ETS LightweightM2M-1.1-int-1: client-initiated bootstrap, then Register.
    let mut net = Net::fresh("1.1");
    net.lossy(4);
    let account = psk_account();
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&account));
    net.client.start(net.now);
    assert_eq!(net.client.state(), &RegistrationState::Bootstrapping);
    // The client may register before the Bootstrap-Server hears its (lost) 2.04.
    net.run_until(Duration::from_secs(300), |n| n.registered() && n.bs_done());
    assert_eq!(
        net.completed(),
        [
            ("Bootstrap-Delete /".to_string(), 202),
            ("Bootstrap-Write /0/1".to_string(), 204),
            ("Bootstrap-Write /1/0".to_string(), 204),
            ("Bootstrap-Finish".to_string(), 204),
        ]
    );
    assert!(net.bs_events.iter().any(|e| matches!(
        e,
        BootstrapEvent::Finished { endpoint, finish_sent: Some(_) } if endpoint == "meter-1"
    )));
    assert_eq!(net.client.accounts(), vec![account.clone()]);
    assert!(net.client_events.contains(&ClientEvent::BootstrapFinished {
        accounts: vec![account.clone()]
    }));
    assert!(net.client_events.contains(&ClientEvent::Provisioned {
        instances: vec![
            Path::instance(0, 0),
            Path::instance(0, 1),
            Path::instance(1, 0)
        ]
    }));
    // The Bootstrap-Server account survived and registration used the new account.
    let store = net.client.store();
    assert_eq!(
        store.get(&Path::resource(0, 0, 1)),
        Some(&Value::Boolean(true))
    );
    assert_eq!(net.client.config().server, addr(SERVER));
    let reg = net.server.registration("meter-1").unwrap();
    assert_eq!(reg.lifetime, account.lifetime);
    assert!(reg.instances().contains(&Path::instance(1, 0)));
    // The key crossed the wire (in TLV) but never appears in a summary.
    let key_hex = hex::encode(KEY);
    assert!(net.log.iter().all(|l| !l.contains(&key_hex)));
}

#[test]
fn bootstrap_writes_use_the_format_the_client_asked_for() {
    let mut config = client_config("1.1");
    if let Some(bs) = config.bootstrap.as_mut() {
        bs.preferred_format = Some(ContentFormat::SenmlCbor);
    }
    let mut net = Net::new(Client::new(config, meter_store()));
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&psk_account()));
    net.client.start(net.now);
    net.run_until(Duration::from_secs(60), |n| n.registered());
    assert!(net.log.iter().any(|l| l.contains("/bs?ep=meter-1&pct=112")));
    assert!(net
        .log
        .iter()
        .any(|l| l.contains("PUT") && l.contains("/0/1") && l.contains("cf=112")));
    assert_eq!(net.client.accounts(), vec![psk_account()]);
}

#[test]
fn discover_then_delete_root_keeps_the_bootstrap_account_and_the_device() {
    let mut store = meter_store();
    ServerAccount::nosec(7, format!("coap://{DEAD}")).install(&mut store);
    let mut net = Net::new(Client::new(client_config("1.1"), store));
    let account = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    let mut script = BootstrapScript::new()
        .then(BootstrapOp::Discover { path: Path::ROOT })
        .then(BootstrapOp::Delete { path: Path::ROOT })
        .then(BootstrapOp::Discover { path: Path::ROOT });
    script.steps.extend(
        BootstrapScript::standard(&account)
            .steps
            .into_iter()
            .skip(1),
    );
    net.bs.set_script("meter-1", script);
    net.client.bootstrap(net.now);
    net.run_until(Duration::from_secs(60), |n| n.registered());
    let Content::Links(before) = net.content_of(0) else {
        panic!("Discover gives links")
    };
    let text = lwm2m::format::encode_links(&before);
    assert!(
        text.starts_with(&format!(
            r#"</>;lwm2m=1.1,</0/0>;uri="coap://{BS}",</0/1>;ssid=7;uri="coap://{DEAD}",</1/0>;ssid=7,</2>;ver=1.1,</3/0>,</4/0>,</5>"#
        )),
        "{text}"
    );
    let Content::Links(after) = net.content_of(2) else {
        panic!("Discover gives links")
    };
    let targets: Vec<&str> = after.iter().map(|l| l.target.as_str()).collect();
    assert!(
        targets.contains(&"/0/0"),
        "bootstrap account kept: {targets:?}"
    );
    assert!(targets.contains(&"/1") && !targets.contains(&"/1/0"));
    assert!(targets.contains(&"/3/0") && targets.contains(&"/4/0"));
    assert!(!targets.contains(&"/0/1"));
    assert_eq!(net.client.accounts(), vec![account]);
}

#[test]
fn deleting_the_bootstrap_account_is_refused_and_the_session_names_op_and_code() {
    let mut net = Net::fresh("1.1");
    net.bs.set_script(
        "meter-1",
        BootstrapScript::new()
            .then(BootstrapOp::Delete {
                path: Path::instance(0, 0),
            })
            .then(BootstrapOp::Finish),
    );
    net.client.bootstrap(net.now);
    net.run_until(Duration::from_secs(30), |n| n.bs_done());
    let (op, expected, got, reason) = net.failure().expect("session failed");
    assert_eq!(op, "Bootstrap-Delete /0/0");
    assert_eq!(expected, vec![202]);
    assert_eq!(got, Some(400));
    assert!(reason.contains("Bootstrap-Server account"), "{reason}");
}

/// A Security instance without its Server URI, one with a mode the client
/// lacks, and a malformed payload are each refused with 4.00; none of them
/// leaves a trace, and a correct configuration written afterwards in the
/// same session is what Finish commits.
#[test]
fn invalid_security_instances_are_refused_and_nothing_is_half_applied() {
    let mut store = meter_store();
    let old = ServerAccount::nosec(7, format!("coap://{DEAD}"));
    old.install(&mut store);
    let mut net = Net::new(Client::new(client_config("1.1"), store));
    let good = psk_account();
    let without_uri: Vec<Record> = good
        .security_records()
        .into_iter()
        .filter(|r| r.path.resource_id() != Some(0))
        .collect();
    let mut rpk = good.clone();
    rpk.security_mode = SecurityMode::Rpk;
    let script = BootstrapScript::new()
        .then(BootstrapOp::Delete { path: Path::ROOT })
        .then_expect(
            BootstrapOp::Write {
                path: good.security_path(),
                records: without_uri,
            },
            &[400],
        )
        .then_expect(
            BootstrapOp::Write {
                path: good.security_path(),
                records: rpk.security_records(),
            },
            &[400],
        )
        .then(BootstrapOp::Write {
            path: good.security_path(),
            records: good.security_records(),
        })
        .then(BootstrapOp::Write {
            path: good.server_path(),
            records: good.server_records(),
        })
        .then(BootstrapOp::Finish);
    net.bs.set_script("meter-1", script);
    net.client.bootstrap(net.now);
    net.drive();
    // A malformed Bootstrap-Write straight from the Bootstrap-Server's address.
    let mut bad = Packet::new();
    bad.header.set_type(MessageType::Confirmable);
    bad.header.code = MessageClass::Request(RequestType::Put);
    bad.header.message_id = 0x7777;
    bad.set_token(vec![0x77]);
    bad.add_option(CoapOption::UriPath, b"0".to_vec());
    bad.add_option(CoapOption::UriPath, b"1".to_vec());
    bad.add_option(CoapOption::ContentFormat, vec![0x2d, 0x16]);
    bad.payload = vec![0xc8, 0x00, 0x20, b'c'];
    net.client
        .handle_datagram(net.now, addr(BS), &bad.to_bytes().unwrap());
    let answer = net.client.poll_transmit().expect("answered");
    assert_eq!(
        wire::decode(&answer.payload).unwrap().header.code,
        MessageClass::from(0x80)
    );
    net.run_until(Duration::from_secs(60), |n| n.bs_done());
    assert_eq!(net.failure(), None);
    assert_eq!(
        net.completed().iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        [202, 400, 400, 204, 204, 204]
    );
    // The old account is gone only because Finish replaced objects 0 and 1 with
    // what was staged: exactly the good account plus the bootstrap account.
    assert_eq!(net.client.accounts(), vec![good]);
}

#[test]
fn an_inconsistent_configuration_is_not_acceptable_at_finish_and_the_store_is_unchanged() {
    let mut store = meter_store();
    let old = ServerAccount::nosec(7, format!("coap://{DEAD}"));
    old.install(&mut store);
    let mut net = Net::new(Client::new(client_config("1.1"), store));
    let good = psk_account();
    // Security instance for ssid 101 but no Server instance: inconsistent.
    net.bs.set_script(
        "meter-1",
        BootstrapScript::new()
            .then(BootstrapOp::Delete { path: Path::ROOT })
            .then(BootstrapOp::Write {
                path: good.security_path(),
                records: good.security_records(),
            })
            .then(BootstrapOp::Finish),
    );
    let before = net.client.store().read(&Path::ROOT);
    net.client.bootstrap(net.now);
    net.run_until(Duration::from_secs(60), |n| n.bs_done());
    let (op, expected, got, reason) = net.failure().expect("session failed");
    assert_eq!(
        (op.as_str(), expected, got),
        ("Bootstrap-Finish", vec![204], Some(406))
    );
    assert!(reason.contains("no Server instance"), "{reason}");
    assert_eq!(net.client.store().read(&Path::ROOT), before);
    assert_eq!(net.client.accounts(), vec![old]);
    // No Finish follows: the client gives up at its deadline and retries bootstrap.
    net.run_until(Duration::from_secs(120), |n| {
        n.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::BootstrapFailed { .. }))
    });
    assert_eq!(net.client.store().read(&Path::ROOT), before);
}

#[test]
fn bootstrap_read_of_the_server_object_is_allowed_for_lwm2m_1_1() {
    let mut net = Net::fresh("1.1");
    let account = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    let script = BootstrapScript::provision(std::slice::from_ref(&account));
    let mut steps = script.steps;
    let finish = steps.pop().unwrap();
    let mut script = BootstrapScript {
        steps,
        ..BootstrapScript::default()
    }
    .then(BootstrapOp::Discover { path: Path::ROOT })
    .then(BootstrapOp::Read {
        path: Path::object(1),
    });
    script.steps.push(finish);
    script = script.then_expect(
        BootstrapOp::Read {
            path: Path::object(0),
        },
        &[205],
    );
    net.bs.set_script("meter-1", script);
    net.client.bootstrap(net.now);
    net.run_until(Duration::from_secs(60), |n| n.bs_done());
    let Content::Records(records) = net.content_of(4) else {
        panic!("Read gives records")
    };
    assert!(records.contains(&Record::new(Path::resource(1, 0, 0), Value::Integer(101))));
    // A Read of /0 (after Finish it opens a server-initiated session) is
    // refused: Security holds keys and is never readable.
    let (op, _, got, _) = net.failure().expect("Read of /0 fails");
    assert_eq!(op, "Bootstrap-Read /0");
    assert_eq!(got, Some(405));
}

#[test]
fn bootstrap_read_is_not_sent_to_an_lwm2m_1_0_client() {
    let mut net = Net::fresh("1.0");
    net.bs.set_script(
        "meter-1",
        BootstrapScript::new()
            .then(BootstrapOp::Discover { path: Path::ROOT })
            .then(BootstrapOp::Read {
                path: Path::object(1),
            }),
    );
    net.client.bootstrap(net.now);
    net.run_until(Duration::from_secs(60), |n| n.bs_done());
    let Content::Links(links) = net.content_of(0) else {
        panic!()
    };
    assert_eq!(links[0].attribute("lwm2m"), Some("1.0"));
    let (op, _, got, reason) = net.failure().unwrap();
    assert_eq!((op.as_str(), got), ("Bootstrap-Read /1", None));
    assert!(reason.contains("lwm2m=1.0"), "{reason}");
    // And the 1.0 client itself refuses a Bootstrap-Read.
    let mut read = Packet::new();
    read.header.set_type(MessageType::Confirmable);
    read.header.code = MessageClass::Request(RequestType::Get);
    read.header.message_id = 0x1234;
    read.add_option(CoapOption::UriPath, b"1".to_vec());
    net.client
        .handle_datagram(net.now, addr(BS), &read.to_bytes().unwrap());
    let answer = net.client.poll_transmit().unwrap();
    assert_eq!(
        wire::decode(&answer.payload).unwrap().header.code,
        MessageClass::from(0x85)
    );
}

#[test]
fn registration_failures_fall_back_to_bootstrap() {
    // ETS LightweightM2M-1.1-int-7: the provisioned server is gone; after
    // `bootstrap_after` failed Registers the client bootstraps and registers
    // with the account it gets.
    let stale = ServerAccount::nosec(7, format!("coap://{DEAD}"));
    let mut net = Net::new(Client::with_accounts(
        client_config("1.1"),
        meter_store(),
        std::slice::from_ref(&stale),
    ));
    let fresh = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&fresh));
    net.client.start(net.now);
    assert_eq!(net.client.config().server, addr(DEAD));
    net.run_until(Duration::from_secs(600), |n| n.registered());
    let failures = net
        .client_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::RegistrationFailed { .. }))
        .count();
    assert_eq!(failures, 2);
    assert_eq!(net.client.accounts(), vec![fresh]);
}

#[test]
fn a_transport_failure_reported_by_the_caller_counts_towards_the_fallback() {
    let stale = ServerAccount::psk(7, format!("coaps://{DEAD}"), b"id".to_vec(), KEY.to_vec());
    let mut config = client_config("1.1");
    config.retry.bootstrap_after = 1;
    let mut net = Net::new(Client::with_accounts(config, meter_store(), &[stale]));
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&psk_account()));
    net.client.start(net.now);
    net.client
        .registration_failed_transport(net.now, "DTLS handshake failed: alert 40");
    assert_eq!(net.client.state(), &RegistrationState::Bootstrapping);
    net.run_until(Duration::from_secs(60), |n| n.registered());
    assert!(net
        .client_events
        .contains(&ClientEvent::RegistrationFailed {
            reason: "DTLS handshake failed: alert 40".into()
        }));
}

#[test]
fn an_unknown_endpoint_is_refused_and_bootstrap_is_retried() {
    let mut net = Net::fresh("1.1");
    net.client.start(net.now);
    net.run_until(Duration::from_secs(10), |n| {
        n.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::BootstrapFailed { .. }))
    });
    assert!(matches!(
        &net.bs_events[..],
        [BootstrapEvent::Rejected { endpoint: Some(e), .. }] if e == "meter-1"
    ));
    // Once the server knows the endpoint, the retry succeeds.
    net.bs.set_script(
        "meter-1",
        BootstrapScript::standard(&ServerAccount::nosec(101, format!("coap://{SERVER}"))),
    );
    net.run_until(Duration::from_secs(30), |n| n.registered());
}

#[test]
fn no_finish_in_time_fails_the_client_session() {
    let mut net = Net::fresh("1.1");
    net.bs.set_script(
        "meter-1",
        BootstrapScript::new().then(BootstrapOp::Delete { path: Path::ROOT }),
    );
    net.client.bootstrap(net.now);
    net.run_until(Duration::from_secs(90), |n| {
        n.client_events.iter().any(
            |e| matches!(e, ClientEvent::BootstrapFailed { reason } if reason.contains("Finish")),
        )
    });
    assert!(net.bs_events.iter().any(|e| matches!(
        e,
        BootstrapEvent::Finished { endpoint, finish_sent: None } if endpoint == "meter-1"
    )));
    assert!(matches!(
        net.client.state(),
        RegistrationState::Failed { .. }
    ));
}

// ---- Client Hold Off Time (Security object resource 11) ----
//
// LwM2M 1.1 Core §E.1 (Security object) and the OMA registry's 0.xml,
// resource 11: "The number of seconds to wait before initiating a Client
// Initiated Bootstrap once the LwM2M Client has determined it should
// initiate this bootstrap mode. In case client initiated bootstrap is
// supported by the LwM2M Client, this resource MUST be supported."

/// /0/0/11 of the Bootstrap-Server account.
fn hold_off_path() -> Path {
    Path::resource(0, 0, 11)
}

#[test]
fn the_bootstrap_request_waits_the_client_hold_off_time() {
    let mut config = client_config("1.1");
    if let Some(bs) = config.bootstrap.as_mut() {
        bs.hold_off = Duration::from_secs(7);
    }
    let mut net = Net::new(Client::new(config, meter_store()));
    assert_eq!(
        net.client.store().get(&hold_off_path()),
        Some(&Value::Integer(7))
    );
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&psk_account()));
    // No account: the client decides to bootstrap at start (Core §6.1.5).
    net.client.start(net.now);
    assert_eq!(net.client.state(), &RegistrationState::Bootstrapping);
    assert_eq!(
        net.client.poll_timeout(),
        Some(net.start + Duration::from_secs(7))
    );
    net.run_for(Duration::from_millis(6_999));
    assert!(
        net.bootstrap_request_times().is_empty(),
        "sent before the hold-off ended:\n{}",
        net.log.join("\n")
    );
    net.run_until(Duration::from_secs(60), |n| n.registered());
    assert_eq!(net.bootstrap_request_times(), [Duration::from_secs(7)]);
    assert_eq!(net.client.accounts(), vec![psk_account()]);
}

#[test]
fn a_hold_off_written_by_the_bootstrap_server_delays_the_next_fallback_bootstrap() {
    let mut config = client_config("1.1");
    config.retry.bootstrap_after = 1;
    let mut net = Net::new(Client::new(config, meter_store()));
    // The first bootstrap (no hold-off yet) provisions a server that will
    // refuse the meter, and sets the account's Client Hold Off Time to 20 s.
    let stale = ServerAccount::nosec(7, format!("coap://{DEAD}"));
    let mut script = BootstrapScript::standard(&stale);
    let finish = script.steps.pop().expect("standard ends with Finish");
    script = script.then(BootstrapOp::Write {
        path: Path::instance(0, 0),
        records: vec![Record::new(hold_off_path(), Value::Integer(20))],
    });
    script.steps.push(finish);
    net.bs.set_script("meter-1", script);
    net.client.start(net.now);
    net.run_until(Duration::from_secs(60), |n| {
        n.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::BootstrapFinished { .. }))
    });
    assert_eq!(net.bootstrap_request_times(), [Duration::ZERO]);
    assert_eq!(
        net.client.store().get(&hold_off_path()),
        Some(&Value::Integer(20))
    );

    // Registration fails: with `bootstrap_after` 1 the client decides to
    // bootstrap now (§6.2.1.1), and waits the hold-off the server wrote.
    let fresh = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&fresh));
    let decided = net.now - net.start;
    net.client
        .registration_failed_transport(net.now, "DTLS handshake failed: alert 40");
    assert_eq!(net.client.state(), &RegistrationState::Bootstrapping);
    net.run_for(Duration::from_millis(19_999));
    assert_eq!(
        net.bootstrap_request_times().len(),
        1,
        "{}",
        net.log.join("\n")
    );
    net.run_until(Duration::from_secs(60), |n| n.registered());
    assert_eq!(
        net.bootstrap_request_times(),
        [Duration::ZERO, decided + Duration::from_secs(20)]
    );
    assert_eq!(net.client.accounts(), vec![fresh]);
}

#[test]
fn a_server_initiated_bootstrap_during_the_hold_off_replaces_the_request() {
    let mut config = client_config("1.1");
    if let Some(bs) = config.bootstrap.as_mut() {
        bs.hold_off = Duration::from_secs(30);
    }
    let mut net = Net::new(Client::new(config, meter_store()));
    let account = ServerAccount::nosec(101, format!("coap://{SERVER}"));
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&account));
    net.client.start(net.now);
    net.run_for(Duration::from_secs(5));
    // What the hold-off is for: the Bootstrap-Server may come first (§6.1.4).
    assert!(net.bs.start(net.now, "meter-1", addr(CLIENT)));
    net.run_until(Duration::from_secs(60), |n| n.registered());
    net.run_for(Duration::from_secs(60));
    assert!(
        net.bootstrap_request_times().is_empty(),
        "{}",
        net.log.join("\n")
    );
    assert!(net.registered());
    assert_eq!(net.client.accounts(), vec![account]);
}

#[test]
fn a_retry_after_a_failed_bootstrap_waits_the_back_off_not_the_hold_off_again() {
    // The hold-off is waited once per decision; a refused Bootstrap-Request
    // is retried on the registration back-off (1 s here), as Anjay does.
    let mut config = client_config("1.1");
    if let Some(bs) = config.bootstrap.as_mut() {
        bs.hold_off = Duration::from_secs(10);
    }
    let mut net = Net::new(Client::new(config, meter_store()));
    net.client.start(net.now);
    net.run_until(Duration::from_secs(30), |n| {
        n.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::BootstrapFailed { .. }))
    });
    net.bs.set_script(
        "meter-1",
        BootstrapScript::standard(&ServerAccount::nosec(101, format!("coap://{SERVER}"))),
    );
    net.run_until(Duration::from_secs(30), |n| n.registered());
    let times = net.bootstrap_request_times();
    assert_eq!(times.len(), 2, "{times:?}");
    assert_eq!(times[0], Duration::from_secs(10));
    let gap = times[1] - times[0];
    assert!(
        gap < Duration::from_secs(2),
        "retried {gap:?} after the first request"
    );
}

// ---- Secret redaction (the message log and the pcap) ----

fn write_of(format: ContentFormat, path: Path, records: &[Record]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Put);
    p.header.message_id = 0x0101;
    p.set_token(vec![1, 2, 3, 4]);
    for s in path.segments() {
        p.add_option(CoapOption::UriPath, s.into_bytes());
    }
    p.add_option(
        CoapOption::ContentFormat,
        lwm2m::coap::options::encode_uint(u32::from(format.code())),
    );
    p.payload = format::encode(format, &path, records, &registry()).unwrap();
    p.to_bytes().unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_key(bytes: &[u8]) {
    assert!(!contains(bytes, &KEY), "raw key present");
    for text in [hex::encode(KEY), hex::encode_upper(KEY)] {
        assert!(!contains(bytes, text.as_bytes()), "hex key present");
    }
}

#[test]
fn a_bootstrap_write_of_a_security_instance_is_redacted_in_every_format() {
    let account = psk_account();
    for format in [
        ContentFormat::Tlv,
        ContentFormat::SenmlJson,
        ContentFormat::SenmlCbor,
        ContentFormat::Lwm2mCbor,
    ] {
        let datagram = write_of(format, account.security_path(), &account.security_records());
        let redacted = redact_datagram(&datagram).unwrap_or_else(|| panic!("{format}: redacted"));
        assert_eq!(redacted.len(), datagram.len(), "{format}");
        assert_no_key(&redacted);
        // What is not secret stays readable: the URI and the PSK identity.
        assert!(contains(&redacted, b"meter-1") || format == ContentFormat::SenmlJson);
        assert!(contains(&redacted, SERVER.as_bytes()), "{format}");
        let packet = wire::decode(&redacted).expect("still a CoAP message");
        let records = format::decode(
            format,
            &account.security_path(),
            &packet.payload,
            &registry(),
        )
        .expect("still decodes");
        assert!(records
            .iter()
            .any(|r| r.path == Path::resource(0, 1, 5) && r.value != Value::Opaque(KEY.to_vec())));
    }
    // A single resource in plain text (base64) and opaque.
    for format in [ContentFormat::Text, ContentFormat::Opaque] {
        let path = Path::resource(0, 1, 5);
        let datagram = write_of(
            format,
            path,
            &[Record::new(path, Value::Opaque(KEY.to_vec()))],
        );
        let redacted = redact_datagram(&datagram).unwrap();
        assert_no_key(&redacted);
        let b64 = "S+GfAnwzqF0Q7mEvlAfFsw==";
        assert!(!contains(&redacted, b64.as_bytes()));
    }
}

#[test]
fn unparsable_security_payloads_are_redacted_whole_and_others_are_left_alone() {
    let mut garbage = write_of(
        ContentFormat::Tlv,
        Path::instance(0, 1),
        &psk_account().security_records(),
    );
    // Cut the TLV short: it no longer parses, so the whole payload goes.
    garbage.truncate(garbage.len() - 2);
    let redacted = redact_datagram(&garbage).unwrap();
    let packet = wire::decode(&redacted).unwrap();
    assert!(packet.payload.iter().all(|b| *b == 0));
    // A write of /1 carries no secret.
    let a = psk_account();
    assert_eq!(
        redact_datagram(&write_of(
            ContentFormat::Tlv,
            a.server_path(),
            &a.server_records()
        )),
        None
    );
    assert_eq!(redact_datagram(b"\x01\x02garbage"), None);
}

#[test]
fn a_read_response_of_the_security_object_is_redacted_by_token() {
    let a = psk_account();
    let mut read = Packet::new();
    read.header.set_type(MessageType::Confirmable);
    read.header.code = MessageClass::Request(RequestType::Get);
    read.header.message_id = 9;
    read.set_token(vec![9, 9]);
    read.add_option(CoapOption::UriPath, b"0".to_vec());
    read.add_option(CoapOption::UriPath, b"1".to_vec());
    let mut resp = Packet::new();
    resp.header.set_type(MessageType::Acknowledgement);
    resp.header.code = MessageClass::from(0x45);
    resp.header.message_id = 9;
    resp.set_token(vec![9, 9]);
    resp.add_option(CoapOption::ContentFormat, vec![0x2d, 0x16]);
    resp.payload = format::encode(
        ContentFormat::Tlv,
        &a.security_path(),
        &a.security_records(),
        &registry(),
    )
    .unwrap();
    let resp = resp.to_bytes().unwrap();
    // Without the request a TLV response says nothing about its path...
    assert_eq!(redact_datagram(&resp), None);
    // ...but the log's Redactor saw the request go by.
    let mut r = Redactor::new();
    assert_eq!(r.redact(&read.to_bytes().unwrap()), None);
    assert_no_key(&r.redact(&resp).expect("redacted"));
}

#[test]
fn every_datagram_of_a_bootstrap_can_be_logged_without_the_key() {
    let mut net = Net::fresh("1.1");
    net.bs
        .set_script("meter-1", BootstrapScript::standard(&psk_account()));
    net.client.start(net.now);
    net.run_until(Duration::from_secs(60), |n| n.registered());
    assert!(
        net.wire.iter().any(|d| contains(d, &KEY)),
        "the key did travel"
    );
    let mut redactor = Redactor::new();
    for d in &net.wire {
        let logged = redactor.redact(d).unwrap_or_else(|| d.clone());
        assert_no_key(&logged);
    }
}

// ---- Robustness ----

/// A random request aimed at /bs and nearby paths.
fn arbitrary_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(1u8), Just(2), Just(3), Just(4), 1u8..=31],
        proptest::collection::vec(prop_oneof![Just("bs".to_string()), "[0-9a-z]{0,3}"], 0..3),
        proptest::collection::vec(
            prop_oneof![
                Just("ep=meter-1".to_string()),
                Just("ep=".to_string()),
                "pct=[0-9a-z]{0,6}",
                "[a-z]{1,5}=?[0-9.a-z]{0,4}"
            ],
            0..4,
        ),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(method, path, query, payload, con)| {
            let mut msg = Packet::new();
            msg.header.set_type(if con {
                MessageType::Confirmable
            } else {
                MessageType::NonConfirmable
            });
            msg.header.code = MessageClass::from(method);
            msg.set_token(vec![0xee]);
            for seg in path {
                msg.add_option(CoapOption::UriPath, seg.into_bytes());
            }
            for q in query {
                msg.add_option(CoapOption::UriQuery, q.into_bytes());
            }
            msg.payload = payload;
            msg.to_bytes().unwrap()
        })
}

/// A random answer to whatever the Bootstrap-Server sent last.
fn arbitrary_answer() -> impl Strategy<Value = (u8, Option<u16>, Vec<u8>)> {
    (
        prop_oneof![
            Just(0x45u8),
            Just(0x44),
            Just(0x42),
            Just(0x80),
            any::<u8>()
        ],
        proptest::option::of(prop_oneof![
            Just(40u16),
            Just(11542),
            Just(112),
            Just(110),
            Just(11544),
            any::<u16>()
        ]),
        proptest::collection::vec(any::<u8>(), 0..48),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_datagrams_never_break_the_bootstrap_server(
        requests in proptest::collection::vec(arbitrary_request(), 1..8),
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..4),
    ) {
        let mut net = Net::fresh("1.1");
        net.bs.set_default_script(Some(BootstrapScript::standard(&psk_account())));
        for (i, r) in requests.iter().enumerate() {
            let mut r = r.clone();
            r[3] = i as u8;
            net.queue.push(InFlight { at: net.now, from: addr(CLIENT), to: addr(BS), bytes: r });
        }
        for n in noise {
            net.queue.push(InFlight { at: net.now, from: addr(CLIENT), to: addr(BS), bytes: n.clone() });
            net.queue.push(InFlight { at: net.now, from: addr(BS), to: addr(CLIENT), bytes: n });
        }
        net.run_for(Duration::from_secs(300));
        // Whatever happened, a real bootstrap still works afterwards.
        net.bs_events.clear();
        net.client.bootstrap(net.now);
        net.run_until(Duration::from_secs(120), |n| n.registered());
    }

    /// Whatever a client answers — any code, any format, any bytes — the
    /// session ends with Finished or a Failed that names the operation.
    #[test]
    fn malformed_client_answers_end_the_session_cleanly(
        answers in proptest::collection::vec(arbitrary_answer(), 1..6),
    ) {
        let mut bs = BootstrapServer::new(BootstrapServerConfig {
            registry: registry(),
            default_format: ContentFormat::Tlv,
            seed: 1,
        });
        let a = psk_account();
        let script = BootstrapScript::new()
            .then(BootstrapOp::Discover { path: Path::ROOT })
            .then(BootstrapOp::Read { path: Path::object(1) })
            .then(BootstrapOp::Write { path: a.security_path(), records: a.security_records() })
            .then(BootstrapOp::Finish);
        bs.set_script("m", script);
        let now = Instant::now();
        prop_assert!(bs.start(now, "m", addr(CLIENT)));
        let mut events = Vec::new();
        for (code, cf, payload) in answers {
            let Some(t) = bs.poll_transmit() else { break };
            let request = wire::decode(&t.payload).unwrap();
            let mut p = Packet::new();
            p.header.set_type(MessageType::Acknowledgement);
            p.header.code = MessageClass::from(code);
            p.header.message_id = request.header.message_id;
            p.set_token(request.get_token().to_vec());
            if let Some(cf) = cf {
                p.add_option(CoapOption::ContentFormat, lwm2m::coap::options::encode_uint(u32::from(cf)));
            }
            p.payload = payload;
            if let Ok(bytes) = p.to_bytes() {
                bs.handle_datagram(now, addr(CLIENT), &bytes);
            }
            events.extend(std::iter::from_fn(|| bs.poll_event()));
        }
        for e in &events {
            if let BootstrapEvent::Failed { op, .. } = e {
                prop_assert!(op.starts_with("Bootstrap-"));
            }
        }
    }
}
