//! Firmware push (LwM2M 1.1 Core §E.6, Push delivery): the server role
//! writes an image into /5/0/0 with Block1 (RFC 7959 §2.5) and the client
//! role reassembles it, through an in-memory link with a fake clock that
//! drops datagrams on demand — the quinn-proto `Pair` way.

use std::time::{Duration, Instant};

use crate::support;
use crate::support::{registry, Dir};

use lwm2m::client::{Client, ClientEvent, ObjectStore};
use lwm2m::coap::summarize;
use lwm2m::format::ContentFormat;
use lwm2m::server::{
    DmRequest, PushProgress, RequestError, RequestId, Response, Server, ServerEvent,
    PUSH_PROGRESS_EVERY_BLOCKS,
};
use lwm2m::{Path, Value};

const LATENCY: Duration = Duration::from_millis(20);

/// /5/0/0 Package.
fn package() -> Path {
    Path::resource(5, 0, 0)
}

/// A 64 KiB image whose every block differs, so a misplaced block shows.
fn image(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Decides from (direction, per-direction count, summary) whether to drop a datagram.
type LossFilter = Box<dyn FnMut(Dir, u64, &str) -> bool>;

/// Server and client roles joined by a link that drops the datagrams `drop` picks.
struct Pair {
    now: Instant,
    server: Server,
    client: Client,
    queue: Vec<(Instant, Dir, Vec<u8>)>,
    /// Picks datagrams to drop, by direction and per-direction count.
    drop: LossFilter,
    sent: [u64; 2],
    dropped: u32,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
}

impl Pair {
    fn new() -> Self {
        let registry = registry();
        let mut store = ObjectStore::new(registry.clone());
        store.set(Path::resource(1, 0, 0), Value::Integer(1));
        store.set(Path::resource(1, 0, 1), Value::Integer(3600));
        store.set(Path::resource(1, 0, 7), Value::String("U".into()));
        store.set(Path::resource(3, 0, 0), Value::String("meterbench".into()));
        store.set(Path::resource(5, 0, 3), Value::Integer(0));
        store.set(Path::resource(5, 0, 5), Value::Integer(0));
        let client = Client::new(
            // Long enough that no registration Update crosses the push:
            // every datagram after registration belongs to it.
            support::client_config(&registry, Duration::from_secs(3600)),
            store,
        );
        let server = support::server(&registry);
        let mut pair = Pair {
            now: Instant::now(),
            server,
            client,
            queue: Vec::new(),
            drop: Box::new(|_, _, _| false),
            sent: [0, 0],
            dropped: 0,
            server_events: Vec::new(),
            client_events: Vec::new(),
        };
        pair.client.start(pair.now);
        pair.run_until(Duration::from_secs(10), |p| {
            support::both_registered(&p.server, &p.client)
        });
        pair.server_events.clear();
        pair.client_events.clear();
        pair.sent = [0, 0];
        pair
    }

    fn drive(&mut self) {
        assert!(support::settle(self), "the pair did not settle");
    }

    fn run_until(&mut self, limit: Duration, done: impl FnMut(&Pair) -> bool) {
        let until = self.now + limit;
        if !support::advance(self, until, Pair::drive, done) {
            panic!("condition not met within {limit:?}");
        }
    }

    fn response(&self, id: RequestId) -> Option<Result<Response, RequestError>> {
        support::response_to(&self.server_events, id)
    }

    fn progress_events(&self, id: RequestId) -> Vec<PushProgress> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::PushProgress {
                    id: got, progress, ..
                } if *got == id => Some(progress.clone()),
                _ => None,
            })
            .collect()
    }

    /// Pushes `body` to /5/0/0 and runs until the final response.
    fn push(
        &mut self,
        body: Vec<u8>,
        szx: u8,
    ) -> (RequestId, Result<Response, RequestError>, PushProgress) {
        let id = self
            .server
            .request(
                self.now,
                "meter-1",
                DmRequest::WriteBlockwise {
                    path: package(),
                    format: ContentFormat::Opaque,
                    body,
                    szx,
                },
            )
            .expect("push starts");
        assert!(self.server.push_progress(id).is_some(), "in flight");
        self.run_until(Duration::from_secs(3600), |p| p.response(id).is_some());
        assert!(self.server.push_progress(id).is_none(), "ended");
        let last = self
            .progress_events(id)
            .pop()
            .expect("a final PushProgress");
        (id, self.response(id).unwrap(), last)
    }
}

impl support::Link for Pair {
    support::link_fields!();

    fn next_arrival(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.0).min()
    }

    fn send(&mut self, dir: Dir, bytes: Vec<u8>) {
        let n = &mut self.sent[dir as usize];
        *n += 1;
        if (self.drop)(dir, *n, &summarize(&bytes)) {
            self.dropped += 1;
            return;
        }
        self.queue.push((self.now + LATENCY, dir, bytes));
    }

    fn take_due(&mut self) -> Option<(Dir, Vec<u8>)> {
        let due = support::pop_due(&mut self.queue, self.now, |q| q.0);
        due.map(|(_, dir, bytes)| (dir, bytes))
    }
}

