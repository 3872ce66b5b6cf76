//! The link as a real UDP relay on the harness's side: the device is
//! given the relay's address instead of the server's, and every datagram
//! crosses [`LinkEmulator`] on its way. One upstream socket per device-side
//! peer, so that the server still sees one peer per device address (a
//! device's new source port after a reboot is a new peer there too).
//!
//! Threads, not tasks: the rig crate has no runtime, and a relay must keep
//! its timing while the runner's runtime is busy. Every loop wakes at least
//! every [`POLL`] to notice [`Relay`] being dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::emulator::{Fate, LinkEmulator};
use super::params::{Direction, LinkParams};
use super::record::{fnv1a, LinkCounts, RecordEntry, MAX_RECORD};

/// How often a relay's threads look up from a socket or the schedule.
const POLL: Duration = Duration::from_millis(50);

/// Device-side peers one relay serves at once; each costs a socket and a
/// thread. A device opens a new socket at every boot, so over a run the
/// relay sees many: past this many, the one quiet the longest is closed.
pub const MAX_PEERS: usize = 16;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// A running relay in front of one server.
pub struct Relay {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Peer {
    /// Its number in the record (`peer3`): counted from 0, never reused.
    id: usize,
    device: SocketAddr,
    upstream: Arc<UdpSocket>,
    /// When a datagram last came from the device.
    last_seen: Instant,
    /// Cleared to make its reader thread end (the peer was closed).
    open: Arc<AtomicBool>,
}

/// A datagram waiting for its delivery time.
struct Pending {
    at: Instant,
    seq: u64,
    /// `Some(socket)`: to the server from that peer's socket; `None`: to `to` from the front socket.
    via_peer: Option<Arc<UdpSocket>>,
    to: SocketAddr,
    bytes: Arc<[u8]>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Shared {
    label: String,
    upstream: SocketAddr,
    front: UdpSocket,
    started: Instant,
    stop: AtomicBool,
    emulator: Mutex<LinkEmulator>,
    record: Mutex<Vec<RecordEntry>>,
    counts: Mutex<[LinkCounts; 2]>,
    peers: Mutex<(Vec<Peer>, usize)>,
    peer_threads: Mutex<Vec<JoinHandle<()>>>,
    schedule: Mutex<(BinaryHeap<Reverse<Pending>>, u64)>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    /// Starts a relay on `bind_ip` (an ephemeral port) in front of
    /// `upstream`. `label` names it in the record (`lwm2m`, `bootstrap`,
    /// `firmware-coap`); `stream` keeps its draws apart from other relays'
    /// under the same `seed`.
    pub fn start(
        label: &str,
        upstream: SocketAddr,
        bind_ip: IpAddr,
        params: &LinkParams,
        seed: u64,
        stream: u64,
    ) -> io::Result<Relay> {
        let front = UdpSocket::bind(SocketAddr::new(bind_ip, 0))?;
        front.set_read_timeout(Some(POLL))?;
        let shared = Arc::new(Shared {
            label: label.to_string(),
            upstream,
            front,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            emulator: Mutex::new(LinkEmulator::new(params, seed, stream)),
            record: Mutex::new(Vec::new()),
            counts: Mutex::new([LinkCounts::default(); 2]),
            peers: Mutex::new((Vec::new(), 0)),
            peer_threads: Mutex::new(Vec::new()),
            schedule: Mutex::new((BinaryHeap::new(), 0)),
            wake: Condvar::new(),
        });
        let front_loop = {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("link-{label}-front"))
                .spawn(move || s.front_loop())?
        };
        let scheduler = {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("link-{label}-clock"))
                .spawn(move || s.deliver_loop())?
        };
        tracing::info!(relay = label, front = %shared.front.local_addr()?, %upstream, seed, link = %params, "link relay started");
        Ok(Relay {
            shared,
            threads: vec![front_loop, scheduler],
        })
    }

    /// The address the device is given instead of the server's.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared
            .front
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// The server this relay stands in front of.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The instant record times count from.
    pub fn started(&self) -> Instant {
        self.shared.started
    }

    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// How many datagrams are recorded: a mark for [`Relay::record_since`].
    pub fn mark(&self) -> usize {
        lock(&self.shared.record).len()
    }

    /// The datagrams recorded since `mark`, in order of arrival.
    pub fn record_since(&self, mark: usize) -> Vec<RecordEntry> {
        let r = lock(&self.shared.record);
        r.get(mark.min(r.len())..).unwrap_or_default().to_vec()
    }

