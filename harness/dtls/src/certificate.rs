//! X.509 certificate credentials (LwM2M Security Mode 2, "Certificate
//! mode", LwM2M 1.1 Core §E.1 and Transport §5.2.8) and the per-run
//! certificate authority that issues them.
//!
//! # What the Security object carries, and in which encoding
//!
//! - /0/x/3 "Public Key or Identity": the client's certificate, DER;
//! - /0/x/4 "Server Public Key": the server's certificate, DER, pinned as
//!   the client's only trust anchor (Certificate Usage 3, "domain-issued
//!   certificate", the default of /0/x/15, RFC 6698 §2.1.1);
//! - /0/x/5 "Secret Key": the client's private key, DER. meterbench
//!   writes PKCS#8 (`PrivateKeyInfo`, RFC 5958 §2) because it names its
//!   algorithm, so a client need not guess the key type (Leshan's
//!   bootstrap server writes the same); it reads SEC1 `ECPrivateKey`
//!   (RFC 5915 §3) as well, which some clients hold.
//!
//! The suite is TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RFC 7251 §2), the one
//! LwM2M makes mandatory for certificate mode (via RFC 7925 §4.4), with
//! ECDSA over P-256 (secp256r1, RFC 7925 §4.4.1).
//!
//! # Trust anchors
//!
//! A [`CertificateCredential`]'s `trust` holds what the peer must chain to:
//! a CA certificate, or the peer's own certificate pinned (what the
//! Security object's /0/x/4 gives a client). Trust anchors that are not
//! self-signed are allowed (OpenSSL's `X509_V_FLAG_PARTIAL_CHAIN`), so a
//! pinned end-entity certificate verifies on its own.
//!
//! # Secrets
//!
//! [`PrivateKey`] never prints its bytes: `Debug` and `Display` show the
//! first 8 hex digits of SHA-256 of its public key, enough to tell keys
//! apart in a report. Its DER form is only handed out in a zeroizing
//! buffer, for the Security object's Secret Key resource.

use std::fmt;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use zeroize::Zeroizing;

/// Why a certificate, key or trust anchor was refused. Never carries key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The certificate bytes are not a DER X.509 certificate.
    #[error("{what} is not a DER X.509 certificate ({len} bytes): {detail}")]
    NotCertificate {
        /// Which certificate (e.g. "the client certificate").
        what: &'static str,
        /// Its length.
        len: usize,
        /// OpenSSL's reason.
        detail: String,
    },
    /// The key bytes are neither PKCS#8 nor SEC1 DER.
    #[error("the private key ({len} bytes) is neither PKCS#8 (RFC 5958) nor SEC1 (RFC 5915) DER")]
    NotPrivateKey {
        /// Its length.
        len: usize,
    },
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// No trust anchor: the peer could not be verified.
    #[error("no trust anchor: give a CA certificate or the peer's certificate")]
    NoTrustAnchor,
    /// Generating a key or certificate failed.
    #[error("OpenSSL failed {during}: {detail}")]
    OpenSsl {
        /// The operation.
        during: &'static str,
        /// OpenSSL's error stack, rendered.
        detail: String,
    },
}

fn ossl(during: &'static str) -> impl Fn(openssl::error::ErrorStack) -> CertificateError {
    move |e| CertificateError::OpenSsl {
        during,
        detail: e.to_string(),
    }
}

/// A DER X.509 certificate (public: printing it is fine).
#[derive(Clone)]
pub struct Certificate {
    x509: X509,
    der: Vec<u8>,
}

