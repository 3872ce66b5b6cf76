//! The client endpoint.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use openssl::ssl::{Ssl, SslContext};

use super::connection::{Connection, Outcome};
use super::context;
use crate::client::{ClientState, DtlsClient};
use crate::config::{ClientConfig, RetransmitPolicy};
use crate::error::Error;
use crate::event::{ClientEvent, CloseReason, DropReason, Transmit};
use crate::record;

/// DTLS 1.2 PSK client over OpenSSL; see [`DtlsClient`].
pub struct OpensslClient {
    remote: SocketAddr,
    identity: String,
    conn: Connection,
    state: ClientState,
    transmits: VecDeque<Transmit>,
    received: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    mtu: u16,
    retransmit: RetransmitPolicy,
    /// Kept for [`Self::restarted`] (the SSL holds a reference anyway).
    ctx: SslContext,
}

impl std::fmt::Debug for OpensslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslClient")
            .field("remote", &self.remote)
            .field("identity", &self.identity)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl OpensslClient {
    /// Starts a handshake with `remote`: the first ClientHello is ready in
    /// [`DtlsClient::poll_transmit`] when this returns.
    pub fn connect(config: ClientConfig, remote: SocketAddr, now: Instant) -> Result<Self, Error> {
        let ctx = context::client(&config)?;
        let identity = config.credential.identity();
        match &config.credential {
            crate::config::ClientCredential::Psk(psk) => {
                tracing::debug!(%remote, %identity, key = %psk.key, "DTLS client connecting");
            }
            crate::config::ClientCredential::Certificate(c) => {
                tracing::debug!(%remote, %identity, key = %c.key, "DTLS client connecting with a certificate");
            }
        }
        Self::start(ctx, identity, config.mtu, config.retransmit, remote, now)
    }

    /// A new association with the same remote, OpenSSL context and config,
    /// from the first ClientHello: nothing of this one (state, queues,
    /// events) carries over.
    ///
    /// Exists because building the context is most of what
    /// [`Self::connect`] costs (about half a millisecond); callers that need
    /// many fresh clients in a row (the fuzz target) connect once and
    /// restart. The context keeps no per-connection state (session cache
    /// and tickets are off), so no session is resumed.
    pub fn restarted(&self, now: Instant) -> Result<Self, Error> {
        Self::start(
            self.ctx.clone(),
            self.identity.clone(),
            self.mtu,
            self.retransmit,
            self.remote,
            now,
        )
    }

    fn start(
        ctx: SslContext,
        identity: String,
        mtu: u16,
        retransmit: RetransmitPolicy,
        remote: SocketAddr,
        now: Instant,
    ) -> Result<Self, Error> {
        let ssl = Ssl::new(&ctx).map_err(|e| Error::openssl("creating the SSL", e))?;
        let (conn, outcome) = Connection::connect(ssl, mtu, retransmit, now)?;
        let mut client = Self {
            remote,
            identity,
            conn,
            state: ClientState::Handshaking,
            transmits: VecDeque::new(),
            received: VecDeque::new(),
            events: VecDeque::new(),
            mtu,
            retransmit,
            ctx,
        };
        client.apply(outcome);
        Ok(client)
    }

    fn apply(&mut self, outcome: Outcome) {
        let remote = self.remote;
        self.transmits
            .extend(outcome.transmits.into_iter().map(|payload| Transmit {
                destination: remote,
                payload,
            }));
        self.received.extend(outcome.received);
        if outcome.completed {
            if let Some(suite) = self.conn.suite() {
                tracing::info!(%remote, identity = %self.identity, %suite, "DTLS client connected");
                self.state = ClientState::Connected(suite);
                self.events.push_back(ClientEvent::Connected { suite });
            }
        }
        if outcome.rejected > 0 {
            self.events.push_back(ClientEvent::Dropped {
                reason: DropReason::RecordsRejected {
                    count: outcome.rejected,
                },
            });
        }
        if let Some(reason) = outcome.failed {
            tracing::warn!(%remote, identity = %self.identity, %reason, "DTLS handshake failed");
            self.state = ClientState::Failed(reason.clone());
            self.events
                .push_back(ClientEvent::HandshakeFailed { reason });
        } else if let Some(reason) = outcome.closed {
            tracing::info!(%remote, %reason, "DTLS session closed");
            self.state = ClientState::Closed(reason.clone());
            self.events.push_back(ClientEvent::Closed { reason });
        }
    }

    fn is_over(&self) -> bool {
        matches!(self.state, ClientState::Failed(_) | ClientState::Closed(_))
    }
}

impl DtlsClient for OpensslClient {
    fn remote(&self) -> SocketAddr {
        self.remote
    }

    fn state(&self) -> &ClientState {
        &self.state
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let reason = if from != self.remote {
            Some(DropReason::WrongSource)
        } else if self.is_over() {
            Some(DropReason::SessionClosed)
        } else {
            match record::parse_records(datagram) {
                Ok(records) => {
                    let outcome = self.conn.handle_datagram(now, datagram, &records);
                    self.apply(outcome);
                    None
                }
                Err(e) => Some(DropReason::Malformed(e)),
            }
        };
        if let Some(reason) = reason {
            tracing::debug!(%from, %reason, "datagram dropped");
            self.events.push_back(ClientEvent::Dropped { reason });
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let outcome = self.conn.handle_timeout(now);
        self.apply(outcome);
    }

    fn send(&mut self, _now: Instant, payload: &[u8]) -> Result<(), Error> {
        if !matches!(self.state, ClientState::Connected(_)) {
            return Err(Error::NotEstablished(self.remote));
        }
        let datagrams = self.conn.send(payload)?;
        let remote = self.remote;
        self.transmits
            .extend(datagrams.into_iter().map(|payload| Transmit {
                destination: remote,
                payload,
            }));
        Ok(())
    }

    fn close(&mut self, _now: Instant) {
        if self.is_over() {
            return;
        }
        let datagrams = self.conn.close();
        let remote = self.remote;
        self.transmits
            .extend(datagrams.into_iter().map(|payload| Transmit {
                destination: remote,
                payload,
            }));
        self.state = ClientState::Closed(CloseReason::Local);
        self.events.push_back(ClientEvent::Closed {
            reason: CloseReason::Local,
        });
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_received(&mut self) -> Option<Vec<u8>> {
        self.received.pop_front()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.is_over() {
            None
        } else {
            self.conn.poll_timeout()
        }
    }
}
