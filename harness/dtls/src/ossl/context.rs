//! OpenSSL context setup shared by the server and the client: DTLS 1.2 only,
//! the configured PSK suites, no session tickets, no renegotiation, MTU set by
//! us rather than queried from a socket we do not have.

use std::sync::OnceLock;

use openssl::ex_data::Index;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;

use crate::certificate::CertificateCredential;
use crate::config::{ClientConfig, ClientCredential, ServerConfig};
use crate::error::Error;
use crate::secret::{check_identity, SecretKey};
use crate::suite::CipherSuite;

/// Per-`SSL` slots the callbacks write into.
pub(crate) struct Indices {
    /// The identity the client claimed in ClientKeyExchange.
    pub(crate) claimed_identity: Index<Ssl, String>,
    /// Set when the lookup knew no key for the claimed identity.
    pub(crate) lookup_failed: Index<Ssl, bool>,
    /// The cookie the stateless path already verified for this SSL.
    pub(crate) expected_cookie: Index<Ssl, Vec<u8>>,
    /// The key the lookup gave for the claimed identity: what the session
    /// authenticates with, so a revoked or replaced key can be told apart.
    pub(crate) used_key: Index<Ssl, SecretKey>,
}

static INDICES: OnceLock<Result<Indices, String>> = OnceLock::new();

/// The process-wide ex_data indices (OpenSSL indices are global; allocating
/// them per endpoint would leak).
pub(crate) fn indices() -> Result<&'static Indices, Error> {
    INDICES
        .get_or_init(|| {
            Ok(Indices {
                claimed_identity: Ssl::new_ex_index().map_err(|e| e.to_string())?,
                lookup_failed: Ssl::new_ex_index().map_err(|e| e.to_string())?,
                expected_cookie: Ssl::new_ex_index().map_err(|e| e.to_string())?,
                used_key: Ssl::new_ex_index().map_err(|e| e.to_string())?,
            })
        })
        .as_ref()
        .map_err(|detail| Error::OpenSsl {
            during: "allocating SSL ex_data indices",
            detail: detail.clone(),
        })
}

fn base(suites: &[CipherSuite]) -> Result<SslContextBuilder, Error> {
    if suites.is_empty() {
        return Err(Error::NoCipherSuite);
    }
    let mut ctx = SslContext::builder(SslMethod::dtls())
        .map_err(|e| Error::openssl("creating the DTLS context", e))?;
    ctx.set_min_proto_version(Some(SslVersion::DTLS1_2))
        .map_err(|e| Error::openssl("setting the minimum version", e))?;
    ctx.set_max_proto_version(Some(SslVersion::DTLS1_2))
        .map_err(|e| Error::openssl("setting the maximum version", e))?;
    ctx.set_cipher_list(&CipherSuite::cipher_list(suites))
        .map_err(|e| Error::openssl("setting the cipher list", e))?;
    ctx.set_options(
        SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET | SslOptions::NO_RENEGOTIATION,
    );
    ctx.set_session_cache_mode(SslSessionCacheMode::OFF);
    // No SSL_MODE_RELEASE_BUFFERS: it left DTLS sessions' record buffers
    // allocated (measured, docs/perf/figures.md "DTLS session memory");
    // `Connection` frees them itself while a session is idle.
    Ok(ctx)
}

/// Installs `credential`: own certificate and key, and a store of its trust
/// anchors. `X509_V_FLAG_PARTIAL_CHAIN` lets a trust anchor that is not
/// self-signed (a pinned end-entity certificate, as the Security object's
/// /0/x/4 gives a client) end the chain.
fn use_certificate(
    ctx: &mut SslContextBuilder,
    credential: &CertificateCredential,
    mode: SslVerifyMode,
) -> Result<(), Error> {
    ctx.set_certificate(credential.certificate.x509())
        .map_err(|e| Error::openssl("setting the certificate", e))?;
    ctx.set_private_key(credential.key.pkey())
        .map_err(|e| Error::openssl("setting the private key", e))?;
    ctx.check_private_key()
        .map_err(|e| Error::openssl("checking the private key against the certificate", e))?;
    let mut store =
        X509StoreBuilder::new().map_err(|e| Error::openssl("creating the trust store", e))?;
    for anchor in &credential.trust {
        store
            .add_cert(anchor.x509().clone())
            .map_err(|e| Error::openssl("adding a trust anchor", e))?;
    }
    store
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(|e| Error::openssl("allowing pinned trust anchors", e))?;
    ctx.set_cert_store(store.build());
    ctx.set_verify(mode);
    Ok(())
}

