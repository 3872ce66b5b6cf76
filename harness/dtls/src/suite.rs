//! The cipher suites offered.

use std::fmt;

/// A DTLS 1.2 cipher suite this crate negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// TLS_PSK_WITH_AES_128_CCM_8 (0xC0A8, RFC 6655 §4): mandatory for LwM2M
    /// PSK mode (LwM2M 1.1 Transport §5.2.8, via RFC 7925 §4.1).
    PskAes128Ccm8,
    /// TLS_PSK_WITH_AES_128_CBC_SHA256 (0x00AE, RFC 5487 §3.1): the suite
    /// LwM2M 1.0 listed and many deployed modems still offer.
    PskAes128CbcSha256,
    /// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (0xC0AE, RFC 7251 §2): mandatory
    /// for LwM2M certificate mode (Security Mode 2; LwM2M 1.1 Transport
    /// §5.2.8, via RFC 7925 §4.4), ECDSA over P-256.
    EcdheEcdsaAes128Ccm8,
}

impl CipherSuite {
    /// Both PSK suites, CCM_8 preferred (what a PSK endpoint offers).
    pub const ALL: [CipherSuite; 2] = [Self::PskAes128Ccm8, Self::PskAes128CbcSha256];

    /// The certificate-mode suite (what a certificate endpoint offers).
    pub const CERTIFICATE: [CipherSuite; 1] = [Self::EcdheEcdsaAes128Ccm8];

    /// Whether the peer authenticates with an X.509 certificate (not a PSK).
    pub fn is_certificate(self) -> bool {
        matches!(self, Self::EcdheEcdsaAes128Ccm8)
    }

    /// The OpenSSL cipher-list name.
    pub fn openssl_name(self) -> &'static str {
        match self {
            Self::PskAes128Ccm8 => "PSK-AES128-CCM8",
            Self::PskAes128CbcSha256 => "PSK-AES128-CBC-SHA256",
            Self::EcdheEcdsaAes128Ccm8 => "ECDHE-ECDSA-AES128-CCM8",
        }
    }

    /// The IANA name.
    pub fn iana_name(self) -> &'static str {
        match self {
            Self::PskAes128Ccm8 => "TLS_PSK_WITH_AES_128_CCM_8",
            Self::PskAes128CbcSha256 => "TLS_PSK_WITH_AES_128_CBC_SHA256",
            Self::EcdheEcdsaAes128Ccm8 => "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
        }
    }

    /// The two-byte code point.
    pub fn code(self) -> u16 {
        match self {
            Self::PskAes128Ccm8 => 0xc0a8,
            Self::PskAes128CbcSha256 => 0x00ae,
            Self::EcdheEcdsaAes128Ccm8 => 0xc0ae,
        }
    }

    /// Looks a suite up by OpenSSL or IANA name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::CERTIFICATE)
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
