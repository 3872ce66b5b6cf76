//! The cipher suites offered.

use std::fmt;

/// A DTLS 1.2 PSK cipher suite this crate negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// TLS_PSK_WITH_AES_128_CCM_8 (0xC0A8, RFC 6655 §4): mandatory for LwM2M
    /// PSK mode (LwM2M 1.1 Transport §5.2.8, via RFC 7925 §4.1).
    PskAes128Ccm8,
    /// TLS_PSK_WITH_AES_128_CBC_SHA256 (0x00AE, RFC 5487 §3.1): the suite
    /// LwM2M 1.0 listed and many deployed modems still offer.
    PskAes128CbcSha256,
}

impl CipherSuite {
    /// Both suites, CCM_8 preferred.
    pub const ALL: [CipherSuite; 2] = [Self::PskAes128Ccm8, Self::PskAes128CbcSha256];

    /// The OpenSSL cipher-list name.
    pub fn openssl_name(self) -> &'static str {
        match self {
            Self::PskAes128Ccm8 => "PSK-AES128-CCM8",
            Self::PskAes128CbcSha256 => "PSK-AES128-CBC-SHA256",
        }
    }

    /// The IANA name.
    pub fn iana_name(self) -> &'static str {
        match self {
            Self::PskAes128Ccm8 => "TLS_PSK_WITH_AES_128_CCM_8",
            Self::PskAes128CbcSha256 => "TLS_PSK_WITH_AES_128_CBC_SHA256",
        }
    }

    /// The two-byte code point.
    pub fn code(self) -> u16 {
        match self {
            Self::PskAes128Ccm8 => 0xc0a8,
            Self::PskAes128CbcSha256 => 0x00ae,
        }
    }

    /// Looks a suite up by OpenSSL or IANA name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.openssl_name() == name || s.iana_name() == name)
    }

    pub(crate) fn cipher_list(suites: &[CipherSuite]) -> String {
        suites
            .iter()
            .map(|s| s.openssl_name())
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iana_name())
    }
}