/// Server context: PSK lookup through the caller's callback, cookie
/// verification against what the stateless path already checked; with a
/// certificate, the certificate suite too and client certificates required
/// (a PSK suite sends no CertificateRequest, RFC 4279 §2, so PSK clients
/// are unaffected).
pub(crate) fn server(config: &ServerConfig) -> Result<SslContext, Error> {
    let idx = indices()?;
    let mut suites = config.suites.clone();
    if config.certificate.is_some() {
        for s in CipherSuite::CERTIFICATE {
            if !suites.contains(&s) {
                suites.push(s);
            }
        }
    }
    let mut ctx = base(&suites)?;
    if let Some(credential) = &config.certificate {
        use_certificate(
            &mut ctx,
            credential,
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        )?;
    }
    let lookup = config.psk_lookup.clone();
    ctx.set_psk_server_callback(move |ssl, identity, psk_out| {
        let identity = identity
            .and_then(|id| std::str::from_utf8(id).ok())
            .unwrap_or("");
        ssl.set_ex_data(idx.claimed_identity, identity.to_owned());
        let key = if check_identity(identity.as_bytes()).is_ok() {
            lookup(identity)
        } else {
            None
        };
        match key {
            Some(key) if key.len() <= psk_out.len() => {
                psk_out[..key.len()].copy_from_slice(key.expose());
                let len = key.len();
                ssl.set_ex_data(idx.used_key, key);
                Ok(len)
            }
            _ => {
                // 0 makes OpenSSL send unknown_psk_identity (RFC 4279 §2).
                ssl.set_ex_data(idx.lookup_failed, true);
                Ok(0)
            }
        }
    });
    // The stateless path answers cookie-less hellos itself and only hands
    // OpenSSL hellos whose cookie it verified; these callbacks exist because
    // DTLSv1_listen requires them.
    ctx.set_cookie_generate_cb(|_ssl, _out| Err(openssl::error::ErrorStack::get()));
    ctx.set_cookie_verify_cb(move |ssl, cookie| {
        ssl.ex_data(idx.expected_cookie).is_some_and(|expected| {
            expected.len() == cookie.len() && openssl::memcmp::eq(expected, cookie)
        })
    });
    Ok(ctx.build())
}

/// Client context: sends the configured identity and key, or the
/// certificate, verifying the server's against the trust anchors.
pub(crate) fn client(config: &ClientConfig) -> Result<SslContext, Error> {
    let psk = match &config.credential {
        ClientCredential::Psk(psk) => psk,
        ClientCredential::Certificate(credential) => {
            let mut ctx = base(&config.suites)?;
            use_certificate(&mut ctx, credential, SslVerifyMode::PEER)?;
            return Ok(ctx.build());
        }
    };
    check_identity(psk.identity.as_bytes())?;
    let mut ctx = base(&config.suites)?;
    let psk = psk.clone();
    ctx.set_psk_client_callback(move |_ssl, _hint, identity_out, psk_out| {
        let identity = psk.identity.as_bytes();
        let key = psk.key.expose();
        // The identity is written as a C string.
        if identity.len() >= identity_out.len() || key.len() > psk_out.len() {
            return Ok(0);
        }
        identity_out[..identity.len()].copy_from_slice(identity);
        identity_out[identity.len()] = 0;
        psk_out[..key.len()].copy_from_slice(key);
        Ok(key.len())
    });
    Ok(ctx.build())
}
