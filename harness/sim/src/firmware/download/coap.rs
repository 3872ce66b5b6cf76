//! CoAP pull: GET the Package URI block by block (RFC 7959 §2.4 Block2),
//! one Confirmable exchange per block over a UDP socket of its own, with
//! the sans-IO [`Block2Download`] and [`MessageLayer`] of the `lwm2m` crate.
//!
//! CoAPS (`coaps://`, RFC 7252 §9.1): the same exchanges as DTLS 1.2
//! application data of a [`dtls::OpensslClient`] keyed with the server
//! account's PSK; the handshake runs first, and a failed one is Connection
//! Lost (Update Result 4) like an unreachable server.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coap_lite::Packet;
use dtls::{ClientConfig, ClientState, DtlsClient, OpensslClient};
use lwm2m::coap::block::{Block2Download, BlockError};
use lwm2m::coap::{ExchangeEvent, ExchangeId, MessageLayer};
use lwm2m::firmware::{PackageUri, ProtocolSupport};

use super::{resolve, DownloadJob, Failure, FailureKind, Sink};

/// How often a wait looks at the cancel flag.
const POLL: Duration = Duration::from_millis(100);

pub(super) fn fetch(
    job: &DownloadJob,
    uri: &PackageUri,
    cancel: &AtomicBool,
    sink: &mut Sink,
) -> Result<(), Failure> {
    let server = resolve(&uri.host, uri.port)?;
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .expect("literal address");
    let socket = UdpSocket::bind(bind)
        .map_err(|e| Failure::new(FailureKind::ConnectionLost, format!("UDP socket: {e}")))?;
    let dtls = if uri.protocol == ProtocolSupport::Coaps {
        let psk = job.psk.clone().ok_or_else(|| {
            Failure::new(
                FailureKind::UnsupportedProtocol,
                "coaps:// needs a PSK server account; the device has none",
            )
        })?;
        let mut config = ClientConfig::new(psk);
        config.retransmit = crate::security::link::retransmit_policy();
        let client = OpensslClient::connect(config, server, Instant::now()).map_err(|e| {
            Failure::new(
                FailureKind::ConnectionLost,
                format!("cannot start DTLS: {e}"),
            )
        })?;
        Some(client)
    } else {
        None
    };
    let mut link = Link {
        socket,
        server,
        layer: MessageLayer::new(job.seed),
        stall: job.stall,
        dtls,
    };
    link.handshake(cancel)?;
    let start = |offset: u64, etag: Option<Vec<u8>>| {
        Block2Download::resume(uri.path.clone(), job.szx, offset as usize, etag)
            .map(|d| {
                d.with_query(uri.query.clone())
                    .with_limit(job.limit as usize)
            })
            .map_err(|e| Failure::new(FailureKind::InvalidUri, e.to_string()))
    };
    let mut dl = start(sink.len(), sink.etag.clone())?;
    let mut written = 0usize;
    let mut restarted = false;
    while let Some(request) = dl.next_request() {
        let response = link.exchange(request, cancel)?;
        match dl.handle_response(&response) {
            Ok(_) => {
                let fresh = &dl.data()[written..];
                written = dl.data().len();
                if !fresh.is_empty() {
                    sink.set_etag(dl.etag().map(<[u8]>::to_vec));
                    sink.write(fresh)?;
                }
            }
            Err(BlockError::ImageChanged { expected, got }) if !restarted => {
                // RFC 7959 §2.4: another ETag means another representation;
                // the earlier part belongs to a different image.
                tracing::info!(%expected, %got, "the image changed since the download began");
                restarted = true;
                sink.restart()?;
                dl = start(0, None)?;
                written = 0;
            }
            Err(e) => return Err(failure(e)),
        }
    }
    sink.progress();
    Ok(())
}

/// Object 5's reading of a Block2 failure (module doc of `lwm2m::coap::block`).
fn failure(e: BlockError) -> Failure {
    let kind = match &e {
        BlockError::TooLarge { .. } => FailureKind::TooLarge,
        BlockError::Status { code, .. } if (400..500).contains(code) => FailureKind::InvalidUri,
        BlockError::SizeMismatch { .. } | BlockError::ImageChanged { .. } => FailureKind::Integrity,
        _ => FailureKind::ConnectionLost,
    };
    Failure::new(kind, e.to_string())
}

struct Link {
    socket: UdpSocket,
    server: SocketAddr,
    layer: MessageLayer,
    stall: Option<Duration>,
    /// The DTLS association for `coaps://`; `None` for plain CoAP.
    dtls: Option<OpensslClient>,
}

