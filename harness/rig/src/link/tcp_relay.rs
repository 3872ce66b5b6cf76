//! The link for the TCP the device pulls HTTP firmware over: a relay in
//! front of the HTTP file server that holds each direction's bytes for the
//! link's one-way `delay` and clocks them out at its `rate`, so that an
//! HTTP pull over `nb-iot` takes the time it would on NB-IoT instead of
//! crossing the loopback at once.
//!
//! What of a link profile applies to a byte stream, and why:
//!
//! - `delay` and `rate` (with the bottleneck's `queue`): applied, per
//!   direction, to every chunk the relay reads. A chunk leaves when the
//!   bytes ahead of it are clocked out at `rate`, plus `delay`. When more
//!   than `queue` bytes wait, the relay stops reading, so the sender's TCP
//!   window fills and it slows down, as behind a real bottleneck.
//! - `loss`, `duplicate`, `reorder`, `jitter`: not applied. Below TCP they
//!   cost retransmissions and throughput, which TCP recovers by itself; the
//!   relay sits above TCP on both sides (the loopback does not lose), so
//!   dropping or swapping bytes here would corrupt the stream, not emulate
//!   the radio. A lossy radio's effect on TCP is TCP's business, and a
//!   case that needs it measured runs on a real link.
//! - `mtu`: not applied: TCP segments to the path MTU itself.
//!
//! Threads, as in [`super::relay`]: per connection, one reader and one
//! writer per direction; every loop wakes at least every [`POLL`] to see
//! the relay dropped.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::params::{Direction, DirectionParams, LinkParams};

/// How often a relay's threads look up from a socket or a wait.
const POLL: Duration = Duration::from_millis(50);

/// The most a reader takes from the socket at once: about one TCP segment
/// on a 1500-byte MTU, so that the rate clocks segments, not whole files.
pub const CHUNK: usize = 1460;

/// Connections one relay serves at once: a firmware pull is one or a few
/// (Range requests after a break); past this many, a new one is refused.
pub const MAX_CONNECTIONS: usize = 16;

/// When each chunk of one direction of a stream leaves the relay: behind
/// the chunks before it at the link's rate, then the one-way delay. Pure,
/// so it is tested without sockets or clocks.
#[derive(Debug, Clone)]
pub struct StreamShaper {
    delay: Duration,
    rate: Option<super::params::Rate>,
    /// When the bottleneck has clocked out what it was given (time since
    /// the stream began).
    busy_until: Duration,
}

impl StreamShaper {
    pub fn new(p: &DirectionParams) -> StreamShaper {
        StreamShaper {
            delay: p.delay,
            rate: p.rate,
            busy_until: Duration::ZERO,
        }
    }

    /// When `len` bytes read at `now` are written out on the other side.
    pub fn admit(&mut self, now: Duration, len: usize) -> Duration {
        let departs = match self.rate {
            Some(rate) => {
                let done = self.busy_until.max(now) + rate.serialisation(len);
                self.busy_until = done;
                done
            }
            None => now,
        };
        departs + self.delay
    }
}

/// Bytes and connections a TCP relay carried, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub connections: u64,
    /// Device to server.
    pub up_bytes: u64,
    /// Server to device.
    pub down_bytes: u64,
}

