//! Who may use the registration interface: the hook a secure transport uses
//! to bind a DTLS PSK identity to the endpoint name it may register as.
//!
//! LwM2M 1.1 Core §7.1 (and Transport §5.2.8) has the server check that the
//! credentials a client authenticated with belong to the endpoint it claims:
//! otherwise one meter's key would let it register, update or de-register as
//! any other. The sans-IO core knows nothing of DTLS, so the transport tells
//! it the authenticated identity with each datagram
//! ([`Server::handle_datagram_authenticated`]) and the caller installs an
//! [`Authorizer`] that says yes or no; a refusal is answered 4.03 Forbidden
//! and reported as [`ServerEvent::Forbidden`].
//!
//! [`SecurityEvent`] carries the transport's own reports (handshakes, drops)
//! into the same event history, so a test step can wait for a refused
//! handshake the way it waits for a registration. The core never emits it.

use std::net::SocketAddr;

use coap_lite::{Packet, RequestType};

use super::{registration, Reply, Server, ServerEvent};

/// Decides whether a client that authenticated as `identity` (`None`: the
/// datagram came over plain CoAP) may act on `endpoint`'s registration.
/// `Err` carries the reason: it becomes the 4.03's diagnostic payload and
/// the event's reason, so it must not contain key material.
pub type Authorizer = Box<dyn Fn(&str, Option<&str>) -> Result<(), String> + Send>;

/// What the secure transport around the server reports (DTLS 1.2, RFC 6347).
/// Reasons are text, so the core does not depend on a DTLS implementation;
/// no variant ever carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A handshake completed: `peer` proved it holds the key of `identity`.
    HandshakeCompleted {
        peer: SocketAddr,
        identity: String,
        /// IANA name, e.g. `TLS_PSK_WITH_AES_128_CCM_8`.
        suite: String,
    },
    /// A handshake failed; every other session carries on.
    HandshakeFailed {
        peer: SocketAddr,
        /// The identity the client claimed, if it got that far.
        identity: Option<String>,
        reason: String,
        /// The two sides hold different keys for the identity.
        wrong_key: bool,
        /// The server knows no key for the identity.
        unknown_identity: bool,
    },
    /// An established session ended.
    SessionClosed {
        peer: SocketAddr,
        identity: String,
        reason: String,
    },
    /// A datagram (or some of its records) was discarded: truncated,
    /// replayed, from a peer without a session, a bad cookie, ...
    Dropped { peer: SocketAddr, reason: String },
}

impl Server {
    /// Installs the check run on every Register, Update and De-register.
    /// Without one, everything is allowed (plain CoAP, NoSec).
    pub fn set_authorizer(&mut self, authorizer: Authorizer) {
        self.authorizer = Some(authorizer);
    }

    /// Like [`Server::handle_datagram`], for a datagram that arrived inside a
    /// secure session whose peer authenticated as `identity`.
    pub fn handle_datagram_authenticated(
        &mut self,
        now: std::time::Instant,
        peer: SocketAddr,
        identity: Option<&str>,
        datagram: &[u8],
    ) {
        self.identity = identity.map(str::to_string);
        self.handle_datagram(now, peer, datagram);
        self.identity = None;
    }

    /// `Some(4.03)` when the authorizer refuses the registration interface
    /// request; `None` lets it through (also when the request is malformed:
    /// the operation itself answers that with its 4.00/4.04).
    pub(super) fn authorize(
        &mut self,
        peer: SocketAddr,
        method: RequestType,
        segments: &[&str],
        message: &Packet,
    ) -> Option<Reply> {
        let authorizer = self.authorizer.as_ref()?;
        let (operation, endpoint) = match (method, segments) {
            (RequestType::Post, ["rd"]) => {
                ("Register", registration::parse(message).ok()?.endpoint?)
            }
            (RequestType::Post, ["rd", id]) => ("Update", self.location(id)?.to_string()),
            (RequestType::Delete, ["rd", id]) => ("De-register", self.location(id)?.to_string()),
            _ => return None,
        };
        let identity = self.identity.clone();
        let reason = authorizer(&endpoint, identity.as_deref()).err()?;
        tracing::warn!(%peer, %endpoint, ?identity, operation, %reason, "registration interface request forbidden");
        self.events.push_back(ServerEvent::Forbidden {
            peer,
            endpoint,
            identity,
            operation: operation.to_string(),
            reason: reason.clone(),
        });
        Some(Reply::error(403, reason))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};

    use super::*;
    use crate::coap::wire;
    use crate::format::ContentFormat;
    use crate::model::Registry;
    use crate::server::ServerConfig;

    fn register(endpoint: &str) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(RequestType::Post);
        p.header.message_id = 0x1234;
        p.set_token(vec![1, 2]);
        p.add_option(CoapOption::UriPath, b"rd".to_vec());
        p.add_option(CoapOption::UriQuery, format!("ep={endpoint}").into_bytes());
        p.payload = b"</3/0>".to_vec();
        wire::encode(&p)
    }

    fn server() -> Server {
        let mut s = Server::new(ServerConfig {
            registry: Registry::core(),
            default_format: ContentFormat::Tlv,
            seed: 1,
        });
        s.set_authorizer(Box::new(|endpoint, identity| match identity {
            Some(id) if id == format!("{endpoint}-id") => Ok(()),
            other => Err(format!("{other:?} may not act as {endpoint}")),
        }));
        s
    }

    fn answer_code(s: &mut Server) -> u16 {
        let t = s.poll_transmit().expect("an answer");
        let p = wire::decode(&t.payload).unwrap();
        crate::coap::code::to_number(p.header.code.into())
    }

    #[test]
    fn a_register_from_the_bound_identity_is_accepted() {
        let mut s = server();
        let peer = "127.0.0.1:40000".parse().unwrap();
        s.handle_datagram_authenticated(Instant::now(), peer, Some("m1-id"), &register("m1"));
        assert_eq!(answer_code(&mut s), 201);
        assert!(matches!(s.poll_event(), Some(ServerEvent::Registered(r)) if r.endpoint == "m1"));
    }

    #[test]
    fn a_register_as_another_endpoint_gets_4_03_and_an_event() {
        let mut s = server();
        let peer = "127.0.0.1:40000".parse().unwrap();
        s.handle_datagram_authenticated(Instant::now(), peer, Some("m1-id"), &register("m2"));
        assert_eq!(answer_code(&mut s), 403);
        let Some(ServerEvent::Forbidden {
            endpoint,
            identity,
            operation,
            ..
        }) = s.poll_event()
        else {
            panic!("expected Forbidden");
        };
        assert_eq!(
            (endpoint.as_str(), identity.as_deref(), operation.as_str()),
            ("m2", Some("m1-id"), "Register")
        );
        assert!(s.registration("m2").is_none());
        // Without an identity (plain handle_datagram) the authorizer decides too.
        let mut fresh = register("m1");
        fresh[2..4].copy_from_slice(&0x4321u16.to_be_bytes());
        s.handle_datagram(Instant::now(), peer, &fresh);
        assert_eq!(answer_code(&mut s), 403);
    }
}
