//! Captured traffic: the server, the Bootstrap-Server and the client roles
//! of `lwm2m` talking on an in-memory network with a fake clock (the
//! `lwm2m/tests/spec/pair.rs` way), and a DTLS handshake between the OpenSSL
//! client and server, recorded as seeds (`corpus/<target>/capture-*`).
//!
//! Each role is run by the same [`Driver`] and built by the same
//! constructor as its fuzz target, and what reaches it is recorded as the
//! frames the driver was given, so a captured script replays against the
//! target exactly as it ran here; mutations then start from a real
//! conversation. The datagrams and payloads that crossed the network seed
//! the single-message targets.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, RequestType};
use dtls::{DtlsClient, DtlsServer, OpensslClient, OpensslServer};
use lwm2m::client::RegistrationState;
use lwm2m::coap::{options, wire};
use lwm2m::format::ContentFormat;

use crate::frames::{self, Script};
use crate::seeds::Seed;
use crate::targets::bootstrap::{self, BootstrapEndpoint};
use crate::targets::client::{self, ClientEndpoint};
use crate::targets::driver::{Driver, Endpoint};
use crate::targets::server::{self, ServerEndpoint};
use crate::targets::{dtls as dtls_target, testbed};

const LATENCY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Bootstrap,
    Client,
}

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Server, Bootstrap-Server and meter on one fake network.
struct Net {
    server: Driver<ServerEndpoint>,
    bs: Driver<BootstrapEndpoint>,
    client: Driver<ClientEndpoint>,
    server_script: Script,
    bs_script: Script,
    client_script: Script,
    queue: Vec<InFlight>,
    /// Drop every n-th datagram.
    drop_every: Option<usize>,
    sent_count: usize,
    /// Every datagram sent, in order, with its sender.
    wire: Vec<(SocketAddr, Vec<u8>)>,
}

impl Net {
    fn new(bootstrap: bool, drop_every: Option<usize>) -> Self {
        let now = Instant::now();
        let mut net = Net {
            server: Driver::new(ServerEndpoint::new(), server::peers(), now).keep_sent(),
            bs: Driver::new(
                BootstrapEndpoint(bootstrap::new_bootstrap_server()),
                bootstrap::peers(),
                now,
            )
            .keep_sent(),
            client: Driver::new(
                ClientEndpoint(client::new_client(now, bootstrap)),
                client::peers(),
                now,
            )
            .keep_sent(),
            server_script: Script::new(),
            bs_script: Script::new(),
            client_script: Script::new(),
            queue: Vec::new(),
            drop_every,
            sent_count: 0,
            wire: Vec::new(),
        };
        // What Driver::run does before the first frame.
        net.server.settle();
        net.bs.settle();
        net.client.settle();
        net.collect();
        net
    }

    fn now(&self) -> Instant {
        self.server.now
    }

    fn role_of(&self, addr: SocketAddr) -> Option<Role> {
        if addr == testbed::server_addr() {
            Some(Role::Server)
        } else if addr == testbed::bootstrap_addr() {
            Some(Role::Bootstrap)
        } else if addr == testbed::client_addr() {
            Some(Role::Client)
        } else {
            None
        }
    }

    /// Gives one frame to a role and records it in that role's script.
    fn feed(&mut self, role: Role, kind: u8, data: &[u8]) {
        let mut bytes = Vec::new();
        frames::push(&mut bytes, kind, data);
        let frame = frames::parse(&bytes)[0];
        match role {
            Role::Server => {
                self.server.step(&frame);
                self.server_script.push_frame(kind, data);
            }
            Role::Bootstrap => {
                self.bs.step(&frame);
                self.bs_script.push_frame(kind, data);
            }
            Role::Client => {
                self.client.step(&frame);
                self.client_script.push_frame(kind, data);
            }
        }
        self.collect();
    }

    /// Moves what the roles sent onto the network.
    fn collect(&mut self) {
        let now = self.now();
        let sent: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = [
            (
                testbed::server_addr(),
                std::mem::take(&mut self.server.sent),
            ),
            (testbed::bootstrap_addr(), std::mem::take(&mut self.bs.sent)),
            (
                testbed::client_addr(),
                std::mem::take(&mut self.client.sent),
            ),
        ]
        .into_iter()
        .flat_map(|(from, sent)| sent.into_iter().map(move |(to, b)| (from, to, b)))
        .collect();
        for (from, to, bytes) in sent {
            self.wire.push((from, bytes.clone()));
            self.sent_count += 1;
            if self
                .drop_every
                .is_some_and(|n| self.sent_count.is_multiple_of(n))
            {
                continue;
            }
            self.queue.push(InFlight {
                at: now + LATENCY,
                from,
                to,
                bytes,
            });
        }
    }

