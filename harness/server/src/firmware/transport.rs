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
}
