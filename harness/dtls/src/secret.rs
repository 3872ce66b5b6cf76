//! Pre-shared keys, kept out of logs.
//!
//! A PSK is the only secret a DTLS PSK handshake has (RFC 4279 §2): whoever
//! reads it from a log can impersonate the meter. [`SecretKey`] therefore never
//! prints its bytes — `Debug` and `Display` show a fingerprint (the first
//! 8 hex digits of SHA-256 of the key), enough to tell two keys apart in a
//! report — and its memory is zeroed when it is dropped.

use std::fmt;

use zeroize::Zeroizing;

/// Longest PSK identity accepted, in bytes. OpenSSL 3's `PSK_MAX_IDENTITY_LEN`
/// is 256; 128 keeps us inside every deployed stack (tinydtls, mbedTLS).
pub const MAX_IDENTITY_LEN: usize = 128;

/// Longest key accepted, in bytes (OpenSSL's `PSK_MAX_PSK_LEN` is 256 in 1.1.1).
pub const MAX_KEY_LEN: usize = 256;

/// Why a key or identity was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("PSK must be 1..={MAX_KEY_LEN} bytes, got {0}")]
    Length(usize),
    /// Hex text with an odd number of digits.
    #[error("PSK hex has an odd number of digits ({0})")]
    OddHexLength(usize),
    /// A character that is not a hex digit, at this position (the character
    /// itself is not repeated, it may be part of a secret).
    #[error("PSK hex has a non-hex character at position {0}")]
    NotHex(usize),
    /// The identity is empty, too long or contains a NUL byte (OpenSSL passes
    /// identities as C strings).
    #[error("PSK identity must be 1..={MAX_IDENTITY_LEN} bytes without NUL, got {len} bytes")]
    Identity {
        /// Length of the refused identity in bytes.
        len: usize,
    },
    /// The random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
}

/// A pre-shared key: bytes that are zeroed on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    /// Wraps key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
            return Err(KeyError::Length(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// Draws `len` bytes from OpenSSL's CSPRNG (`RAND_bytes`).
    pub fn generate(len: usize) -> Result<Self, KeyError> {
        if len == 0 || len > MAX_KEY_LEN {
            return Err(KeyError::Length(len));
        }
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        openssl::rand::rand_bytes(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Parses hex (upper or lower case, no prefix), as LwM2M rig files and
    /// the Security object's "Secret Key" resource are usually written.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) {
            return Err(KeyError::OddHexLength(text.len()));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
        let digits = text.as_bytes();
        for (i, pair) in digits.chunks(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(KeyError::NotHex(2 * i))?;
            let lo = hex_value(pair[1]).ok_or(KeyError::NotHex(2 * i + 1))?;
            bytes.push(hi << 4 | lo);
        }
        Self::new(std::mem::take(&mut *bytes))
    }

    /// The key bytes. Only the DTLS implementation should need them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a key has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First 8 hex digits of SHA-256 of the key: safe to log, tells keys apart.
    pub fn fingerprint(&self) -> String {
        let digest = openssl::sha::sha256(&self.0);
        hex::encode(&digest[..4])
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey(sha256:{}…, {} bytes)",
            self.fingerprint(),
            self.len()
        )
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}…", self.fingerprint())
    }
}

/// A PSK identity and its key (RFC 4279 §2; LwM2M Security object resources
/// 3 "Public Key or Identity" and 5 "Secret Key").
#[derive(Clone, PartialEq, Eq)]
pub struct Psk {
    /// The identity sent in the clear in ClientKeyExchange.
    pub identity: String,
    /// The key; never printed.
    pub key: SecretKey,
}

impl Psk {
    /// Checks the identity against OpenSSL's limits.
    pub fn new(identity: impl Into<String>, key: SecretKey) -> Result<Self, KeyError> {
        let identity = identity.into();
        check_identity(identity.as_bytes())?;
        Ok(Self { identity, key })
    }
}

pub(crate) fn check_identity(identity: &[u8]) -> Result<(), KeyError> {
    if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN || identity.contains(&0) {
        return Err(KeyError::Identity {
            len: identity.len(),
        });
    }
    Ok(())
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Psk")
            .field("identity", &self.identity)
            .field("key", &self.key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_show_fingerprint_not_key() {
        let key = SecretKey::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let shown = format!("{key:?} {key}");
        assert!(!shown.contains("00112233"), "{shown}");
        assert!(!shown.contains("aabbcc"), "{shown}");
        // sha256(00..ff) starts with these 4 bytes.
        let expected = hex::encode(&openssl::sha::sha256(key.expose())[..4]);
        assert!(shown.contains(&expected), "{shown}");
    }

    #[test]
    fn hex_parse_reports_position_not_text() {
        assert_eq!(SecretKey::from_hex("abc"), Err(KeyError::OddHexLength(3)));
        let err = SecretKey::from_hex("00zz").unwrap_err();
        assert_eq!(err, KeyError::NotHex(2));
        assert!(!err.to_string().contains('z'));
        assert_eq!(SecretKey::from_hex(""), Err(KeyError::Length(0)));
        assert_eq!(SecretKey::from_hex("0A0b").unwrap().expose(), &[0x0a, 0x0b]);
    }

    #[test]
    fn generate_gives_requested_length_and_distinct_keys() {
        let a = SecretKey::generate(16).unwrap();
        let b = SecretKey::generate(16).unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(SecretKey::generate(0).is_err());
    }

    #[test]
    fn identity_limits() {
        let key = SecretKey::new(b"k".to_vec()).unwrap();
        assert!(Psk::new("urn:imei:1", key.clone()).is_ok());
        assert!(Psk::new("", key.clone()).is_err());
        assert!(Psk::new("a\0b", key.clone()).is_err());
        assert!(Psk::new("x".repeat(129), key).is_err());
    }
}
