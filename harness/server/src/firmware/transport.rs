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
}