impl Link {
    /// Runs the DTLS handshake to its end (nothing to do for plain CoAP).
    fn handshake(&mut self, cancel: &AtomicBool) -> Result<(), Failure> {
        let started = Instant::now();
        let give_up = self.stall.map(|s| started + s);
        let mut buf = vec![0u8; 65_535];
        loop {
            let Some(dtls) = self.dtls.as_mut() else {
                return Ok(());
            };
            while let Some(t) = dtls.poll_transmit() {
                if let Err(e) = self.socket.send_to(&t.payload, t.destination) {
                    tracing::debug!(error = %e, "send failed; retransmission will retry");
                }
            }
            match dtls.state() {
                ClientState::Handshaking => {}
                ClientState::Connected(suite) => {
                    tracing::info!(server = %self.server, suite = suite.iana_name(), elapsed_ms = started.elapsed().as_millis() as u64, "CoAPS download: DTLS handshake completed");
                    return Ok(());
                }
                other => {
                    return Err(Failure::new(
                        FailureKind::ConnectionLost,
                        format!("DTLS handshake with {} failed: {other:?}", self.server),
                    ))
                }
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Failure::new(FailureKind::ConnectionLost, "cancelled"));
            }
            let now = Instant::now();
            if give_up.is_some_and(|g| now >= g) {
                return Err(Failure::new(
                    FailureKind::ConnectionLost,
                    format!(
                        "no DTLS handshake with {} within the stall limit",
                        self.server
                    ),
                ));
            }
            let mut wake = now + POLL;
            for t in [dtls.poll_timeout(), give_up].into_iter().flatten() {
                wake = wake.min(t);
            }
            self.receive(wake, &mut buf);
        }
    }

    /// Waits until `wake` for one datagram and feeds it in: through DTLS
    /// (decrypted CoAP to the message layer) or straight to the layer.
    fn receive(&mut self, wake: Instant, buf: &mut [u8]) {
        let wait = wake
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let _ = self.socket.set_read_timeout(Some(wait));
        match self.socket.recv_from(buf) {
            Ok((n, peer)) => match self.dtls.as_mut() {
                Some(dtls) => {
                    dtls.handle_datagram(Instant::now(), peer, &buf[..n]);
                    while let Some(plain) = dtls.poll_received() {
                        self.layer.handle_datagram(Instant::now(), peer, &plain);
                    }
                }
                None => self.layer.handle_datagram(Instant::now(), peer, &buf[..n]),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.handle_timeout(Instant::now());
        }
    }

    /// Puts what the message layer (and DTLS) produced on the wire.
    fn transmit(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            if let Some(dtls) = self.dtls.as_mut() {
                if let Err(e) = dtls.send(Instant::now(), &t.payload) {
                    tracing::debug!(error = %e, "DTLS send failed; retransmission will retry");
                }
            } else if let Err(e) = self.socket.send_to(&t.payload, t.destination) {
                tracing::debug!(error = %e, "send failed; retransmission will retry");
            }
        }
        if let Some(dtls) = self.dtls.as_mut() {
            while let Some(t) = dtls.poll_transmit() {
                if let Err(e) = self.socket.send_to(&t.payload, t.destination) {
                    tracing::debug!(error = %e, "send failed; retransmission will retry");
                }
            }
        }
    }

    /// Sends one CON request and waits for its response.
    fn exchange(&mut self, request: Packet, cancel: &AtomicBool) -> Result<Packet, Failure> {
        let started = Instant::now();
        let id = self.layer.send(started, self.server, request, true);
        let give_up = self.stall.map(|s| started + s);
        let mut buf = vec![0u8; 65_535];
        loop {
            self.transmit();
            if let Some(done) = self.take_outcome(id) {
                return done;
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Failure::new(FailureKind::ConnectionLost, "cancelled"));
            }
            let now = Instant::now();
            if give_up.is_some_and(|g| now >= g) {
                self.layer.cancel(id);
                return Err(Failure::new(
                    FailureKind::ConnectionLost,
                    format!(
                        "no response from {} for {} s",
                        self.server,
                        self.stall.unwrap_or_default().as_secs()
                    ),
                ));
            }
            let mut wake = now + POLL;
            let dtls_timeout = self.dtls.as_ref().and_then(|d| d.poll_timeout());
            for t in [self.layer.poll_timeout(), dtls_timeout, give_up]
                .into_iter()
                .flatten()
            {
                wake = wake.min(t);
            }
            self.receive(wake, &mut buf);
            self.layer.handle_timeout(Instant::now());
        }
    }

    fn take_outcome(&mut self, id: ExchangeId) -> Option<Result<Packet, Failure>> {
        while let Some(event) = self.layer.poll_event() {
            match event {
                ExchangeEvent::Response { id: r, message, .. } if r == id => {
                    return Some(Ok(message))
                }
                ExchangeEvent::Timeout {
                    id: r,
                    transmissions,
                    ..
                } if r == id => {
                    return Some(Err(Failure::new(
                        FailureKind::ConnectionLost,
                        format!(
                            "no response from {} after {transmissions} transmissions",
                            self.server
                        ),
                    )))
                }
                ExchangeEvent::Reset { id: Some(r), .. } if r == id => {
                    return Some(Err(Failure::new(
                        FailureKind::ConnectionLost,
                        format!("{} answered with Reset", self.server),
                    )))
                }
                ExchangeEvent::Request { peer, message }
                | ExchangeEvent::Unsolicited { peer, message } => self.layer.reject(peer, &message),
                _ => {}
            }
        }
        None
    }
}
