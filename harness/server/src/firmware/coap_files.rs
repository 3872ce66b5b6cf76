//! The CoAP file server: the store's images at `coap://<addr>/fw/<name>`,
//! block-wise (RFC 7959 Block2) at whatever block size (SZX 0–6) and from
//! whatever block the client asks — which is how a meter resumes a download
//! after a power cut.
//!
//! [`FileService`] is the sans-IO core (datagram in, datagram out, progress
//! events); [`CoapFileServer`] is the tokio task that moves datagrams between
//! it and a [`DatagramTransport`].
//!
//! What it refuses, all with 4.04 Not Found and without touching the file
//! system (the bytes served are the store's, read at load time): any path
//! other than exactly two segments `fw` and a name the manifest lists — so
//! `..`, absolute paths, percent-encoded segments (`%2e%2e` arrives as the
//! literal bytes, which no valid name contains), empty segments and `/fw`
//! itself (no listing). Methods other than GET on an image get 4.05.
//!
//! Duplicates (RFC 7252 §4.5): a CON or NON whose (peer, message id) was
//! seen within EXCHANGE_LIFETIME is answered again (GET is idempotent, so
//! the answer is rebuilt, byte-identical, rather than cached) and counted as
//! a retransmission in the transfer's figures.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m::coap::block::{respond_block2, serve_block2, BlockKind, BlockOption};
use lwm2m::coap::exchange::EXCHANGE_LIFETIME;
use lwm2m::coap::{code, wire};
use tokio::sync::{broadcast, oneshot};

use super::progress::{ProgressEvent, TransferStats, PROGRESS_EVERY_BLOCKS};
use super::serve_task::ServeTask;
use super::store::Store;
use super::transport::DatagramTransport;
use super::{manifest, FirmwareError};

/// The first Uri-Path segment of every image URL.
pub const PATH_PREFIX: &str = "fw";
/// Block size when the client does not ask for one: 1024 bytes (SZX 6).
pub const PREFERRED_SZX: u8 = 6;
/// Content-Format of an image: application/octet-stream (RFC 7252 §12.3).
pub const CONTENT_FORMAT_OCTET_STREAM: u16 = 42;
/// At most this many (peer, message id) pairs are remembered for duplicate
/// detection; the oldest go first. 16 Ki covers a 1 MiB image at 64-byte blocks.
const DEDUP_CAPACITY: usize = 16 * 1024;
/// Finished transfers kept for [`FileService::transfers`].
const FINISHED_KEPT: usize = 64;
/// Unfinished transfers kept; the least recently active goes first.
const ACTIVE_KEPT: usize = 256;

#[derive(Debug)]
struct Transfer {
    stats: TransferStats,
    started: Instant,
    /// The offsets served, ascending: a download in order only pushes, and
    /// a repeat is found by binary search (no hashing for every block).
    served: Vec<usize>,
}

impl Transfer {
    /// Notes the block at `offset`; false when it was served before.
    fn serve(&mut self, offset: usize) -> bool {
        match self.served.last() {
            Some(&last) if offset <= last => match self.served.binary_search(&offset) {
                Ok(_) => false,
                Err(at) => {
                    self.served.insert(at, offset);
                    true
                }
            },
            _ => {
                self.served.push(offset);
                true
            }
        }
    }

    fn is(&self, peer: SocketAddr, image: &str) -> bool {
        self.stats.peer == peer && self.stats.image == image
    }
}

/// The sans-IO file service.
#[derive(Debug)]
pub struct FileService {
    store: Arc<Store>,
    seen: HashMap<(SocketAddr, u16), Instant>,
    seen_order: VecDeque<((SocketAddr, u16), Instant)>,
    /// At most [`ACTIVE_KEPT`], found by peer and image in a scan (no
    /// key to allocate for each block).
    active: Vec<Transfer>,
    finished: VecDeque<TransferStats>,
    next_transfer: u64,
    next_message_id: u16,
    events: VecDeque<ProgressEvent>,
}

/// Why a request gets no image.
struct Refusal {
    code: u16,
    reason: &'static str,
}

