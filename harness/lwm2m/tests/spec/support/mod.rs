//! What the tests that join the server role and the client role over a
//! fake-clock link (pair.rs, blockwise.rs, push.rs) share: the object
//! registry, the two roles configured alike, and the moves of a link that
//! do not depend on its loss policy, so each test file keeps only its own
//! policy (fates, drop filters) and its assertions; and, in [`vectors`],
//! what the format tests write their vectors with.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::client::{Client, ClientConfig, ClientEvent, RegistrationState};
use lwm2m::format::{ContentFormat, Record};
use lwm2m::server::{RequestError, RequestId, Response, Server, ServerConfig, ServerEvent};
use lwm2m::Registry;

pub mod vectors;

pub const SERVER: &str = "127.0.0.1:5683";
pub const CLIENT: &str = "127.0.0.1:56830";

/// Which way a datagram on the link travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// fixtures/objects, loaded once per test binary.
pub fn registry() -> Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/objects");
            Registry::load_dir(&dir).expect("fixtures/objects loads")
        })
        .clone()
}

/// The server role: TLV by default, seed 11 (reproducible tokens and ids).
pub fn server(registry: &Registry) -> Server {
    seeded_server(registry, 11)
}

/// The server role with TLV by default and `seed`: the tests that pin
/// tokens and location ids byte for byte each keep the seed their vectors
/// were written with.
pub fn seeded_server(registry: &Registry, seed: u64) -> Server {
    Server::new(ServerConfig {
        registry: registry.clone(),
        default_format: ContentFormat::Tlv,
        seed,
    })
}

/// A request datagram as a client sends it to the server role: `ty` (CON or
/// NON), token 0x0a, Uri-Path, Uri-Query and, when given, a link-format (40)
/// payload (Register and Update, LwM2M Core §6.2).
pub fn request(
    ty: MessageType,
    method: RequestType,
    mid: u16,
    path: &[&str],
    query: &[&str],
    links: Option<&str>,
) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(ty);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![0x0a]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    if let Some(links) = links {
        p.add_option(CoapOption::ContentFormat, vec![40]);
        p.payload = links.as_bytes().to_vec();
    }
    p.to_bytes().unwrap()
}

/// `CON POST /<path>?<query>` as [`request`] builds it.
pub fn con_post(mid: u16, path: &[&str], query: &[&str], links: Option<&str>) -> Vec<u8> {
    request(
        MessageType::Confirmable,
        RequestType::Post,
        mid,
        path,
        query,
        links,
    )
}

/// The result the server role raised for request `id`, if it has yet.
pub fn response_to(
    events: &[ServerEvent],
    id: RequestId,
) -> Option<Result<Response, RequestError>> {
    events.iter().find_map(|e| match e {
        ServerEvent::Response { id: i, result, .. } if *i == id => Some(result.clone()),
        _ => None,
    })
}

/// The records of every notification among `events`, in order.
pub fn notifications(events: &[ServerEvent]) -> Vec<Vec<Record>> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Notification { records, .. } => Some(records.clone()),
            _ => None,
        })
        .collect()
}

/// The client role's configuration: endpoint `meter-1` at [`SERVER`],
/// LwM2M 1.1, UDP binding, TLV preferred, seed 22, no bootstrap.
pub fn client_config(registry: &Registry, lifetime: Duration) -> ClientConfig {
    ClientConfig {
        endpoint: "meter-1".into(),
        server: SERVER.parse().unwrap(),
        lifetime,
        lwm2m_version: "1.1".into(),
        binding: "U".into(),
        registry: registry.clone(),
        preferred_format: ContentFormat::Tlv,
        seed: 22,
        bootstrap: None,
        retry: Default::default(),
    }
}

/// The two roles and the events they raised, borrowed together from a [`Link`].
pub type Roles<'a> = (
    &'a mut Server,
    &'a mut Client,
    &'a mut Vec<ServerEvent>,
    &'a mut Vec<ClientEvent>,
);

/// A fake-clock link between the server role and the client role. Each
/// test file keeps its own policy for what the link does with a datagram
/// (`send`) and its own queue (`take_due`); [`settle`] is the loop they share.
pub trait Link {
    fn roles(&mut self) -> Roles<'_>;
    /// The fake clock.
    fn clock(&mut self) -> &mut Instant;
    /// When the earliest queued datagram arrives.
    fn next_arrival(&self) -> Option<Instant>;
    /// A side sent `bytes` towards `dir`: deliver later, drop, duplicate ...
    fn send(&mut self, dir: Dir, bytes: Vec<u8>);
    /// The earliest queued datagram, removed, if it is due now.
    fn take_due(&mut self) -> Option<(Dir, Vec<u8>)>;
}

