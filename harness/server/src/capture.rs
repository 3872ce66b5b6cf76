//! What the case captures hold: every datagram a server of ours put on or
//! took off the wire, with its real source, destination and time, and — for
//! DTLS — the CoAP each record carried, as the server decrypted it.
//!
//! The message log is the server's own view (one peer, a decoded summary);
//! a capture is the network's view, shared by several servers: the LwM2M
//! server, its firmware file servers (which record into the LwM2M server's
//! [`Capture`], so a case's firmware pull lands beside its registration) and
//! the bootstrap server. [`crate::write_pcap`] turns it into the files
//! Wireshark opens.
//!
//! CoAP is recorded after [`Redactor`](lwm2m::bootstrap::Redactor) (plain or
//! decrypted, the Security object's secrets never reach a capture); DTLS
//! records are recorded as they went, which is safe: their payload is
//! ciphertext, and the handshake carries the PSK identity, never the key.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::firmware::DatagramTransport;

/// What a captured datagram holds, which decides the file it goes to and
/// the dissector Wireshark gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carried {
    /// CoAP over plain UDP (`coap://`): as it went, but for the Security
    /// object's secrets, which are blanked.
    Coap,
    /// A DTLS datagram (`coaps://`) as it went: handshake, alerts, records.
    Dtls,
    /// The CoAP a DTLS record carried, decrypted; never on the wire as such.
    DecryptedCoap,
}

/// A DTLS record header (RFC 6347 §4.1): a content type of 20 to 25 and a
/// DTLS version (0xfeff for 1.0, 0xfefd for 1.2); a CoAP message always
/// begins with version 1 in its top bits (0x40 to 0x7f), so none is both.
fn is_dtls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [20..=25, 0xfe, 0xfd | 0xff, ..])
}

/// One datagram in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedDatagram {
    /// Position in its capture (0-based, never reused).
    pub index: usize,
    /// When the server sent or received it, UTC.
    pub time: DateTime<Utc>,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub carried: Carried,
    pub bytes: Vec<u8>,
}

/// `bytes` in the buffer of an entry a full ring just dropped, when that
/// buffer is not much larger: a full capture or log then copies each
/// datagram without a malloc and a free (about a seventh of the server
/// thread's time at 100,000 meters went to the allocator,
/// docs/perf/figures.md),
/// and a buffer that once held a 1 KiB block does not stay behind a 20-byte
/// ACK.
pub(crate) fn refill(dropped: Option<Vec<u8>>, bytes: &[u8]) -> Vec<u8> {
    match dropped {
        Some(mut buffer) if buffer.capacity() <= bytes.len().max(64) * 2 => {
            buffer.clear();
            buffer.extend_from_slice(bytes);
            buffer
        }
        _ => bytes.to_vec(),
    }
}

/// A bounded capture: when full, the oldest datagrams go, but indices keep
/// counting, so a reader's `since(mark)` stays meaningful (as the message log's).
/// Indices rise along `held` but may have gaps: a datagram recorded on its
/// way out and then not sent is taken back ([`Capture::retract`]).
#[derive(Debug)]
struct Datagrams {
    held: VecDeque<CapturedDatagram>,
    /// The index the next datagram gets.
    next: usize,
    capacity: usize,
}

/// A shared handle to one capture; clones record into and read the same one.
#[derive(Debug, Clone)]
pub struct Capture(Arc<Mutex<Datagrams>>);