impl FileService {
    pub fn new(store: Arc<Store>) -> Self {
        FileService {
            store,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            active: Vec::new(),
            finished: VecDeque::new(),
            next_transfer: 1,
            next_message_id: 0x4d42,
            events: VecDeque::new(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Handles one datagram from `peer`; returns the datagram to send back, if any.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.handle_datagram_into(now, peer, datagram, &mut out)
            .then_some(out)
    }

    /// As [`handle_datagram`](Self::handle_datagram), the answer written
    /// into `out` (false: none): a loop that keeps one buffer allocates
    /// nothing for a block (a 1 KiB block's answer is past glibc's
    /// per-thread cache, so each fresh one was a trip through its bins).
    pub fn handle_datagram_into(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if self.fast_block2(now, peer, datagram, out).is_some() {
            return true;
        }
        match self.handle_general(now, peer, datagram) {
            Some(reply) => {
                *out = reply;
                true
            }
            None => false,
        }
    }

    /// The common request of a download — a GET of `fw/<name>` with Block2
    /// and no other option, for a block the image has — read and answered
    /// without coap-lite's Packet (an ordered map of options and an
    /// allocation per option, both ways): the answer is byte-identical to
    /// [`handle_general`](Self::handle_general)'s, and so are the duplicate
    /// bookkeeping and the transfer figures (tested). `None`: anything
    /// else, which the general path answers. Why: the benchmark's floor
    /// (issue 16) showed this decoding and encoding as most of what the
    /// server spent per block above the floor.
    fn fast_block2(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<()> {
        use super::bench::block_wire::{self, put_option, BLOCK2, CON, GET, URI_PATH};
        const NON: u8 = 1;
        const ETAG: u16 = 4;
        const CONTENT_FORMAT: u16 = 12;
        const SIZE2: u16 = 28;
        let mut segments: [&[u8]; 2] = [&[], &[]];
        let mut paths = 0usize;
        let mut blocks = 0usize;
        let mut other = false;
        let request = block_wire::parse_visiting(datagram, |number, value| match number {
            URI_PATH => {
                if let Some(slot) = segments.get_mut(paths) {
                    *slot = value;
                }
                paths += 1;
            }
            BLOCK2 => blocks += 1,
            _ => other = true,
        })
        .ok()?;
        if other
            || paths != 2
            || blocks != 1
            || request.code != GET
            || !request.payload.is_empty()
            || !(request.message_type == CON || request.message_type == NON)
            || segments[0] != PATH_PREFIX.as_bytes()
        {
            return None;
        }
        let asked = request.block2?;
        let name = std::str::from_utf8(segments[1]).ok()?;
        if !manifest::is_valid_name(name) {
            return None;
        }
        let image = self.store.get(name)?;
        let bytes = Arc::clone(&image.bytes);
        let etag = image.etag();
        let block = BlockOption::new(asked.num, asked.more, asked.szx).ok()?;
        let answer = serve_block2(bytes.len(), Some(block), PREFERRED_SZX).ok()?;
        let option = answer.option?;
        let duplicate = self.remember(now, peer, request.message_id);
        let payload = &bytes[answer.range.clone()];
        self.record(
            now,
            peer,
            name,
            bytes.len(),
            option.offset(),
            option.size(),
            payload.len(),
            option.more,
            duplicate,
        );
        let (message_type, message_id) = if request.message_type == CON {
            (block_wire::ACK, request.message_id)
        } else {
            self.next_message_id = self.next_message_id.wrapping_add(1);
            (NON, self.next_message_id)
        };
        out.clear();
        out.reserve(32 + payload.len());
        out.push(0x40 | (message_type << 4) | request.token.len() as u8);
        out.push(0x45); // 2.05 Content
        out.extend_from_slice(&message_id.to_be_bytes());
        out.extend_from_slice(request.token);
        put_option(out, ETAG, &etag);
        put_option(
            out,
            CONTENT_FORMAT - ETAG,
            &lwm2m::coap::options::encode_uint(u32::from(CONTENT_FORMAT_OCTET_STREAM)),
        );
        put_option(out, BLOCK2 - CONTENT_FORMAT, &option.encode());
        if let Some(size2) = answer.size2 {
            put_option(
                out,
                SIZE2 - BLOCK2,
                &lwm2m::coap::options::encode_uint(size2),
            );
        }
        if !payload.is_empty() {
            out.push(0xff);
            out.extend_from_slice(payload);
        }
        Some(())
    }

    /// Any datagram, through coap-lite: refusals, pings, requests without
    /// Block2 or with other options, malformed input.
    fn handle_general(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        datagram: &[u8],
    ) -> Option<Vec<u8>> {
        let request = match wire::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "undecodable datagram to the file server");
                // RFC 7252 §4.2: a CON with a format error gets a Reset.
                return wire::RawHeader::peek(datagram)
                    .filter(|h| h.version == 1 && h.message_type == MessageType::Confirmable)
                    .map(|h| wire::empty(MessageType::Reset, h.message_id));
            }
        };
        let message_type = request.header.get_type();
        let message_id = request.header.message_id;
        let raw_code: u8 = request.header.code.into();
        match message_type {
            MessageType::Acknowledgement | MessageType::Reset => return None,
            MessageType::Confirmable if !code::is_request(raw_code) => {
                // A CoAP ping (Empty CON) or a response we never asked for.
                return Some(wire::empty(MessageType::Reset, message_id));
            }
            MessageType::NonConfirmable if !code::is_request(raw_code) => return None,
            _ => {}
        }
        let duplicate = self.remember(now, peer, message_id);
        let mut response = match self.resolve(&request) {
            Ok(name) => self.serve(now, peer, &request, &name, duplicate),
            Err(refusal) => {
                let path = lwm2m::coap::options::uri_path_string(&request);
                tracing::debug!(%peer, %path, code = refusal.code, reason = refusal.reason, "file request refused");
                if !duplicate {
                    self.events.push_back(ProgressEvent::Refused {
                        peer,
                        path,
                        code: format!("{}.{:02}", refusal.code / 100, refusal.code % 100),
                        reason: refusal.reason.to_owned(),
                    });
                }
                let mut p = Packet::new();
                p.header.code = MessageClass::from(code::from_number(refusal.code).unwrap_or(0x84));
                p.payload = refusal.reason.as_bytes().to_vec();
                p
            }
        };
        response.set_token(request.get_token().to_vec());
        if message_type == MessageType::Confirmable {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = message_id;
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            self.next_message_id = self.next_message_id.wrapping_add(1);
            response.header.message_id = self.next_message_id;
        }
        Some(wire::encode(&response))
    }