#[test]
fn push_renegotiates_down_to_the_device_block_size_and_survives_loss() {
    let mut pair = Pair::new();
    // The device takes blocks of at most 256 bytes (SZX 4); we start at 1024.
    pair.client.accept_block1(package(), 128 * 1024, 4);
    // Every 7th datagram each way is lost: block requests and their ACKs.
    pair.drop = Box::new(|_, n, _| n % 7 == 0);
    let body = image(64 * 1024);
    let (id, result, last) = pair.push(body.clone(), 6);

    let response = result.expect("the device answered");
    assert_eq!(response.code, 204, "2.04 Changed for the last block");
    assert_eq!(
        pair.client.store().get(&package()),
        Some(&Value::Opaque(body.clone())),
        "the image arrived byte for byte"
    );
    assert!(pair
        .client_events
        .contains(&ClientEvent::Written { path: package() }));

    assert!(last.finished);
    assert_eq!(last.path, package());
    assert_eq!((last.bytes, last.total), (64 * 1024, 64 * 1024));
    assert_eq!(last.block_size, 256);
    assert_eq!(last.initial_szx, 6);
    assert_eq!(last.renegotiations, 1, "one 4.13 on block 0");
    assert_eq!(last.blocks, 256, "64 KiB in 256-byte blocks");
    assert!(pair.dropped > 30, "the link was lossy: {}", pair.dropped);
    // Each lost datagram (a block or its ACK) costs exactly one retransmission.
    assert_eq!(last.retransmissions, pair.dropped);
    assert!(last.elapsed > Duration::ZERO && last.throughput() > 0.0);
    assert_eq!(last.size1, None);

    // Progress came along the way, in order, not once per block.
    let all = pair.progress_events(id);
    assert!(all.len() >= 256 / PUSH_PROGRESS_EVERY_BLOCKS as usize);
    assert!(all.len() < 64, "{} progress events", all.len());
    assert!(all.windows(2).all(|w| w[0].bytes <= w[1].bytes));
    assert_eq!(all.iter().filter(|p| p.finished).count(), 1);
}

#[test]
fn a_clean_push_at_the_device_block_size_needs_no_renegotiation() {
    let mut pair = Pair::new();
    pair.client.accept_block1(package(), 128 * 1024, 6);
    let body = image(61_234); // not a multiple of the block size
    let (_, result, last) = pair.push(body.clone(), 6);
    assert_eq!(result.unwrap().code, 204);
    assert_eq!(
        pair.client.store().get(&package()),
        Some(&Value::Opaque(body))
    );
    assert_eq!(last.blocks, 60);
    assert_eq!((last.retransmissions, last.renegotiations), (0, 0));
}

#[test]
fn a_push_refused_as_too_large_reports_4_13_and_the_device_limit() {
    let mut pair = Pair::new();
    pair.client.accept_block1(package(), 16 * 1024, 6);
    let (_, result, last) = pair.push(image(64 * 1024), 6);
    let response = result.expect("a refusal is an answer, not an error");
    assert_eq!(response.code, 413);
    assert_eq!(last.size1, Some(16 * 1024), "Size1 carries the limit");
    assert_eq!((last.bytes, last.blocks), (0, 0));
    assert!(last.finished);
    assert_eq!(pair.client.store().get(&package()), None);
    assert!(pair.client_events.iter().any(
        |e| matches!(e, ClientEvent::Block1Refused { path, code: 413 } if *path == package())
    ));
}

#[test]
fn a_device_that_ignores_block1_is_reported_as_breaking_the_transfer() {
    let mut pair = Pair::new();
    // A device without block-wise transfer: the client writes block 0 alone
    // and answers 2.04 to a block that said more were coming.
    pair.client.ignore_block1(true);
    let (_, result, last) = pair.push(image(4096), 6);
    match result {
        Err(RequestError::Decode(reason)) => {
            assert!(reason.contains("ignored block-wise"), "{reason}")
        }
        other => panic!("expected a protocol violation, got {other:?}"),
    }
    assert!(last.finished);
}

#[test]
fn an_unanswered_push_times_out_with_its_transmissions_counted() {
    let mut pair = Pair::new();
    pair.client.accept_block1(package(), 128 * 1024, 6);
    // The device goes silent after the fourth block.
    pair.drop = Box::new(|dir, n, _| dir == Dir::ToClient && n > 4);
    let (_, result, last) = pair.push(image(8192), 6);
    assert_eq!(result, Err(RequestError::Timeout { attempts: 5 }));
    assert_eq!(last.blocks, 4);
    assert_eq!(
        last.retransmissions, 4,
        "MAX_RETRANSMIT for the fifth block"
    );
}

#[test]
fn a_reserved_block_size_is_an_invalid_request() {
    let mut pair = Pair::new();
    let err = pair
        .server
        .request(
            pair.now,
            "meter-1",
            DmRequest::WriteBlockwise {
                path: package(),
                format: ContentFormat::Opaque,
                body: vec![1; 100],
                szx: 7,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Invalid(ref m) if m.contains("SZX 7")),
        "{err}"
    );
}
