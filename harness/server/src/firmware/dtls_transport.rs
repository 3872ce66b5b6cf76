//! CoAPS for the firmware file server: a [`DatagramTransport`] that runs a
//! DTLS 1.2 PSK endpoint ([`dtls::OpensslServer`], LwM2M 1.1 Transport
//! §5.2.8, RFC 7252 §9.1) between the UDP socket and the CoAP file service.
//!
//! Keys come from the LwM2M server's [`CredentialStore`], so a device
//! fetches a `coaps://` Package URI with the PSK of its server account
//! (the identity and key it registered with) — no second credential. A key
//! revoked there (removed or replaced) ends the download sessions that
//! authenticated with it at once, with close_notify, instead of at the
//! 30-minute idle timeout: the peer's next datagram needs a new handshake,
//! which the revoked key cannot complete.
//!
//! `recv_from` yields decrypted application datagrams only: it feeds
//! ciphertext (handshakes included) to the endpoint, sends what the
//! endpoint produced and runs its retransmission timer while it waits.
//! `send_to` encrypts for the peer's established session; a peer without
//! one gets an error (logged by the file server as a send error).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dtls::{DtlsServer, OpensslServer, ServerEvent};
use tokio::net::UdpSocket;

use super::transport::DatagramTransport;
use crate::credentials::{CredentialStore, CredentialWatch};

/// Longest wait between looks at the DTLS timer when nothing arrives.
const IDLE_WAKE: Duration = Duration::from_secs(1);

struct Endpoint {
    dtls: Box<dyn DtlsServer>,
    received: VecDeque<(SocketAddr, Vec<u8>)>,
}

/// A UDP socket with a DTLS PSK server endpoint in front of it.
pub struct DtlsDatagramTransport {
    socket: UdpSocket,
    endpoint: Mutex<Endpoint>,
    credentials: CredentialStore,
    /// Revocations since the transport was made; read while receiving.
    revocations: tokio::sync::Mutex<CredentialWatch>,
    /// Where the DTLS datagrams are recorded as they went, if anywhere.
    wire: Option<crate::Capture>,
    /// The socket's address, the captured datagrams' other end.
    local: SocketAddr,
}