impl Certificate {
    /// Parses DER; `what` names the certificate in the error.
    pub fn from_der(what: &'static str, der: &[u8]) -> Result<Self, CertificateError> {
        let x509 = X509::from_der(der).map_err(|e| CertificateError::NotCertificate {
            what,
            len: der.len(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            x509,
            der: der.to_vec(),
        })
    }

    fn from_x509(x509: X509) -> Result<Self, CertificateError> {
        let der = x509.to_der().map_err(ossl("encoding a certificate"))?;
        Ok(Self { x509, der })
    }

    /// The DER bytes (what /0/x/3 or /0/x/4 holds).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's Common Name, if it has one in UTF-8.
    pub fn subject_cn(&self) -> Option<String> {
        subject_cn(&self.x509)
    }

    pub(crate) fn x509(&self) -> &X509 {
        &self.x509
    }
}

/// The subject CN of `x509` (the first, as text).
pub(crate) fn subject_cn(x509: &openssl::x509::X509Ref) -> Option<String> {
    x509.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate(CN={:?}, sha256:{}…)",
            self.subject_cn().unwrap_or_default(),
            hex::encode(&openssl::sha::sha256(&self.der)[..4])
        )
    }
}

/// A private key: never printed, its DER only handed out zeroizing.
#[derive(Clone)]
pub struct PrivateKey(PKey<Private>);

impl PrivateKey {
    /// Parses PKCS#8 (RFC 5958) or SEC1 (RFC 5915) DER.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        // d2i_AutoPrivateKey: unencrypted PKCS#8 or the traditional form.
        PKey::private_key_from_der(der)
            .map(Self)
            .map_err(|_| CertificateError::NotPrivateKey { len: der.len() })
    }

    /// A fresh ECDSA P-256 key (RFC 7925 §4.4.1: secp256r1).
    pub fn generate_p256() -> Result<Self, CertificateError> {
        let group =
            EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ossl("loading P-256"))?;
        let ec = EcKey::generate(&group).map_err(ossl("generating a P-256 key"))?;
        PKey::from_ec_key(ec)
            .map(Self)
            .map_err(ossl("wrapping a P-256 key"))
    }

    /// PKCS#8 DER (RFC 5958 `PrivateKeyInfo`), what meterbench writes to the
    /// Security object's Secret Key (/0/x/5). Zeroed when dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CertificateError> {
        self.0
            .private_key_to_pkcs8()
            .map(Zeroizing::new)
            .map_err(ossl("encoding the private key as PKCS#8"))
    }

    /// First 8 hex digits of SHA-256 of the public key (SubjectPublicKeyInfo
    /// DER): safe to log, tells keys apart.
    pub fn fingerprint(&self) -> String {
        match self.0.public_key_to_der() {
            Ok(spki) => hex::encode(&openssl::sha::sha256(&spki)[..4]),
            Err(_) => "unknown".into(),
        }
    }

    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public sha256:{}…)", self.fingerprint())
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "public sha256:{}…", self.fingerprint())
    }
}

/// One endpoint's certificate, its private key and the trust anchors its
/// peer must chain to.
#[derive(Clone)]
pub struct CertificateCredential {
    /// This endpoint's certificate.
    pub certificate: Certificate,
    /// Its private key; never printed.
    pub key: PrivateKey,
    /// CA certificates, or the peer's own certificate pinned.
    pub trust: Vec<Certificate>,
}

impl CertificateCredential {
    /// Checks that `key` belongs to `certificate` and that there is a trust
    /// anchor.
    pub fn new(
        certificate: Certificate,
        key: PrivateKey,
        trust: Vec<Certificate>,
    ) -> Result<Self, CertificateError> {
        let public = certificate
            .x509
            .public_key()
            .map_err(ossl("reading the certificate's public key"))?;
        if !key.0.public_eq(&public) {
            return Err(CertificateError::KeyMismatch);
        }
        if trust.is_empty() {
            return Err(CertificateError::NoTrustAnchor);
        }
        Ok(Self {
            certificate,
            key,
            trust,
        })
    }

    /// From the Security object's resources in certificate mode: /0/x/3
    /// (own certificate), /0/x/5 (private key, PKCS#8 or SEC1) and /0/x/4
    /// (the server's certificate, pinned).
    pub fn from_security_object(
        own_certificate: &[u8],
        secret_key: &[u8],
        server_certificate: &[u8],
    ) -> Result<Self, CertificateError> {
        Self::new(
            Certificate::from_der("the client certificate (/0/x/3)", own_certificate)?,
            PrivateKey::from_der(secret_key)?,
            vec![Certificate::from_der(
                "the server certificate (/0/x/4)",
                server_certificate,
            )?],
        )
    }
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .field("trust", &self.trust)
            .finish()
    }
}