    /// What happened since the last call.
    pub fn poll_event(&mut self) -> Option<ProgressEvent> {
        self.events.pop_front()
    }

    /// The figures of unfinished and recently finished transfers, oldest first.
    pub fn transfers(&self) -> Vec<TransferStats> {
        let mut all: Vec<TransferStats> = self
            .finished
            .iter()
            .cloned()
            .chain(self.active.iter().map(|t| t.stats.clone()))
            .collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// Records (peer, message id); true when it was already there.
    fn remember(&mut self, now: Instant, peer: SocketAddr, message_id: u16) -> bool {
        while let Some(&(key, at)) = self.seen_order.front() {
            if now.duration_since(at) < EXCHANGE_LIFETIME && self.seen_order.len() < DEDUP_CAPACITY
            {
                break;
            }
            self.seen_order.pop_front();
            // One hash per eviction and per datagram (entry, not get then
            // remove or insert): this runs for every block served.
            if let std::collections::hash_map::Entry::Occupied(e) = self.seen.entry(key) {
                if *e.get() == at {
                    e.remove();
                }
            }
        }
        let key = (peer, message_id);
        match self.seen.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => true,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(now);
                self.seen_order.push_back((key, now));
                false
            }
        }
    }

    /// The image a request names, or why there is none.
    fn resolve(&self, request: &Packet) -> Result<String, Refusal> {
        const NOT_FOUND: Refusal = Refusal {
            code: 404,
            reason: "no such firmware image",
        };
        let segments: Vec<&Vec<u8>> = request
            .get_option(CoapOption::UriPath)
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        let [prefix, name] = segments.as_slice() else {
            return Err(NOT_FOUND);
        };
        if prefix.as_slice() != PATH_PREFIX.as_bytes() {
            return Err(NOT_FOUND);
        }
        let name = std::str::from_utf8(name).map_err(|_| NOT_FOUND)?;
        if !manifest::is_valid_name(name) || self.store.get(name).is_none() {
            return Err(NOT_FOUND);
        }
        if request.header.code != MessageClass::Request(RequestType::Get) {
            return Err(Refusal {
                code: 405,
                reason: "firmware images are read-only: GET only",
            });
        }
        Ok(name.to_owned())
    }

    fn serve(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        request: &Packet,
        name: &str,
        duplicate: bool,
    ) -> Packet {
        let Some(image) = self.store.get(name) else {
            // resolve() checked; unreachable in practice.
            let mut p = Packet::new();
            p.header.code = MessageClass::from(code::from_number(404).unwrap_or(0x84));
            return p;
        };
        let bytes = Arc::clone(&image.bytes);
        let etag = image.etag();
        let response = respond_block2(
            request,
            &bytes,
            &etag,
            PREFERRED_SZX,
            Some(CONTENT_FORMAT_OCTET_STREAM),
        );
        let raw: u8 = response.header.code.into();
        if raw >> 5 != 2 {
            if !duplicate {
                let number = code::to_number(raw);
                self.events.push_back(ProgressEvent::Refused {
                    peer,
                    path: format!("{PATH_PREFIX}/{name}"),
                    code: format!("{}.{:02}", number / 100, number % 100),
                    reason: String::from_utf8_lossy(&response.payload).into_owned(),
                });
            }
            return response;
        }
        let block = BlockOption::from_packet(&response, BlockKind::Block2)
            .ok()
            .flatten();
        let (offset, block_size, more) = match block {
            Some(b) => (b.offset(), b.size(), b.more),
            None => (0, bytes.len(), false),
        };
        self.record(
            now,
            peer,
            name,
            bytes.len(),
            offset,
            block_size,
            response.payload.len(),
            more,
            duplicate,
        );
        response
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        name: &str,
        size: usize,
        offset: usize,
        block_size: usize,
        len: usize,
        more: bool,
        duplicate: bool,
    ) {
        let found = self.active.iter().position(|t| t.is(peer, name));
        // Block 0 again after the transfer got further is a new download
        // (the device restarted it); the old one is kept as unfinished.
        let restarted = !duplicate
            && offset == 0
            && found.is_some_and(|i| self.active[i].stats.offset > block_size);
        let found = match found {
            Some(i) if restarted => {
                let old = self.active.swap_remove(i);
                self.push_finished(old.stats);
                None
            }
            found => found,
        };
        let at = match found {
            Some(i) => i,
            None => {
                if duplicate {
                    // A late copy of the request that finished a transfer.
                    if let Some(done) = self
                        .finished
                        .iter_mut()
                        .rev()
                        .find(|s| s.peer == peer && s.image == name)
                    {
                        done.duplicates += 1;
                    }
                    return;
                }
                if self.active.len() >= ACTIVE_KEPT {
                    if let Some(oldest) = self
                        .active
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, t)| t.started + t.stats.elapsed)
                        .map(|(i, _)| i)
                    {
                        self.active.swap_remove(oldest);
                    }
                }
                let id = self.next_transfer;
                self.next_transfer += 1;
                let stats = TransferStats::starting(id, peer, name, size, block_size, offset);
                tracing::debug!(%peer, image = name, offset, block_size, "firmware download started");
                self.active.push(Transfer {
                    stats,
                    started: now,
                    served: Vec::new(),
                });
                self.active.len() - 1
            }
        };
        let t = &mut self.active[at];
        let first = t.stats.blocks == 0;
        t.stats.elapsed = now.saturating_duration_since(t.started);
        t.stats.block_size = block_size;
        if duplicate {
            t.stats.duplicates += 1;
        } else if !t.serve(offset) {
            t.stats.repeated_blocks += 1;
        } else {
            t.stats.blocks += 1;
            t.stats.bytes += len as u64;
            t.stats.offset = t.stats.offset.max(offset + len);
        }
        if first && t.stats.blocks == 1 {
            self.events
                .push_back(ProgressEvent::Started(t.stats.clone()));
        }
        if !more && !duplicate {
            t.stats.complete = true;
            let stats = self.active.swap_remove(at).stats;
            tracing::debug!(%stats, "firmware download finished");
            self.events
                .push_back(ProgressEvent::Completed(stats.clone()));
            self.push_finished(stats);
        } else if !duplicate && t.stats.blocks.is_multiple_of(PROGRESS_EVERY_BLOCKS) {
            self.events
                .push_back(ProgressEvent::Progress(t.stats.clone()));
        }
    }
}