    fn deliver(&mut self, d: InFlight) {
        let Some(role) = self.role_of(d.to) else {
            return;
        };
        let secondary = match role {
            Role::Client => d.from == testbed::bootstrap_addr(),
            _ => d.from != testbed::client_addr(),
        };
        let as_reply = match role {
            Role::Server => self.server.as_reply(secondary, &d.bytes),
            Role::Bootstrap => self.bs.as_reply(secondary, &d.bytes),
            Role::Client => self.client.as_reply(secondary, &d.bytes),
        };
        let op = if as_reply == d.bytes { 1 } else { 0 };
        self.feed(role, op | u8::from(secondary) << 2, &d.bytes);
    }

    /// Advances every role's clock to `t` (rounded up to a millisecond).
    fn advance_to(&mut self, t: Instant) {
        let gap = t.saturating_duration_since(self.now());
        let ms = gap.as_millis() as u32 + u32::from(!gap.as_nanos().is_multiple_of(1_000_000));
        if ms == 0 {
            return;
        }
        let data = ms.to_be_bytes();
        for role in [Role::Server, Role::Bootstrap, Role::Client] {
            self.feed(role, 3, &data);
        }
    }

    fn next_event(&self) -> Option<Instant> {
        [
            self.queue.iter().map(|q| q.at).min(),
            self.server.endpoint.poll_timeout(),
            self.bs.endpoint.poll_timeout(),
            self.client.endpoint.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the network for `d` of fake time, or until `done` holds.
    fn run(&mut self, d: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let until = self.now() + d;
        loop {
            self.queue.sort_by_key(|q| q.at);
            while self.queue.first().is_some_and(|q| q.at <= self.now()) {
                let q = self.queue.remove(0);
                self.deliver(q);
                self.queue.sort_by_key(|q| q.at);
            }
            if done(self) {
                return true;
            }
            match self.next_event().filter(|t| *t <= until) {
                Some(t) => self.advance_to(t.max(self.now())),
                None => {
                    self.advance_to(until);
                    return done(self);
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.run(d, |_| false);
    }

    fn registered(&self) -> bool {
        self.server
            .endpoint
            .server
            .registration(testbed::ENDPOINT)
            .is_some()
            && matches!(
                self.client.endpoint.0.state(),
                RegistrationState::Registered { .. }
            )
    }

    fn register(&mut self) {
        self.run(Duration::from_secs(300), Net::registered);
    }

    /// The server sends request `index` of [`server::requests`] and the
    /// network runs for `then`.
    fn request(&mut self, index: u8, then: Duration) {
        self.feed(Role::Server, 2, &[index]);
        self.run_for(then);
    }

    fn client_action(&mut self, data: &[u8], then: Duration) {
        self.feed(Role::Client, 2, data);
        self.run_for(then);
    }
}

/// Index of a request in [`server::requests`].
mod request {
    pub const READ_TLV: u8 = 0;
    pub const READ_SENML_JSON: u8 = 1;
    pub const READ_SENML_CBOR: u8 = 2;
    pub const READ_LWM2M_CBOR: u8 = 3;
    pub const READ_TEXT: u8 = 4;
    pub const READ_OBJECT: u8 = 5;
    pub const WRITE_TEXT: u8 = 6;
    pub const WRITE_TLV: u8 = 7;
    pub const EXECUTE_REBOOT: u8 = 8;
    pub const DISCOVER: u8 = 9;
    pub const CREATE: u8 = 10;
    pub const DELETE: u8 = 11;
    pub const WRITE_ATTRIBUTES: u8 = 12;
    pub const OBSERVE: u8 = 13;
    pub const CANCEL_OBSERVE: u8 = 14;
    pub const PUSH: u8 = 15;
    pub const READ_FIRMWARE_STATE: u8 = 16;
    pub const OBSERVE_SENML_CBOR: u8 = 17;
    pub const EXECUTE_UPDATE: u8 = 18;
}

/// Client actions (see the `client` target).
mod action {
    pub const UPDATE: u8 = 0;
    pub const BATTERY: u8 = 1;
    pub const STOP: u8 = 2;
    pub const NEW_INSTANCE: u8 = 4;
    pub const REFUSE_UPDATE: u8 = 5;
}

/// A scenario: what happens on the network once the meter is registered.
type Scenario = fn(&mut Net);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn scenarios() -> Vec<(&'static str, Scenario)> {
    use request::*;
    vec![
        ("reads", |n: &mut Net| {
            for r in [
                READ_TLV,
                READ_SENML_JSON,
                READ_SENML_CBOR,
                READ_LWM2M_CBOR,
                READ_TEXT,
                READ_OBJECT,
                READ_FIRMWARE_STATE,
            ] {
                n.request(r, s(2));
            }
        }),
        ("writes", |n: &mut Net| {
            for r in [
                WRITE_TEXT,
                WRITE_TLV,
                DISCOVER,
                CREATE,
                DELETE,
                EXECUTE_REBOOT,
            ] {
                n.request(r, s(2));
            }
            n.client_action(&[action::REFUSE_UPDATE, 0], s(1));
            n.request(EXECUTE_UPDATE, s(2));
        }),
        ("observe", |n: &mut Net| {
            n.request(WRITE_ATTRIBUTES, s(2));
            n.request(OBSERVE, s(2));
            n.client_action(&[action::BATTERY, 50], s(3));
            n.client_action(&[action::BATTERY, 40], s(12));
            n.request(OBSERVE_SENML_CBOR, s(2));
            n.client_action(&[action::BATTERY, 30], s(2));
            n.request(CANCEL_OBSERVE, s(2));
        }),
        ("push", |n: &mut Net| n.request(PUSH, s(30))),
        ("lifecycle", |n: &mut Net| {
            n.run_for(s(40));
            n.client_action(&[action::UPDATE], s(2));
            n.client_action(&[action::NEW_INSTANCE, 3], s(2));
            n.client_action(&[action::UPDATE], s(2));
            n.client_action(&[action::STOP], s(5));
        }),
    ]
}

fn script_seed(target: &'static str, name: &str, script: &Script) -> Option<Seed> {
    (!script.is_empty()).then(|| Seed::new(target, name, script.clone().into_bytes()))
}

/// Captures every scenario, with a perfect and a lossy link, and the
/// bootstrap conversation.
fn conversations() -> (Vec<Seed>, Vec<Vec<u8>>) {
    let mut seeds = Vec::new();
    let mut wire = Vec::new();
    for drop_every in [None, Some(4)] {
        let suffix = if drop_every.is_some() { "-lossy" } else { "" };
        for (name, scenario) in scenarios() {
            let mut net = Net::new(false, drop_every);
            net.register();
            scenario(&mut net);
            let name = format!("capture-{name}{suffix}");
            seeds.extend(script_seed("server", &name, &net.server_script));
            seeds.extend(script_seed("client", &name, &net.client_script));
            if drop_every.is_none() {
                // The bare message layer answers differently, but the
                // datagrams are a real conversation's.
                seeds.extend(script_seed("coap-exchange", &name, &net.server_script));
            }
            wire.extend(net.wire.into_iter().map(|(_, b)| b));
        }
        let mut net = Net::new(true, drop_every);
        net.register();
        net.request(request::READ_TLV, Duration::from_secs(2));
        let name = format!("capture-bootstrap{suffix}");
        seeds.extend(script_seed("server", &name, &net.server_script));
        seeds.extend(script_seed("bootstrap-server", &name, &net.bs_script));
        seeds.extend(script_seed("client-bootstrap", &name, &net.client_script));
        wire.extend(net.wire.into_iter().map(|(_, b)| b));
    }
    (seeds, wire)
}

/// Target of a payload by its Content-Format.
fn payload_target(cf: u16) -> Option<&'static str> {
    Some(match ContentFormat::from_code(cf)? {
        ContentFormat::Text => "text",
        ContentFormat::LinkFormat => "link-format",
        ContentFormat::Opaque => "opaque",
        ContentFormat::SenmlJson => "senml-json",
        ContentFormat::SenmlCbor => "senml-cbor",
        ContentFormat::Tlv => "tlv",
        ContentFormat::Lwm2mCbor => "lwm2m-cbor",
        ContentFormat::Cbor => "cbor",
        _ if cf == crate::targets::format::LWM2M_JSON => "lwm2m-json",
        _ => return None,
    })
}

/// Seeds for the single-message targets from captured datagrams: each
/// distinct datagram (up to a limit), each payload by its format, and each
/// Register or Update.
fn single_messages(wire: &[Vec<u8>]) -> Vec<Seed> {
    const MAX_DATAGRAMS: usize = 120;
    let mut seen = BTreeSet::new();
    let mut seeds = Vec::new();
    let mut datagrams = 0;
    for bytes in wire {
        if !seen.insert(bytes.clone()) {
            continue;
        }
        if datagrams < MAX_DATAGRAMS {
            seeds.push(Seed::new(
                "coap-wire",
                format!("capture-{datagrams:03}"),
                bytes.clone(),
            ));
            datagrams += 1;
        }
        let Ok(packet) = wire::decode(bytes) else {
            continue;
        };
        if !packet.payload.is_empty() {
            if let Some(target) = options::content_format(&packet).and_then(payload_target) {
                let n = seeds.iter().filter(|s| s.target == target).count();
                seeds.push(Seed::new(
                    target,
                    format!("capture-{n:03}"),
                    packet.payload.clone(),
                ));
            }
        }
        let path = options::strings(&packet, CoapOption::UriPath);
        if packet.header.code == MessageClass::Request(RequestType::Post)
            && path.first().is_some_and(|p| p == "rd")
        {
            let n = seeds
                .iter()
                .filter(|s| s.target == "registration-params")
                .count();
            seeds.push(Seed::new(
                "registration-params",
                format!("capture-{n:03}"),
                bytes.clone(),
            ));
        }
    }
    // Payload files must not repeat within a target either.
    let mut unique = BTreeSet::new();
    seeds.retain(|s| unique.insert((s.target, s.bytes.clone())));
    seeds
}

/// A DTLS 1.2 PSK handshake and one exchange of application data between
/// the OpenSSL client and server: every datagram, both ways, in order
/// (`true`: client to server).
fn dtls_handshake() -> Vec<(bool, Vec<u8>)> {
    let mut now = Instant::now();
    let Ok(mut server) = OpensslServer::new(dtls_target::server_config()) else {
        return Vec::new();
    };
    let Ok(mut client) =
        OpensslClient::connect(dtls_target::client_config(), testbed::server_addr(), now)
    else {
        return Vec::new();
    };
    let me = testbed::client_addr();
    let mut log = Vec::new();
    let mut sent_data = false;
    for _ in 0..32 {
        let mut moved = false;
        while let Some(t) = client.poll_transmit() {
            server.handle_datagram(now, me, &t.payload);
            log.push((true, t.payload));
            moved = true;
        }
        while let Some(t) = server.poll_transmit() {
            client.handle_datagram(now, testbed::server_addr(), &t.payload);
            log.push((false, t.payload));
            moved = true;
        }
        while client.poll_event().is_some() || server.poll_event().is_some() {}
        while server.poll_received().is_some() || client.poll_received().is_some() {}
        if !moved {
            if sent_data {
                break;
            }
            let _ = client.send(now, b"\x40\x01\x00\x01");
            let _ = server.send(now, me, b"\x60\x45\x00\x01");
            sent_data = true;
        }
        now += Duration::from_millis(5);
    }
    client.close(now);
    while let Some(t) = client.poll_transmit() {
        log.push((true, t.payload));
    }
    log
}

fn dtls_seeds() -> Vec<Seed> {
    let log = dtls_handshake();
    let mut seeds = Vec::new();
    for (i, (to_server, bytes)) in log.iter().enumerate() {
        let way = if *to_server { "client" } else { "server" };
        seeds.push(Seed::new(
            "dtls-record",
            format!("capture-{i:02}-{way}"),
            bytes.clone(),
        ));
    }
    // Scripts (see the dtls-server target): action 7 pumps, 0/1 forward one
    // way (with a patch), 2/3 send data, 4/5/6 close, advance empty = next deadline.
    let pump = Script::new().action(false, &[7]);
    let step_by_step = (0..4).fold(Script::new(), |s, _| {
        s.action(false, &[0]).action(false, &[1])
    });
    let scripts = [
        (
            "capture-handshake-data-close",
            pump.clone()
                .action(false, &[2, 0x40, 0x01, 0x00, 0x01])
                .action(false, &[0])
                .action(false, &[3, 0x60, 0x45, 0x00, 0x01])
                .action(false, &[1])
                .action(false, &[4])
                .action(false, &[1]),
        ),
        (
            "capture-step-by-step",
            step_by_step
                .clone()
                .action(false, &[2, b'h', b'i'])
                .action(false, &[0])
                .action(false, &[5])
                .action(false, &[0]),
        ),
        (
            "capture-lost-flights",
            Script::new()
                .action(false, &[0])
                .advance_to_deadline()
                .action(false, &[1])
                .action(false, &[0])
                .advance_to_deadline()
                .advance_to_deadline()
                .action(false, &[7])
                .advance_ms(3_600_000),
        ),
        (
            "capture-corrupt-client-hello",
            Script::new()
                .action(false, &[0, 0, 13, 0x01])
                .action(false, &[7]),
        ),
        (
            "capture-corrupt-finished",
            step_by_step
                .clone()
                .action(false, &[0, 0, 20, 0xff, 0xff])
                .action(false, &[7]),
        ),
        (
            "capture-shutdown",
            pump.clone().action(false, &[6]).action(false, &[7]),
        ),
    ];
    for (name, script) in scripts {
        seeds.push(Seed::new("dtls-server", name, script.into_bytes()));
    }
    // The captured client datagrams injected raw, from the live client's
    // address and from another one.
    let mut raw = Script::new();
    for (to_server, bytes) in &log {
        if *to_server {
            raw = raw.deliver(false, bytes).deliver(true, bytes);
        }
    }
    seeds.push(Seed::new(
        "dtls-server",
        "capture-replayed-datagrams",
        raw.action(false, &[7]).into_bytes(),
    ));
    seeds
}

/// Every captured seed.
pub fn captured() -> Vec<Seed> {
    let (mut seeds, wire) = conversations();
    seeds.extend(single_messages(&wire));
    seeds.extend(dtls_seeds());
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `role` sent when its script is replayed against a fresh endpoint.
    fn replay<E: Endpoint>(mut driver: Driver<E>, script: &Script) -> Vec<Vec<u8>> {
        driver.settle();
        for f in frames::parse(&script.clone().into_bytes()) {
            driver.step(&f);
        }
        driver.sent.into_iter().map(|(_, b)| b).collect()
    }

    fn sent_by(net: &Net, from: SocketAddr) -> Vec<Vec<u8>> {
        net.wire
            .iter()
            .filter(|(f, _)| *f == from)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// A captured script drives a fresh endpoint through the very same
    /// conversation: it sends byte for byte what it sent in the capture.
    #[test]
    fn captured_scripts_replay_byte_for_byte() {
        for (name, scenario) in scenarios() {
            let mut net = Net::new(false, Some(5));
            net.register();
            assert!(net.registered(), "{name}: the meter registers");
            scenario(&mut net);
            let now = Instant::now();
            let server = Driver::new(ServerEndpoint::new(), server::peers(), now).keep_sent();
            assert_eq!(
                replay(server, &net.server_script),
                sent_by(&net, testbed::server_addr()),
                "{name}: server"
            );
            let client = Driver::new(
                ClientEndpoint(client::new_client(now, false)),
                client::peers(),
                now,
            )
            .keep_sent();
            assert_eq!(
                replay(client, &net.client_script),
                sent_by(&net, testbed::client_addr()),
                "{name}: client"
            );
        }
        let mut net = Net::new(true, None);
        net.register();
        assert!(net.registered(), "the meter bootstraps, then registers");
        let bs = Driver::new(
            BootstrapEndpoint(bootstrap::new_bootstrap_server()),
            bootstrap::peers(),
            Instant::now(),
        )
        .keep_sent();
        assert_eq!(
            replay(bs, &net.bs_script),
            sent_by(&net, testbed::bootstrap_addr())
        );
    }

    #[test]
    fn the_handshake_completes_and_carries_data() {
        let log = dtls_handshake();
        assert!(log.len() >= 7, "{} datagrams", log.len());
    }
}