/// [`Link::roles`] and [`Link::clock`] for a link struct whose fields are
/// named `server`, `client`, `server_events`, `client_events` and `now`, as
/// every link of this binary names them: inside its `impl Link`,
/// `support::link_fields!();`.
macro_rules! link_fields {
    () => {
        fn roles(&mut self) -> $crate::support::Roles<'_> {
            (
                &mut self.server,
                &mut self.client,
                &mut self.server_events,
                &mut self.client_events,
            )
        }

        fn clock(&mut self) -> &mut std::time::Instant {
            &mut self.now
        }
    };
}
pub(crate) use link_fields;

/// Removes the earliest entry of `queue` (arrival time `at`) if it is due
/// at `now`: what a [`Link::take_due`] does with its own queue type.
pub fn pop_due<T>(queue: &mut Vec<T>, now: Instant, at: impl Fn(&T) -> Instant) -> Option<T> {
    queue.sort_by_key(|q| at(q));
    let due = queue.first().is_some_and(|q| at(q) <= now);
    due.then(|| queue.remove(0))
}

/// Processes everything due at the link's current instant: what both sides
/// send (server first, each addressed to the other side) goes to
/// [`Link::send`], the datagram due arrives, due timers fire and events are
/// collected, until nothing more happens. False if that never comes (a timer
/// that keeps firing), within a bound.
pub fn settle(link: &mut impl Link) -> bool {
    let now = *link.clock();
    for _ in 0..100_000 {
        let mut progressed = false;
        for (dir, bytes) in drain_transmits(link.roles()) {
            link.send(dir, bytes);
            progressed = true;
        }
        let arrived = link.take_due();
        progressed |= step(link.roles(), now, arrived);
        if !progressed {
            return true;
        }
    }
    false
}

fn drain_transmits((server, client, _, _): Roles<'_>) -> Vec<(Dir, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = server.poll_transmit() {
        assert_eq!(t.destination, CLIENT.parse().unwrap());
        out.push((Dir::ToClient, t.payload));
    }
    while let Some(t) = client.poll_transmit() {
        assert_eq!(t.destination, SERVER.parse().unwrap());
        out.push((Dir::ToServer, t.payload));
    }
    out
}

/// Hands `arrived` to the side it travels to (from the other side's
/// address), wakes each side whose timer is due and collects the events
/// both raised; true if a datagram arrived or a timer fired.
fn step(roles: Roles<'_>, now: Instant, arrived: Option<(Dir, Vec<u8>)>) -> bool {
    let (server, client, server_events, client_events) = roles;
    let mut progressed = false;
    match arrived {
        Some((Dir::ToServer, bytes)) => {
            server.handle_datagram(now, CLIENT.parse().unwrap(), &bytes);
            progressed = true;
        }
        Some((Dir::ToClient, bytes)) => {
            client.handle_datagram(now, SERVER.parse().unwrap(), &bytes);
            progressed = true;
        }
        None => {}
    }
    if server.poll_timeout().is_some_and(|t| t <= now) {
        server.handle_timeout(now);
        progressed = true;
    }
    if client.poll_timeout().is_some_and(|t| t <= now) {
        client.handle_timeout(now);
        progressed = true;
    }
    server_events.extend(std::iter::from_fn(|| server.poll_event()));
    client_events.extend(std::iter::from_fn(|| client.poll_event()));
    progressed
}

/// Both roles agree the client is registered: the server holds `meter-1`
/// and the client's state says Registered.
pub fn both_registered(server: &Server, client: &Client) -> bool {
    server.registration("meter-1").is_some()
        && matches!(client.state(), RegistrationState::Registered { .. })
}

/// Runs `link` with `drive` (which settles it), then moves its clock to
/// each next wake-up (a datagram's arrival, a side's timer) no later than
/// `until` and drives again, until `done` holds: true. False when nothing
/// is left to wake up for by `until`; the clock stays at the last wake-up.
pub fn advance<L: Link>(
    link: &mut L,
    until: Instant,
    drive: impl Fn(&mut L),
    mut done: impl FnMut(&L) -> bool,
) -> bool {
    loop {
        drive(link);
        if done(link) {
            return true;
        }
        let queued = link.next_arrival();
        let (server, client, _, _) = link.roles();
        let next = [queued, server.poll_timeout(), client.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .filter(|t| *t <= until);
        match next {
            Some(t) => {
                let clock = link.clock();
                *clock = (*clock).max(t);
            }
            None => return false,
        }
    }
}