struct Shared {
    label: String,
    upstream: SocketAddr,
    params: LinkParams,
    stop: AtomicBool,
    connections: AtomicU64,
    open: AtomicU64,
    bytes: [AtomicU64; 2],
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running TCP relay in front of one server (the HTTP file server).
pub struct TcpRelay {
    shared: Arc<Shared>,
    local: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl TcpRelay {
    /// Listens on `bind_ip` (an ephemeral port) in front of `upstream`;
    /// `label` names it in the logs (`firmware-http`).
    pub fn start(
        label: &str,
        upstream: SocketAddr,
        bind_ip: IpAddr,
        params: &LinkParams,
    ) -> io::Result<TcpRelay> {
        let listener = TcpListener::bind(SocketAddr::new(bind_ip, 0))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            label: label.to_string(),
            upstream,
            params: params.clone(),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            threads: Mutex::new(Vec::new()),
        });
        let accept = {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("link-{label}-accept"))
                .spawn(move || s.accept_loop(listener))?
        };
        tracing::info!(relay = label, front = %local, %upstream, link = %params, "link TCP relay started (delay and rate apply; loss is TCP's)");
        Ok(TcpRelay {
            shared,
            local,
            accept: Some(accept),
        })
    }

    /// Where the device connects.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    pub fn label(&self) -> &str {
        &self.shared.label
    }

    pub fn counts(&self) -> StreamCounts {
        StreamCounts {
            connections: self.shared.connections.load(Ordering::Relaxed),
            up_bytes: self.shared.bytes[0].load(Ordering::Relaxed),
            down_bytes: self.shared.bytes[1].load(Ordering::Relaxed),
        }
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        while !self.stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((device, peer)) => {
                    // Two directions open per connection.
                    if self.open.load(Ordering::Relaxed) >= 2 * MAX_CONNECTIONS as u64 {
                        tracing::warn!(relay = %self.label, %peer, "link TCP relay full: connection refused");
                        continue;
                    }
                    if let Err(e) = self.clone().connect(device) {
                        tracing::warn!(relay = %self.label, %peer, error = %e, "link TCP relay could not reach the server");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL / 5),
                Err(e) => {
                    tracing::warn!(relay = %self.label, error = %e, "link TCP relay accept failed");
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    /// Connects `device` to the server and starts the two directions.
    fn connect(self: Arc<Self>, device: TcpStream) -> io::Result<()> {
        device.set_nonblocking(false)?;
        let server = TcpStream::connect_timeout(&self.upstream, Duration::from_secs(5))?;
        for s in [&device, &server] {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(POLL))?;
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(2, Ordering::Relaxed);
        let started = Instant::now();
        let mut threads = Vec::new();
        for (d, from, to) in [
            (Direction::Up, device.try_clone()?, server.try_clone()?),
            (Direction::Down, server, device),
        ] {
            // Backpressure: at most `queue` bytes wait in the relay.
            let depth = (self.params.direction(d).queue / CHUNK).max(2);
            let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(depth);
            let label = format!("link-{}-{}", self.label, d.as_str());
            let s = self.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{label}-read"))
                    .spawn(move || s.read_side(from, tx))?,
            );
            let s = self.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{label}-write"))
                    .spawn(move || s.write_side(d, started, to, rx))?,
            );
        }
        let mut all = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|t| !t.is_finished());
        all.extend(threads);
        Ok(())
    }

    /// Reads chunks from `from` as they come, stamped with when they came.
    fn read_side(self: Arc<Self>, mut from: TcpStream, tx: SyncSender<(Instant, Vec<u8>)>) {
        let mut buf = vec![0u8; CHUNK];
        while !self.stop.load(Ordering::Relaxed) {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Dropping `tx` tells the writer the stream ended.
    }

    /// Writes each chunk to `to` when the link would have delivered it,
    /// then passes the end of the stream on (half-close).
    fn write_side(
        self: Arc<Self>,
        d: Direction,
        started: Instant,
        mut to: TcpStream,
        rx: Receiver<(Instant, Vec<u8>)>,
    ) {
        let mut shaper = StreamShaper::new(self.params.direction(d));
        let counter = &self.bytes[match d {
            Direction::Up => 0,
            Direction::Down => 1,
        }];
        'stream: loop {
            let (came, bytes) = match rx.recv_timeout(POLL) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::Relaxed) => continue,
                Err(_) => break,
            };
            let due = started + shaper.admit(came.saturating_duration_since(started), bytes.len());
            // Bounded: wakes every POLL until due, or the relay stops.
            loop {
                if self.stop.load(Ordering::Relaxed) {
                    break 'stream;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(POLL));
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown(Shutdown::Write);
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::params::{LinkProfile, Rate};
    use super::*;

    fn params(delay_ms: u64, bps: Option<u64>) -> DirectionParams {
        DirectionParams {
            delay: Duration::from_millis(delay_ms),
            rate: bps.map(Rate::bits_per_second),
            ..DirectionParams::perfect()
        }
    }

    /// 1460 bytes at 26 kbit/s (the NB-IoT uplink figure) take 449.23 ms to
    /// clock out; a chunk read while the one before is still on the air
    /// waits for it; each then pays the one-way delay.
    #[test]
    fn chunks_leave_behind_each_other_at_the_rate_then_the_delay() {
        let mut s = StreamShaper::new(&params(420, Some(26_000)));
        let one = Rate::bits_per_second(26_000).serialisation(CHUNK);
        assert_eq!(one, Duration::from_nanos(449_230_769));
        let delay = Duration::from_millis(420);
        assert_eq!(s.admit(Duration::ZERO, CHUNK), one + delay);
        // Read 10 ms later, it waits for the first to be clocked out.
        assert_eq!(s.admit(Duration::from_millis(10), CHUNK), one * 2 + delay);
        // Read after the link went idle, it starts at once.
        let later = Duration::from_secs(5);
        assert_eq!(s.admit(later, CHUNK), later + one + delay);
    }

    #[test]
    fn without_a_rate_a_chunk_pays_the_delay_only() {
        let mut s = StreamShaper::new(&params(15, None));
        let at = Duration::from_millis(3);
        assert_eq!(s.admit(at, 64 * 1024), at + Duration::from_millis(15));
    }

    /// Bytes cross the relay whole and in order both ways, a half-close
    /// is passed on, and the relay counts them.
    #[test]
    fn a_stream_crosses_the_relay_whole_both_ways() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let served = body.clone();
        let server_thread = std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut request = Vec::new();
            c.read_to_end(&mut request).unwrap();
            c.write_all(&served).unwrap();
            request
        });
        let relay = TcpRelay::start(
            "firmware-http",
            upstream,
            "127.0.0.1".parse().unwrap(),
            &LinkProfile::LteM.params(),
        )
        .unwrap();
        let mut device = TcpStream::connect(relay.local_addr()).unwrap();
        device
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        device.write_all(b"GET /fw HTTP/1.1\r\n\r\n").unwrap();
        device.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        device.read_to_end(&mut got).unwrap();
        assert_eq!(server_thread.join().unwrap(), b"GET /fw HTTP/1.1\r\n\r\n");
        assert_eq!(got, body);
        assert_eq!(
            relay.counts(),
            StreamCounts {
                connections: 1,
                up_bytes: 20,
                down_bytes: 20_000
            }
        );
    }
}