    /// What the link did so far, per direction (`[up, down]`), counted
    /// beyond [`MAX_RECORD`] too.
    pub fn counts(&self) -> [LinkCounts; 2] {
        *lock(&self.shared.counts)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let peers: Vec<JoinHandle<()>> = lock(&self.shared.peer_threads).drain(..).collect();
        for t in peers {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Datagrams from the device: each goes up through its peer's socket.
    fn front_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stopped() {
            let (n, from) = match self.front.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // ICMP port unreachable from an earlier send shows up here on Linux.
                    tracing::debug!(relay = %self.label, error = %e, "link front socket");
                    continue;
                }
            };
            let Some((peer, socket)) = self.peer_for(from) else {
                continue;
            };
            self.admit(Direction::Up, peer, from, Some(socket), &buf[..n]);
        }
    }

    /// `device`'s peer number and upstream socket, opened (and its reader
    /// started) on first sight.
    fn peer_for(self: &Arc<Self>, device: SocketAddr) -> Option<(usize, Arc<UdpSocket>)> {
        let mut guard = lock(&self.peers);
        let (peers, next_id) = &mut *guard;
        if let Some(p) = peers.iter_mut().find(|p| p.device == device) {
            p.last_seen = Instant::now();
            return Some((p.id, p.upstream.clone()));
        }
        if peers.len() >= MAX_PEERS {
            // The quietest peer is a device socket that a reboot abandoned.
            let (quietest, _) = peers.iter().enumerate().min_by_key(|(_, p)| p.last_seen)?;
            let gone = peers.swap_remove(quietest);
            gone.open.store(false, Ordering::SeqCst);
            tracing::debug!(relay = %self.label, device = %gone.device, "link relay closed its quietest peer");
            lock(&self.peer_threads).retain(|t| !t.is_finished());
        }
        let socket = UdpSocket::bind(SocketAddr::new(self.upstream.ip(), 0))
            .and_then(|s| s.connect(self.upstream).map(|_| s))
            .and_then(|s| s.set_read_timeout(Some(POLL)).map(|_| s));
        let socket = match socket {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(relay = %self.label, %device, error = %e, "link relay cannot open an upstream socket");
                return None;
            }
        };
        let id = *next_id;
        *next_id += 1;
        let open = Arc::new(AtomicBool::new(true));
        peers.push(Peer {
            id,
            device,
            upstream: socket.clone(),
            last_seen: Instant::now(),
            open: open.clone(),
        });
        let s = self.clone();
        let reader = socket.clone();
        match std::thread::Builder::new()
            .name(format!("link-{}-peer{id}", self.label))
            .spawn(move || s.upstream_loop(id, device, reader, open))
        {
            Ok(t) => lock(&self.peer_threads).push(t),
            Err(e) => {
                tracing::warn!(relay = %self.label, error = %e, "link relay cannot start a peer reader")
            }
        }
        Some((id, socket))
    }

    /// Datagrams from the server to one peer: each goes down to its device.
    fn upstream_loop(
        self: Arc<Self>,
        peer: usize,
        device: SocketAddr,
        socket: Arc<UdpSocket>,
        open: Arc<AtomicBool>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stopped() && open.load(Ordering::SeqCst) {
            match socket.recv(&mut buf) {
                Ok(n) => self.admit(Direction::Down, peer, device, None, &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => tracing::debug!(relay = %self.label, error = %e, "link upstream socket"),
            }
        }
    }

    /// Asks the emulator what becomes of a datagram, records it and
    /// schedules its deliveries.
    fn admit(
        &self,
        d: Direction,
        peer: usize,
        device: SocketAddr,
        up_socket: Option<Arc<UdpSocket>>,
        bytes: &[u8],
    ) {
        let now = Instant::now();
        let at = now - self.started;
        let fate = lock(&self.emulator).admit(d, at, bytes.len());
        lock(&self.counts)[d as usize].add(&fate);
        {
            let mut r = lock(&self.record);
            if r.len() < MAX_RECORD {
                r.push(RecordEntry {
                    at,
                    direction: d,
                    peer,
                    len: bytes.len(),
                    head: bytes[..bytes.len().min(4)].to_vec(),
                    digest: fnv1a(bytes),
                    fate: fate.clone(),
                });
            }
        }
        let Fate::Deliver(times) = fate else {
            return;
        };
        let data: Arc<[u8]> = Arc::from(bytes);
        let mut sched = lock(&self.schedule);
        for t in times {
            sched.1 += 1;
            let seq = sched.1;
            let (via_peer, to) = match d {
                Direction::Up => (up_socket.clone(), self.upstream),
                Direction::Down => (None, device),
            };
            sched.0.push(Reverse(Pending {
                at: self.started + t,
                seq,
                via_peer,
                to,
                bytes: data.clone(),
            }));
        }
        drop(sched);
        self.wake.notify_all();
    }

    /// Sends each scheduled datagram when its time comes.
    fn deliver_loop(self: Arc<Self>) {
        let mut sched = lock(&self.schedule);
        while !self.stopped() {
            let now = Instant::now();
            let next = sched.0.peek().map(|Reverse(p)| p.at);
            match next {
                Some(at) if at <= now => {
                    let Some(Reverse(p)) = sched.0.pop() else {
                        continue;
                    };
                    drop(sched);
                    self.send(&p);
                    sched = lock(&self.schedule);
                }
                Some(at) => {
                    let wait = (at - now).min(POLL);
                    sched = self
                        .wake
                        .wait_timeout(sched, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                None => {
                    sched = self
                        .wake
                        .wait_timeout(sched, POLL)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
        }
    }

    fn send(&self, p: &Pending) {
        let result = match &p.via_peer {
            Some(socket) => socket.send(&p.bytes),
            None => self.front.send_to(&p.bytes, p.to),
        };
        if let Err(e) = result {
            tracing::debug!(relay = %self.label, to = %p.to, error = %e, "link relay could not deliver");
        }
    }
}