impl std::fmt::Debug for DtlsDatagramTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsDatagramTransport")
            .field("local_addr", &self.socket.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl DtlsDatagramTransport {
    /// Wraps `socket`; handshakes look keys up in `credentials`.
    pub fn new(socket: UdpSocket, credentials: &CredentialStore) -> io::Result<Self> {
        let config = dtls::ServerConfig::new(credentials.psk_lookup());
        let dtls = OpensslServer::new(config).map_err(|e| io::Error::other(e.to_string()))?;
        let local = socket.local_addr()?;
        Ok(DtlsDatagramTransport {
            local,
            socket,
            endpoint: Mutex::new(Endpoint {
                dtls: Box::new(dtls),
                received: VecDeque::new(),
            }),
            credentials: credentials.clone(),
            revocations: tokio::sync::Mutex::new(credentials.watch()),
            wire: None,
        })
    }

    /// Records every DTLS datagram in and out into `capture` (the
    /// plaintext side is recorded by wrapping the transport in
    /// [`Recorded`](crate::Recorded)).
    pub fn record_wire(mut self, capture: crate::Capture) -> Self {
        self.wire = Some(capture);
        self
    }

    /// Records a datagram (before it is sent, see [`crate::Capture::record`]);
    /// returns where, to take it back if the send fails.
    fn record(&self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) -> Option<usize> {
        self.wire
            .as_ref()
            .map(|capture| capture.record(crate::Carried::Dtls, from, to, datagram))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Endpoint> {
        self.endpoint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drains the endpoint: decrypted datagrams to the queue, events to the
    /// log; returns the datagrams to put on the wire and the next deadline.
    fn drain(&self) -> (Vec<dtls::Transmit>, Option<Instant>) {
        let mut ep = self.lock();
        let mut out = Vec::new();
        while let Some(t) = ep.dtls.poll_transmit() {
            out.push(t);
        }
        while let Some(r) = ep.dtls.poll_received() {
            ep.received.push_back((r.peer, r.payload));
        }
        while let Some(event) = ep.dtls.poll_event() {
            log_event(&event);
        }
        (out, ep.dtls.poll_timeout())
    }

    async fn flush(&self, out: Vec<dtls::Transmit>) {
        for t in out {
            let recorded = self.record(self.local, t.destination, &t.payload);
            if let Err(e) = self.socket.send_to(&t.payload, t.destination).await {
                if let (Some(capture), Some(index)) = (&self.wire, recorded) {
                    capture.retract(index);
                }
                tracing::debug!(peer = %t.destination, error = %e, "CoAPS file server send error")
            }
        }
    }
}

fn log_event(event: &ServerEvent) {
    match event {
        ServerEvent::HandshakeCompleted {
            peer,
            identity,
            suite,
        } => {
            tracing::info!(%peer, %identity, suite = suite.iana_name(), "CoAPS file server: DTLS handshake completed")
        }
        ServerEvent::HandshakeFailed {
            peer,
            identity,
            reason,
        } => {
            tracing::warn!(%peer, ?identity, %reason, "CoAPS file server: DTLS handshake failed")
        }
        ServerEvent::SessionClosed {
            peer,
            identity,
            reason,
        } => {
            tracing::info!(%peer, %identity, %reason, "CoAPS file server: DTLS session closed")
        }
        other => tracing::debug!(event = ?other, "CoAPS file server: DTLS event"),
    }
}

impl DatagramTransport for DtlsDatagramTransport {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut raw = vec![0u8; 65_535];
        let mut revocations = self.revocations.lock().await;
        loop {
            let (out, deadline) = self.drain();
            self.flush(out).await;
            if let Some((peer, payload)) = self.lock().received.pop_front() {
                if payload.len() > buf.len() {
                    tracing::debug!(%peer, len = payload.len(), "CoAPS datagram larger than the buffer dropped");
                    continue;
                }
                buf[..payload.len()].copy_from_slice(&payload);
                return Ok((payload.len(), peer));
            }
            let now = Instant::now();
            let wake = deadline.map_or(now + IDLE_WAKE, |d| d.min(now + IDLE_WAKE));
            tokio::select! {
                received = tokio::time::timeout_at(wake.into(), self.socket.recv_from(&mut raw)) => {
                    match received {
                        Ok(Ok((n, peer))) => {
                            self.record(peer, self.local, &raw[..n]);
                            self.lock()
                                .dtls
                                .handle_datagram(Instant::now(), peer, &raw[..n]);
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_elapsed) => self.lock().dtls.handle_timeout(Instant::now()),
                    }
                }
                revocation = revocations.next() => {
                    let mut ep = self.lock();
                    let ended =
                        self.credentials
                            .close_revoked(ep.dtls.as_mut(), Instant::now(), revocation);
                    for peer in ended {
                        tracing::info!(%peer, "CoAPS file server: closed the DTLS session of a revoked credential");
                    }
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize> {
        self.lock()
            .dtls
            .send(Instant::now(), peer, buf)
            .map_err(|e| io::Error::other(format!("DTLS: {e}")))?;
        let (out, _) = self.drain();
        self.flush(out).await;
        Ok(buf.len())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    const MOVABLE: bool = true;

    fn reregister(self) -> io::Result<Self> {
        let DtlsDatagramTransport {
            socket,
            endpoint,
            credentials,
            revocations,
            wire,
            local,
        } = self;
        Ok(DtlsDatagramTransport {
            socket: UdpSocket::from_std(socket.into_std()?)?,
            endpoint,
            credentials,
            revocations,
            wire,
            local,
        })
    }
}