/// What a certificate issued by [`CertificateAuthority`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A DTLS server (extendedKeyUsage serverAuth, RFC 5280 §4.2.1.12).
    Server,
    /// A DTLS client (clientAuth).
    Client,
}

/// Certificates live this long: a run, with room for a long soak; nothing
/// issued here is meant to outlive it.
const VALIDITY_DAYS: u32 = 7;

/// A certificate authority made for one run: a fresh P-256 key and a
/// self-signed CA certificate that signs the run's server and device
/// certificates. Nothing of it is stored; the key dies with the process.
pub struct CertificateAuthority {
    certificate: Certificate,
    key: PrivateKey,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish()
    }
}

impl CertificateAuthority {
    /// A new CA named `CN=<name>`.
    pub fn generate(name: &str) -> Result<Self, CertificateError> {
        let key = PrivateKey::generate_p256()?;
        let mut b = builder(name, &key)?;
        let issuer = name_of(name)?;
        b.set_issuer_name(&issuer)
            .map_err(ossl("setting the issuer"))?;
        let ca = BasicConstraints::new()
            .critical()
            .ca()
            .pathlen(0)
            .build()
            .map_err(ossl("building basicConstraints"))?;
        b.append_extension(ca)
            .map_err(ossl("adding basicConstraints"))?;
        let usage = KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .map_err(ossl("building keyUsage"))?;
        b.append_extension(usage).map_err(ossl("adding keyUsage"))?;
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .map_err(ossl("building subjectKeyIdentifier"))?;
        b.append_extension(ski)
            .map_err(ossl("adding subjectKeyIdentifier"))?;
        b.sign(key.pkey(), MessageDigest::sha256())
            .map_err(ossl("self-signing the CA certificate"))?;
        Ok(Self {
            certificate: Certificate::from_x509(b.build())?,
            key,
        })
    }

    /// The CA certificate (a trust anchor for what it issued).
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// A fresh P-256 key and a certificate for `CN=<cn>` signed by this CA.
    pub fn issue(
        &self,
        cn: &str,
        usage: Usage,
    ) -> Result<(Certificate, PrivateKey), CertificateError> {
        let key = PrivateKey::generate_p256()?;
        let mut b = builder(cn, &key)?;
        b.set_issuer_name(self.certificate.x509.subject_name())
            .map_err(ossl("setting the issuer"))?;
        b.append_extension(
            BasicConstraints::new()
                .build()
                .map_err(ossl("building basicConstraints"))?,
        )
        .map_err(ossl("adding basicConstraints"))?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .map_err(ossl("building keyUsage"))?,
        )
        .map_err(ossl("adding keyUsage"))?;
        let mut eku = ExtendedKeyUsage::new();
        match usage {
            Usage::Server => eku.server_auth(),
            Usage::Client => eku.client_auth(),
        };
        b.append_extension(eku.build().map_err(ossl("building extendedKeyUsage"))?)
            .map_err(ossl("adding extendedKeyUsage"))?;
        b.sign(self.key.pkey(), MessageDigest::sha256())
            .map_err(ossl("signing a certificate"))?;
        Ok((Certificate::from_x509(b.build())?, key))
    }
}

fn name_of(cn: &str) -> Result<openssl::x509::X509Name, CertificateError> {
    let mut name = X509NameBuilder::new().map_err(ossl("creating a name"))?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)
        .map_err(ossl("setting the common name"))?;
    Ok(name.build())
}