impl FileService {
    fn push_finished(&mut self, stats: TransferStats) {
        if self.finished.len() >= FINISHED_KEPT {
            self.finished.pop_front();
        }
        self.finished.push_back(stats);
    }
}

/// The CoAP file server task and what its owner holds of it.
#[derive(Debug)]
pub struct CoapFileServer {
    local_addr: SocketAddr,
    progress: broadcast::Sender<ProgressEvent>,
    transfers: Arc<Mutex<BTreeMap<u64, TransferStats>>>,
    task: ServeTask,
}

/// Where a [`CoapFileServer`] runs.
#[derive(Debug, Clone)]
pub enum Placement {
    /// A thread of its own (the default; the measured choice, issue 16):
    /// blocking calls on a plain UDP socket, which the kernel wakes in
    /// `recvfrom` as it wakes the do-nothing floor; a current-thread
    /// runtime for a transport that needs one (DTLS).
    OwnThread,
    /// A thread of its own with a current-thread runtime whatever the
    /// transport: epoll wakes it for each datagram (the benchmark's
    /// comparison for [`OwnThread`](Self::OwnThread)).
    OwnRuntime,
    /// A task of this runtime (a multi-thread one wakes a worker, maybe on
    /// another core, for each datagram).
    Runtime(tokio::runtime::Handle),
}