impl Capture {
    /// A capture holding at most `capacity` datagrams (at least one).
    pub fn new(capacity: usize) -> Self {
        Capture(Arc::new(Mutex::new(Datagrams {
            held: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Datagrams> {
        // Append-only data: a push cut short by a panic elsewhere is harmless.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a datagram, stamped now; returns its index.
    ///
    /// A sender records before it sends: the servers run on several threads
    /// (a file server on its own), and a datagram recorded after its send
    /// could land behind the device's answer to it, recorded meanwhile by
    /// another server, so the capture would show an effect before its cause.
    pub fn record(
        &self,
        carried: Carried,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) -> usize {
        // A device that speaks DTLS to a plain CoAP socket (a coaps:// URI
        // for a coap:// server, a session left from an earlier case) sends
        // records there: they went on the wire as DTLS, not as CoAP.
        let carried = if carried == Carried::Coap && is_dtls_record(bytes) {
            Carried::Dtls
        } else {
            carried
        };
        let mut d = self.lock();
        let dropped = if d.held.len() == d.capacity {
            d.held.pop_front().map(|g| g.bytes)
        } else {
            None
        };
        let index = d.next;
        d.next += 1;
        d.held.push_back(CapturedDatagram {
            index,
            time: Utc::now(),
            from,
            to,
            carried,
            bytes: refill(dropped, bytes),
        });
        index
    }

    /// Takes back the datagram recorded as `index` (one whose send failed:
    /// the capture shows what went on the wire). Its index is not reused.
    pub fn retract(&self, index: usize) {
        let mut d = self.lock();
        let at = d.held.partition_point(|g| g.index < index);
        if d.held.get(at).is_some_and(|g| g.index == index) {
            d.held.remove(at);
        }
    }

    /// The index the next datagram will get: a mark for [`since`](Self::since).
    pub fn len(&self) -> usize {
        self.lock().next
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The datagrams with `index >= from` that are still held, oldest first.
    pub fn since(&self, from: usize) -> Vec<CapturedDatagram> {
        let d = self.lock();
        let skip = d.held.partition_point(|g| g.index < from);
        d.held.iter().skip(skip).cloned().collect()
    }
}

/// A [`DatagramTransport`] that records what passes through it: a recording
/// wrapper, as smoltcp's `PcapWriter`, so the transport (plain UDP, or the
/// plaintext side of DTLS) knows nothing of captures.
#[derive(Debug)]
pub struct Recorded<T> {
    inner: T,
    capture: Capture,
    carried: Carried,
    local: SocketAddr,
}

impl<T: DatagramTransport> Recorded<T> {
    /// Records every datagram through `inner` as `carried` (CoAP for a plain
    /// socket, decrypted CoAP for the application side of a DTLS transport).
    pub fn new(inner: T, capture: Capture, carried: Carried) -> io::Result<Self> {
        let local = inner.local_addr()?;
        Ok(Recorded {
            inner,
            capture,
            carried,
            local,
        })
    }
}

impl<T: DatagramTransport> DatagramTransport for Recorded<T> {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, peer) = self.inner.recv_from(buf).await?;
        self.capture
            .record(self.carried, peer, self.local, &buf[..n]);
        Ok((n, peer))
    }

    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize> {
        let index = self.capture.record(self.carried, self.local, peer, buf);
        let sent = self.inner.send_to(buf, peer).await;
        if sent.is_err() {
            self.capture.retract(index);
        }
        sent
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// A recording moves with its transport: the capture is shared, so the
    /// file server behind it can run on a thread of its own.
    const MOVABLE: bool = T::MOVABLE;

    fn reregister(self) -> io::Result<Self> {
        Ok(Recorded {
            inner: self.inner.reregister()?,
            ..self
        })
    }

    const BLOCKING: bool = T::BLOCKING;

    fn into_blocking(self) -> io::Result<crate::firmware::transport::BlockingTransport> {
        let recorder = crate::firmware::transport::Recorder {
            capture: self.capture,
            carried: self.carried,
            local: self.local,
        };
        Ok(self.inner.into_blocking()?.record_into(recorder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn dtls_records_at_a_plain_coap_socket_are_recorded_as_dtls() {
        let capture = Capture::new(8);
        // A DTLS 1.2 ClientHello record header, then a CoAP GET (ver 1, CON).
        let hello = [0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let get = [0x40, 0x01, 0x12, 0x34];
        capture.record(Carried::Coap, addr(1), addr(2), &hello);
        capture.record(Carried::Coap, addr(1), addr(2), &get);
        let held: Vec<Carried> = capture.since(0).iter().map(|d| d.carried).collect();
        assert_eq!(held, [Carried::Dtls, Carried::Coap]);
    }

    #[test]
    fn indices_keep_counting_when_the_oldest_datagrams_go() {
        let capture = Capture::new(2);
        for i in 0..5u8 {
            capture.record(Carried::Coap, addr(1), addr(2), &[i]);
        }
        assert_eq!(capture.len(), 5);
        let held = capture.since(0);
        assert_eq!(held.iter().map(|d| d.index).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(held[1].bytes, [4]);
        assert_eq!(capture.since(4).len(), 1);
        assert!(capture.since(5).is_empty());
    }

    #[test]
    fn a_retracted_datagram_leaves_a_gap_that_since_reads_across() {
        let capture = Capture::new(8);
        for i in 0..4u8 {
            capture.record(Carried::Coap, addr(1), addr(2), &[i]);
        }
        capture.retract(1);
        capture.retract(1); // twice, or an index long gone: nothing
        capture.retract(99);
        assert_eq!(capture.len(), 4, "an index is never reused");
        let indices =
            |from| -> Vec<usize> { capture.since(from).iter().map(|d| d.index).collect() };
        assert_eq!(indices(0), [0, 2, 3]);
        assert_eq!(indices(1), [2, 3]);
        assert_eq!(indices(2), [2, 3]);
        assert_eq!(capture.record(Carried::Coap, addr(1), addr(2), &[4]), 4);
    }

    #[tokio::test]
    async fn a_send_that_fails_is_not_in_the_capture() {
        let capture = Capture::new(8);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let recorded = Recorded::new(socket, capture.clone(), Carried::Coap).unwrap();
        // An IPv6 destination from an IPv4 socket: the kernel refuses the send.
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9));
        assert!(recorded.send_to(b"lost", v6).await.is_err());
        assert!(capture.since(0).is_empty());
        assert_eq!(capture.len(), 1);
    }

    /// A transport that, as it sends, notes how many datagrams the capture
    /// held: what a server on another thread would see recorded by then.
    struct Witness {
        capture: Capture,
        held_at_send: std::sync::Mutex<Vec<usize>>,
    }

    impl DatagramTransport for Witness {
        async fn recv_from(&self, _: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            std::future::pending().await
        }

        async fn send_to(&self, buf: &[u8], _: SocketAddr) -> io::Result<usize> {
            let held = self.capture.since(0).len();
            self.held_at_send.lock().unwrap().push(held);
            Ok(buf.len())
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(addr(1))
        }
    }

    #[tokio::test]
    async fn a_datagram_is_in_the_capture_before_it_goes_on_the_wire() {
        let capture = Capture::new(8);
        let witness = Witness {
            capture: capture.clone(),
            held_at_send: Default::default(),
        };
        let recorded = Recorded::new(witness, capture.clone(), Carried::Coap).unwrap();
        recorded.send_to(b"one", addr(2)).await.unwrap();
        recorded.send_to(b"two", addr(2)).await.unwrap();
        assert_eq!(*recorded.inner.held_at_send.lock().unwrap(), [1, 2]);
    }

    #[test]
    fn a_recording_of_a_movable_transport_moves_with_it() {
        // What lets a case's file servers, which record, run on a thread of
        // their own (`CoapFileServer::serve`).
        const { assert!(<Recorded<tokio::net::UdpSocket> as DatagramTransport>::MOVABLE) };
    }

    #[tokio::test]
    async fn a_recorded_socket_captures_both_ways_with_real_addresses() {
        let capture = Capture::new(10);
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let server = Recorded::new(server, capture.clone(), Carried::Coap).unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client_addr = client.local_addr().unwrap();
        client.send_to(b"ping", server_addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, peer) = server.recv_from(&mut buf).await.unwrap();
        server.send_to(b"pong", peer).await.unwrap();
        assert_eq!((n, peer), (4, client_addr));
        let got = capture.since(0);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].from, got[0].to), (client_addr, server_addr));
        assert_eq!(got[0].bytes, b"ping");
        assert_eq!((got[1].from, got[1].to), (server_addr, client_addr));
        assert_eq!(got[1].bytes, b"pong");
        assert!(got[0].time <= got[1].time);
    }
}