/// Version 3, random serial, subject `CN=<cn>`, public key of `key`,
/// valid from an hour ago (clock skew) for [`VALIDITY_DAYS`].
fn builder(cn: &str, key: &PrivateKey) -> Result<X509Builder, CertificateError> {
    let mut b = X509Builder::new().map_err(ossl("creating a certificate"))?;
    b.set_version(2).map_err(ossl("setting the version"))?;
    let mut serial = BigNum::new().map_err(ossl("allocating the serial"))?;
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(ossl("drawing the serial"))?;
    let serial = serial
        .to_asn1_integer()
        .map_err(ossl("encoding the serial"))?;
    b.set_serial_number(&serial)
        .map_err(ossl("setting the serial"))?;
    let subject = name_of(cn)?;
    b.set_subject_name(&subject)
        .map_err(ossl("setting the subject"))?;
    b.set_pubkey(key.pkey()).map_err(ossl("setting the key"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let not_before = Asn1Time::from_unix(i64::try_from(now.saturating_sub(3600)).unwrap_or(0))
        .map_err(ossl("setting notBefore"))?;
    let not_after = Asn1Time::days_from_now(VALIDITY_DAYS).map_err(ossl("setting notAfter"))?;
    b.set_not_before(&not_before)
        .map_err(ossl("setting notBefore"))?;
    b.set_not_after(&not_after)
        .map_err(ossl("setting notAfter"))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_the_cn_and_verify_against_the_ca() {
        let ca = CertificateAuthority::generate("run CA").unwrap();
        let (cert, key) = ca.issue("meter-1", Usage::Client).unwrap();
        assert_eq!(cert.subject_cn().as_deref(), Some("meter-1"));
        let ca_key = ca.certificate().x509().public_key().unwrap();
        assert!(cert.x509().verify(&ca_key).unwrap());
        // The credential accepts its own key and refuses another.
        assert!(CertificateCredential::new(
            cert.clone(),
            key.clone(),
            vec![ca.certificate().clone()]
        )
        .is_ok());
        let other = PrivateKey::generate_p256().unwrap();
        assert_eq!(
            CertificateCredential::new(cert.clone(), other, vec![ca.certificate().clone()])
                .unwrap_err(),
            CertificateError::KeyMismatch
        );
        assert_eq!(
            CertificateCredential::new(cert, key, vec![]).unwrap_err(),
            CertificateError::NoTrustAnchor
        );
    }

    #[test]
    fn the_key_round_trips_as_pkcs8_and_sec1_der() {
        let key = PrivateKey::generate_p256().unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        // PKCS#8 PrivateKeyInfo (RFC 5958 §2): SEQUENCE { INTEGER 0, AlgorithmIdentifier { id-ecPublicKey ...
        assert_eq!(&pkcs8[..2], &[0x30, 0x81]);
        assert_eq!(&pkcs8[3..6], &[0x02, 0x01, 0x00]);
        let back = PrivateKey::from_der(&pkcs8).unwrap();
        assert_eq!(back.fingerprint(), key.fingerprint());
        // SEC1 ECPrivateKey (RFC 5915 §3): SEQUENCE { INTEGER 1, OCTET STRING ...
        let sec1 = key.pkey().private_key_to_der().unwrap();
        assert_eq!(&sec1[2..5], &[0x02, 0x01, 0x01]);
        assert_eq!(
            PrivateKey::from_der(&sec1).unwrap().fingerprint(),
            key.fingerprint()
        );
        assert_eq!(
            PrivateKey::from_der(b"not a key").unwrap_err(),
            CertificateError::NotPrivateKey { len: 9 }
        );
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let ca = CertificateAuthority::generate("run CA").unwrap();
        let (cert, key) = ca.issue("meter-1", Usage::Client).unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let cred = CertificateCredential::new(cert, key, vec![ca.certificate().clone()]).unwrap();
        let shown = format!("{cred:?} {} {ca:?}", cred.key);
        // The private scalar is the 32 bytes after `04 20` in the PKCS#8 body.
        let at = pkcs8
            .windows(2)
            .position(|w| w == [0x04, 0x20])
            .expect("private key octet string");
        let scalar = hex::encode(&pkcs8[at + 2..at + 2 + 32]);
        assert!(!shown.contains(&scalar[..16]), "{shown}");
        assert!(!shown.to_lowercase().contains(&scalar[..16]), "{shown}");
        assert!(shown.contains("CN=\"meter-1\""), "{shown}");
    }
}
