//! What is fuzzed: every decoder of untrusted bytes and every datagram
//! entry of the protocol crates. Each target is a function of one input
//! that must return (an error inside is fine) and never panic or hang.
//!
//! Bytes reach meterbench from three places, and each has targets here:
//! the network (CoAP, LwM2M content formats, link format, registration
//! parameters, DTLS records, and the datagram entries of the server, the
//! Bootstrap-Server and the client role the virtual meter runs) and the
//! modem's serial line (the AT engine) — and the smartcard's bootstrap
//! file, which the virtual meter reads at boot.

pub mod at;
pub mod bootstrap;
pub mod client;
pub mod coap;
pub mod driver;
pub mod dtls;
pub mod format;
pub mod link;
pub mod registration;
pub mod server;
pub mod smartcard;
pub mod testbed;

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Also its directory under `corpus/` and `regressions/`.
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&[u8]),
    /// The input is a [`frames`](crate::frames) script.
    pub framed: bool,
    pub dictionary: &'static [&'static [u8]],
    /// Longest input generated.
    pub max_len: usize,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

/// Payloads and datagrams: a CoAP datagram over UDP is at most 1152 bytes
/// in practice (RFC 7252 §4.6) but a decoder must survive any length.
const PAYLOAD_MAX: usize = 4096;
/// Scripts hold conversations of a few dozen datagrams.
const SCRIPT_MAX: usize = 16 * 1024;

const fn payload(
    name: &'static str,
    about: &'static str,
    run: fn(&[u8]),
    dictionary: &'static [&'static [u8]],
) -> Target {
    Target {
        name,
        about,
        run,
        framed: false,
        dictionary,
        max_len: PAYLOAD_MAX,
    }
}

const fn script(
    name: &'static str,
    about: &'static str,
    run: fn(&[u8]),
    dictionary: &'static [&'static [u8]],
) -> Target {
    Target {
        name,
        about,
        run,
        framed: true,
        dictionary,
        max_len: SCRIPT_MAX,
    }
}

/// Every target, in the order a pass runs them. `lwm2m-json` is listed
/// only when the library decodes Content-Format 11543.
pub fn all() -> Vec<Target> {
    let mut targets = vec![
        payload(
            "text",
            "plain text decoder (Core §7.4.1)",
            format::text,
            format::TEXT_DICTIONARY,
        ),
        payload(
            "opaque",
            "opaque decoder (Core §7.4.2)",
            format::opaque,
            &[],
        ),
        payload(
            "cbor",
            "single-value CBOR decoder (Core §7.4.6, RFC 8949)",
            format::cbor,
            format::CBOR_DICTIONARY,
        ),
        payload(
            "tlv",
            "TLV decoder (Core §7.4.3)",
            format::tlv,
            format::TLV_DICTIONARY,
        ),
        payload(
            "senml-json",
            "SenML JSON decoder (Core §7.4.4, RFC 8428)",
            format::senml_json,
            format::JSON_DICTIONARY,
        ),
        payload(
            "senml-cbor",
            "SenML CBOR decoder (Core §7.4.5, RFC 8428)",
            format::senml_cbor,
            format::CBOR_DICTIONARY,
        ),
        payload(
            "lwm2m-cbor",
            "LwM2M CBOR decoder (1.2 Core §7.4.6)",
            format::lwm2m_cbor,
            format::CBOR_DICTIONARY,
        ),
    ];
    if format::lwm2m_json_format().is_some() {
        targets.push(payload(
            "lwm2m-json",
            "LwM2M 1.0 JSON decoder (1.0 Core §6.4.4)",
            format::lwm2m_json,
            format::JSON_DICTIONARY,
        ));
    }
    targets.extend([
        payload(
            "link-format",
            "CoRE link-format parser and Bootstrap-Discover reader (RFC 6690)",
            link::run,
            link::DICTIONARY,
        ),
        payload(
            "registration-params",
            "Register/Update parameter parser and checks (Core §6.2.1)",
            registration::run,
            registration::DICTIONARY,
        ),
        payload(
            "coap-wire",
            "CoAP message decoder, summary and redaction (RFC 7252 §3)",
            coap::wire,
            coap::DICTIONARY,
        ),
        script(
            "coap-exchange",
            "CoAP message layer: MessageLayer::handle_datagram/handle_timeout",
            coap::exchange,
            coap::DICTIONARY,
        ),
        script(
            "server",
            "LwM2M server role: Server::handle_datagram/handle_timeout",
            server::run,
            coap::DICTIONARY,
        ),
        script(
            "bootstrap-server",
            "Bootstrap-Server core: BootstrapServer::handle_datagram/handle_timeout",
            bootstrap::run,
            coap::DICTIONARY,
        ),
        script(
            "client",
            "LwM2M client role, registering: Client::handle_datagram/handle_timeout",
            client::run,
            coap::DICTIONARY,
        ),
        script(
            "client-bootstrap",
            "LwM2M client role, bootstrapping first",
            client::run_bootstrap,
            coap::DICTIONARY,
        ),
        payload(
            "smartcard-bootstrap",
            "EF LwM2M_Bootstrap file decoder (Core Appendix G.3.3)",
            smartcard::run,
            smartcard::DICTIONARY,
        ),
        payload(
            "at-line",
            "rig AT engine: line framing, finals, URCs (V.250 §5.7)",
            at::run,
            at::DICTIONARY,
        ),
        payload(
            "dtls-record",
            "DTLS record and ClientHello parsers (RFC 6347 §4.1, §4.2.1)",
            dtls::record,
            dtls::DICTIONARY,
        ),
        script(
            "dtls-server",
            "DTLS server path: OpensslServer::handle_datagram with a live client",
            dtls::server,
            dtls::DICTIONARY,
        ),
    ]);
    targets
}

/// The target called `name`.
pub fn find(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}
