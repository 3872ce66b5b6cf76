//! Stateless cookies for the HelloVerifyRequest exchange (RFC 6347 §4.2.1).
//!
//! The server answers a cookie-less ClientHello with a cookie it can recompute
//! later and keeps nothing; only a ClientHello that returns a valid cookie —
//! proof that the sender receives datagrams at its source address — gets a
//! session. A spoofed flood therefore costs one HMAC and one small reply per
//! datagram and no memory.
//!
//! Cookie = first 16 bytes of HMAC-SHA256(secret, peer address || port ||
//! client random), the construction §4.2.1 suggests. The secret is drawn per
//! endpoint and never leaves it.

use std::net::SocketAddr;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use zeroize::Zeroizing;

use crate::error::Error;

/// Cookie length in bytes (OpenSSL accepts up to 255).
pub const COOKIE_LEN: usize = 16;

/// The per-endpoint HMAC key that makes cookies unforgeable.
pub struct CookieSecret {
    key: PKey<Private>,
}

impl CookieSecret {
    /// Draws a fresh 32-byte secret.
    pub fn generate() -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(&mut *secret)
            .map_err(|e| Error::openssl("drawing the cookie secret", e))?;
        let key =
            PKey::hmac(&*secret).map_err(|e| Error::openssl("creating the cookie HMAC key", e))?;
        Ok(Self { key })
    }

    /// The cookie for this peer and ClientHello random.
    pub fn cookie(
        &self,
        peer: SocketAddr,
        client_random: &[u8; 32],
    ) -> Result<[u8; COOKIE_LEN], Error> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)
            .map_err(|e| Error::openssl("starting the cookie HMAC", e))?;
        let ip = match peer.ip() {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        let mut input = Vec::with_capacity(16 + 2 + 32);
        input.extend_from_slice(&ip);
        input.extend_from_slice(&peer.port().to_be_bytes());
        input.extend_from_slice(client_random);
        signer
            .update(&input)
            .map_err(|e| Error::openssl("computing the cookie HMAC", e))?;
        let mac = signer
            .sign_to_vec()
            .map_err(|e| Error::openssl("finishing the cookie HMAC", e))?;
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&mac[..COOKIE_LEN]);
        Ok(cookie)
    }

    /// Whether `cookie` is the one this endpoint issued for the peer and
    /// random (compared in constant time).
    pub fn verify(&self, peer: SocketAddr, client_random: &[u8; 32], cookie: &[u8]) -> bool {
        match self.cookie(peer, client_random) {
            Ok(expected) => cookie.len() == COOKIE_LEN && openssl::memcmp::eq(&expected, cookie),
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_binds_address_port_and_random() {
        let secret = CookieSecret::generate().unwrap();
        let a: SocketAddr = "127.0.0.1:5684".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5685".parse().unwrap();
        let c = secret.cookie(a, &[1; 32]).unwrap();
        assert!(secret.verify(a, &[1; 32], &c));
        assert!(!secret.verify(b, &[1; 32], &c));
        assert!(!secret.verify(a, &[2; 32], &c));
        assert!(!secret.verify(a, &[1; 32], &c[..15]));
        let other = CookieSecret::generate().unwrap();
        assert!(!other.verify(a, &[1; 32], &c));
    }
}