/// How many progress events a slow subscriber may fall behind by.
const PROGRESS_CHANNEL: usize = 1024;

impl CoapFileServer {
    /// Binds a UDP socket on `addr` (e.g. 127.0.0.1:0) and serves `store` on it.
    pub async fn bind(addr: SocketAddr, store: Arc<Store>) -> Result<Self, FirmwareError> {
        let socket =
            tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|source| FirmwareError::Bind {
                    what: "CoAP",
                    addr,
                    source,
                })?;
        CoapFileServer::serve(socket, store)
    }

    /// Serves `store` over `transport` until [`shutdown`](Self::shutdown) or
    /// drop: on a thread of its own ([`Placement::OwnThread`]) when the
    /// transport can move there, else as a task of the caller's runtime.
    pub fn serve<T: DatagramTransport>(
        transport: T,
        store: Arc<Store>,
    ) -> Result<Self, FirmwareError> {
        let placement = if T::MOVABLE {
            Placement::OwnThread
        } else {
            Placement::Runtime(tokio::runtime::Handle::current())
        };
        CoapFileServer::serve_on(transport, store, placement)
    }

    /// As [`serve`](Self::serve), on the runtime `placement` names (the
    /// benchmark compares them; docs/perf/firmware-datapath.md).
    pub fn serve_on<T: DatagramTransport>(
        transport: T,
        store: Arc<Store>,
        placement: Placement,
    ) -> Result<Self, FirmwareError> {
        let local_addr = transport
            .local_addr()
            .map_err(|source| FirmwareError::Bind {
                what: "CoAP",
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
        let bind_error = |source| FirmwareError::Bind {
            what: "CoAP",
            addr: local_addr,
            source,
        };
        let (progress, _) = broadcast::channel(PROGRESS_CHANNEL);
        let transfers: Transfers = Arc::new(Mutex::new(BTreeMap::new()));
        let task = match placement {
            Placement::OwnThread if T::BLOCKING => {
                let transport = transport.into_blocking().map_err(bind_error)?;
                transport.set_stop_poll(STOP_POLL).map_err(bind_error)?;
                let service = FileService::new(store);
                let progress = progress.clone();
                let transfers = Arc::clone(&transfers);
                ServeTask::spawn_blocking_thread("coap-files", move |stop| {
                    run_blocking(&transport, service, &progress, &transfers, stop)
                })
                .map_err(bind_error)?
            }
            Placement::OwnThread | Placement::OwnRuntime if !T::MOVABLE => {
                return Err(bind_error(std::io::Error::other(
                    "this transport cannot move to a thread of its own",
                )))
            }
            placement => {
                let progress = progress.clone();
                let transfers = Arc::clone(&transfers);
                let serve = move |stop| async move {
                    // On the runtime that runs the loop, so that its
                    // reactor, not the caller's, wakes it.
                    let transport = if T::MOVABLE {
                        match transport.reregister() {
                            Ok(t) => t,
                            Err(e) => {
                                tracing::error!(%local_addr, error = %e, "CoAP file server cannot register its socket");
                                return;
                            }
                        }
                    } else {
                        transport
                    };
                    run(
                        transport,
                        FileService::new(store),
                        progress,
                        transfers,
                        stop,
                    )
                    .await
                };
                match placement {
                    Placement::OwnThread | Placement::OwnRuntime => {
                        ServeTask::spawn_thread("coap-files", serve).map_err(bind_error)?
                    }
                    Placement::Runtime(handle) => ServeTask::spawn_on(&handle, serve),
                }
            }
        };
        tracing::info!(%local_addr, "CoAP firmware file server listening");
        Ok(CoapFileServer {
            local_addr,
            progress,
            transfers,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `coap://<addr>/fw/`; an image's URL is this plus its name.
    pub fn url_base(&self) -> String {
        format!("coap://{}/{PATH_PREFIX}/", self.local_addr)
    }

    /// The URL of image `name` (for /5/0/1 Package URI).
    pub fn url(&self, name: &str) -> String {
        format!("{}{name}", self.url_base())
    }

    /// Progress events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ProgressEvent> {
        self.progress.subscribe()
    }

    /// The latest figures of every transfer (updated at each progress event).
    pub fn transfers(&self) -> Vec<TransferStats> {
        self.transfers
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops the task and waits for it.
    pub async fn shutdown(mut self) {
        self.task.stop().await;
    }
}

/// How long the blocking loop sleeps in `recvfrom` before it looks for its
/// stop signal: the most a stop waits.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The transfers' latest figures, as [`CoapFileServer::transfers`] reads them.
type Transfers = Arc<Mutex<BTreeMap<u64, TransferStats>>>;

/// The serving loop over blocking calls (a thread of its own, see
/// [`DatagramTransport::into_blocking`]); ends when `stop` resolves or
/// its sender is dropped.
fn run_blocking(
    transport: &super::transport::BlockingTransport,
    mut service: FileService,
    progress: &broadcast::Sender<ProgressEvent>,
    transfers: &Transfers,
    mut stop: oneshot::Receiver<()>,
) {
    use oneshot::error::TryRecvError;
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let mut out = Vec::new();
    while matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
        let (len, peer) = match transport.recv_from(&mut buf) {
            Ok(x) => x,
            // The read timeout (a turn to look at `stop`), or an ICMP
            // port unreachable from an earlier send: one peer's matter.
            Err(e) => {
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    tracing::debug!(error = %e, "file server receive error");
                }
                continue;
            }
        };
        if answer(
            &mut service,
            peer,
            &buf[..len],
            &mut out,
            progress,
            transfers,
        ) {
            if let Err(e) = transport.send_to(&out, peer) {
                tracing::debug!(%peer, error = %e, "file server send error");
            }
        }
    }
    tracing::debug!("CoAP firmware file server stopped");
}

/// One datagram through the service: its answer, with the figures and
/// events published first (a client that has its last block sees the
/// transfer complete, whichever thread runs the loop).
fn answer(
    service: &mut FileService,
    peer: SocketAddr,
    datagram: &[u8],
    out: &mut Vec<u8>,
    progress: &broadcast::Sender<ProgressEvent>,
    transfers: &Transfers,
) -> bool {
    let reply = service.handle_datagram_into(Instant::now(), peer, datagram, out);
    while let Some(event) = service.poll_event() {
        let stats = match &event {
            ProgressEvent::Started(s)
            | ProgressEvent::Progress(s)
            | ProgressEvent::Completed(s) => Some(s.clone()),
            ProgressEvent::Refused { .. } => None,
        };
        if let Some(s) = stats {
            if let Ok(mut map) = transfers.lock() {
                map.insert(s.id, s);
                while map.len() > FINISHED_KEPT + ACTIVE_KEPT {
                    map.pop_first();
                }
            }
        }
        let _ = progress.send(event);
    }
    reply
}

async fn run<T: DatagramTransport>(
    transport: T,
    mut service: FileService,
    progress: broadcast::Sender<ProgressEvent>,
    transfers: Transfers,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let mut out = Vec::new();
    loop {
        let (len, peer) = tokio::select! {
            r = transport.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable from an earlier send surfaces here on
                    // some systems; it concerns one peer, not the server.
                    tracing::debug!(error = %e, "file server receive error");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if answer(
            &mut service,
            peer,
            &buf[..len],
            &mut out,
            &progress,
            &transfers,
        ) {
            if let Err(e) = transport.send_to(&out, peer).await {
                tracing::debug!(%peer, error = %e, "file server send error");
            }
        }
    }
    tracing::debug!("CoAP firmware file server stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::generate::{generate_fixtures, BENCH_IMAGE};

    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        generate_fixtures(dir.path()).unwrap();
        let store = Arc::new(Store::load(dir.path()).unwrap());
        (dir, store)
    }

    fn get(
        message_type: MessageType,
        id: u16,
        path: &[&str],
        block: Option<(u32, u8)>,
        size2: bool,
    ) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_type(message_type);
        p.header.code = MessageClass::Request(RequestType::Get);
        p.header.message_id = id;
        p.set_token(vec![0xfe, id as u8, 3]);
        for s in path {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        if let Some((num, szx)) = block {
            BlockOption::new(num, false, szx)
                .unwrap()
                .set_on(&mut p, BlockKind::Block2);
        }
        if size2 {
            p.add_option(CoapOption::Size2, vec![]);
        }
        wire::encode(&p)
    }

    #[test]
    fn the_fast_path_answers_byte_for_byte_as_the_general_path_and_counts_alike() {
        let (_dir, store) = store();
        let len = store.get(BENCH_IMAGE).unwrap().len();
        let last_1024 = (len.div_ceil(1024) - 1) as u32;
        let mut fast = FileService::new(Arc::clone(&store));
        let mut general = FileService::new(Arc::clone(&store));
        let peer: SocketAddr = "127.0.0.1:5683".parse().unwrap();
        let now = Instant::now();
        let path = ["fw", BENCH_IMAGE];
        let requests = [
            get(MessageType::Confirmable, 1, &path, Some((0, 6)), false),
            get(MessageType::Confirmable, 2, &path, Some((1, 6)), false),
            // A duplicate of the one before (same message id).
            get(MessageType::Confirmable, 2, &path, Some((1, 6)), false),
            get(MessageType::NonConfirmable, 3, &path, Some((4, 4)), false),
            get(MessageType::Confirmable, 4, &path, Some((5, 0)), false),
            get(
                MessageType::Confirmable,
                5,
                &path,
                Some((last_1024, 6)),
                false,
            ),
        ];
        for (i, request) in requests.iter().enumerate() {
            let mut a = Vec::new();
            fast.fast_block2(now, peer, request, &mut a)
                .unwrap_or_else(|| panic!("request {i} took the general path"));
            let b = general.handle_general(now, peer, request).unwrap();
            assert_eq!(a, b, "request {i}");
        }
        let strip = |s: Vec<TransferStats>| {
            s.into_iter()
                .map(|t| {
                    (
                        t.blocks,
                        t.bytes,
                        t.duplicates,
                        t.repeated_blocks,
                        t.complete,
                        t.offset,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(fast.transfers()), strip(general.transfers()));
        let events = |svc: &mut FileService| std::iter::from_fn(|| svc.poll_event()).count();
        assert_eq!(events(&mut fast), events(&mut general));
    }

    #[test]
    fn requests_off_the_common_case_take_the_general_path() {
        let (_dir, store) = store();
        let mut svc = FileService::new(store);
        let peer: SocketAddr = "127.0.0.1:5683".parse().unwrap();
        let now = Instant::now();
        let con = MessageType::Confirmable;
        for (what, request) in [
            ("no Block2", get(con, 1, &["fw", BENCH_IMAGE], None, false)),
            (
                "Size2 asked",
                get(con, 2, &["fw", BENCH_IMAGE], Some((0, 6)), true),
            ),
            (
                "unknown image",
                get(con, 3, &["fw", "nope.bin"], Some((0, 6)), false),
            ),
            (
                "past the end",
                get(con, 4, &["fw", BENCH_IMAGE], Some((100_000, 6)), false),
            ),
            (
                "wrong prefix",
                get(con, 5, &["xx", BENCH_IMAGE], Some((0, 6)), false),
            ),
        ] {
            assert!(
                svc.fast_block2(now, peer, &request, &mut Vec::new())
                    .is_none(),
                "{what}"
            );
            assert!(svc.handle_datagram(now, peer, &request).is_some(), "{what}");
        }
    }
}
