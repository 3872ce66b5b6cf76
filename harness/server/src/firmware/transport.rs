//! The datagram transport the CoAP file server runs over. Plain UDP today;
//! CoAPS (DTLS, RFC 7252 §9) slots in as another implementation without
//! touching the server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// A connectionless, message-preserving transport.
pub trait DatagramTransport: Send + Sync + 'static {
    /// Waits for the next datagram; returns its length and sender.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;

    /// Sends one datagram to `peer`.
    fn send_to(
        &self,
        buf: &[u8],
        peer: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// The address clients reach this transport on.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Whether [`reregister`](Self::reregister) moves the transport's socket
    /// to another runtime. A transport that cannot be moved is served on the
    /// runtime it was made on.
    const MOVABLE: bool = false;

    /// Registers the transport's socket with the runtime this is called on
    /// (a tokio socket belongs to the runtime it was made on): how the file
    /// server takes a transport made on the caller's runtime to its own
    /// thread (see `serve_task`).
    fn reregister(self) -> io::Result<Self>
    where
        Self: Sized,
    {
        Ok(self)
    }

    /// Whether [`into_blocking`](Self::into_blocking) gives the transport
    /// as blocking calls on its own socket.
    const BLOCKING: bool = false;

    /// The transport as blocking calls on its own socket: the file server
    /// then serves it from a thread that sleeps in `recvfrom` as the
    /// do-nothing floor does, with no reactor between the datagram and the
    /// answer (per block, a reactor adds a `recvfrom` that finds nothing
    /// and an `epoll_wait`: docs/perf/figures.md). Called only when
    /// [`BLOCKING`](Self::BLOCKING) says it can.
    fn into_blocking(self) -> io::Result<BlockingTransport>
    where
        Self: Sized,
    {
        Err(io::Error::other(
            "this transport has no socket of its own to block on",
        ))
    }
}

/// A UDP socket served with blocking calls, recording what passes when
/// its transport did ([`crate::Recorded`]).
#[derive(Debug)]
pub struct BlockingTransport {
    socket: std::net::UdpSocket,
    /// Innermost first, as nested [`crate::Recorded`] wrappers were.
    recorders: Vec<Recorder>,
}

/// Where a blocking transport records, as [`crate::Recorded`] would.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub capture: crate::Capture,
    pub carried: crate::Carried,
    pub local: SocketAddr,
}

impl BlockingTransport {
    /// How long a receive waits before its caller looks for a stop signal.
    pub(crate) fn set_stop_poll(&self, poll: std::time::Duration) -> io::Result<()> {
        self.socket.set_nonblocking(false)?;
        self.socket.set_read_timeout(Some(poll))
    }

    /// Records what passes from now on, as a [`crate::Recorded`] wrapped
    /// around the transport did.
    pub(crate) fn record_into(mut self, recorder: Recorder) -> Self {
        self.recorders.push(recorder);
        self
    }

    /// The next datagram, or the read timeout's `WouldBlock`/`TimedOut`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, peer) = self.socket.recv_from(buf)?;
        for r in &self.recorders {
            r.capture.record(r.carried, peer, r.local, &buf[..n]);
        }
        Ok((n, peer))
    }

    /// Sends `buf`; recorded before it goes (outermost first, as the
    /// wrappers' sends ran), taken back if it does not.
    pub fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize> {
        let recorded: Vec<(&Recorder, usize)> = self
            .recorders
            .iter()
            .rev()
            .map(|r| (r, r.capture.record(r.carried, r.local, peer, buf)))
            .collect();
        let sent = self.socket.send_to(buf, peer);
        if sent.is_err() {
            for (r, index) in recorded {
                r.capture.retract(index);
            }
        }
        sent
    }
}

impl DatagramTransport for tokio::net::UdpSocket {
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }

    fn send_to(
        &self,
        buf: &[u8],
        peer: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        tokio::net::UdpSocket::send_to(self, buf, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }

    const MOVABLE: bool = true;

    fn reregister(self) -> io::Result<Self> {
        tokio::net::UdpSocket::from_std(self.into_std()?)
    }

    const BLOCKING: bool = true;

    fn into_blocking(self) -> io::Result<BlockingTransport> {
        Ok(BlockingTransport {
            socket: self.into_std()?,
            recorders: Vec::new(),
        })
    }
}
