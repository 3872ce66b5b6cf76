//! Keeping keys out of the message log and the pcap.
//!
//! Bootstrap-Write of /0/x (LwM2M 1.1 Core §6.1.7.4) carries the Secret Key
//! /0/x/5 (and maybe the SMS Binding Secret Key /0/x/8) in clear inside the
//! CoAP payload; every datagram the log or pcap records passes through
//! [`redact_datagram`] (stateless) or a [`Redactor`] (which also follows
//! requests to their responses by token, for Read responses and
//! notifications of /0). The copy they return has the secret's bytes — raw,
//! base64, base64url or hex, whichever the format used — overwritten in place
//! (zero bytes, base64 `A`, hex `0`), so the datagram keeps its length and
//! still decodes; a /0 payload that cannot be parsed is zeroed entirely.
//! The PSK identity /0/x/3 is not a secret and stays.
//!
//! [`crate::coap::summarize`] prints no payload values at all, so summaries
//! need no redaction.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use coap_lite::{CoapOption, Packet};

use super::account::{security, SECURITY_OBJECT};
use crate::coap::glance::Glance;
use crate::coap::{code, options, wire};
use crate::format::{self, ContentFormat};
use crate::model::Registry;
use crate::path::Path;
use crate::value::Value;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::core)
}

fn is_secret_resource(path: &Path) -> bool {
    path.object_id() == Some(SECURITY_OBJECT)
        && matches!(
            path.resource_id(),
            Some(security::SECRET_KEY | security::SMS_SECRET_KEY)
        )
}

/// A redacted copy of `datagram` when it carries a secret of the Security
/// object; `None` when there is nothing to hide (log it as it is). Requests
/// are judged by their Uri-Path; responses only by self-describing payloads
/// (SenML, LwM2M CBOR) — use a [`Redactor`] to cover TLV responses too.
pub fn redact_datagram(datagram: &[u8]) -> Option<Vec<u8>> {
    let packet = wire::decode(datagram).ok()?;
    let raw: u8 = packet.header.code.into();
    let path = if code::is_request(raw) {
        Some(request_path(&packet))
    } else {
        None
    };
    redact_with(datagram, &packet, path)
}

/// What the bytes alone show to hold no secret, without decoding: a request
/// whose first Uri-Path segment is not object 0 (the full path gives
/// "nothing to hide" for it, and no token to follow); any other message
/// without a payload; a response, not to a remembered /0 request, whose
/// Content-Format does not name its paths. Everything else, the full look.
fn holds_no_secret(glance: &Glance, remembered: impl Fn(&[u8]) -> bool) -> bool {
    if code::is_request(glance.header.code) {
        let first = glance.option(URI_PATH);
        return first.is_some_and(|segment| !could_be_object_zero(segment));
    }
    if glance.payload.is_empty() {
        return true;
    }
    if remembered(glance.token) {
        return false;
    }
    let format = glance
        .uint_option(CONTENT_FORMAT)
        .and_then(|cf| u16::try_from(cf).ok())
        .and_then(ContentFormat::from_code);
    !matches!(
        format,
        Some(
            ContentFormat::SenmlJson
                | ContentFormat::SenmlCbor
                | ContentFormat::Lwm2mCbor
                | ContentFormat::Lwm2mJson
        )
    )
}

/// A first Uri-Path segment that is, or may parse as, object id 0. The
/// path is parsed from the segments joined by `/` and each id as a `u16`,
/// which takes a leading `+`: up to a `/` inside the segment, an optional
/// `+` and then only zeros (or nothing). Anything else cannot point into
/// the Security object.
fn could_be_object_zero(segment: &[u8]) -> bool {
    let id = segment.split(|b| *b == b'/').next().unwrap_or_default();
    let id = id.strip_prefix(b"+").unwrap_or(id);
    id.iter().all(|b| *b == b'0')
}

const URI_PATH: u16 = 11;
const CONTENT_FORMAT: u16 = 12;

/// Where a request points, for redaction: `Some(path)` when the Uri-Path is
/// an LwM2M path; an unparsable path under "0" counts as `/0` (conservative).
fn request_path(packet: &Packet) -> Target {
    let segments = options::strings(packet, CoapOption::UriPath);
    match Path::from_segments(&segments) {
        Ok(p) => Target::Path(p),
        Err(_) if segments.first().is_some_and(|s| s == "0") => Target::Path(Path::object(0)),
        Err(_) => Target::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Path(Path),
    Other,
}

fn redact_with(datagram: &[u8], packet: &Packet, target: Option<Target>) -> Option<Vec<u8>> {
    let payload = &packet.payload;
    if payload.is_empty() {
        return None;
    }
    let cf = options::content_format(packet);
    let format = cf.and_then(ContentFormat::from_code);
    if format == Some(ContentFormat::LinkFormat) {
        // Discover answers carry URIs and ids, never resource values.
        return None;
    }
    let path = match target {
        Some(Target::Path(p)) => Some(p),
        Some(Target::Other) => return None,
        None => None,
    };
    let under_security =
        path.is_some_and(|p| p.depth() == 0 || p.object_id() == Some(SECURITY_OBJECT));
    if path.is_some() && !under_security {
        return None;
    }
    // One block of a body sent block-wise (RFC 7959) is a cut of it that
    // may decode as something else: never trusted to name its secrets.
    let block = packet.get_option(CoapOption::Block1).is_some()
        || packet.get_option(CoapOption::Block2).is_some();
    let redacted = match path {
        Some(p) if is_secret_resource(&p) || block => Some(vec![0; payload.len()]),
        Some(p) => {
            Some(redact_payload(format, &p, payload).unwrap_or_else(|| vec![0; payload.len()]))
        }
        None => {
            // A response of unknown origin: only self-describing formats name their paths.
            match format {
                Some(
                    f @ (ContentFormat::SenmlJson
                    | ContentFormat::SenmlCbor
                    | ContentFormat::Lwm2mCbor
                    | ContentFormat::Lwm2mJson),
                ) => {
                    let records = format::decode(f, &Path::ROOT, payload, registry()).ok()?;
                    if !records.iter().any(|r| is_secret_resource(&r.path)) {
                        return None;
                    }
                    Some(
                        redact_payload(Some(f), &Path::ROOT, payload)
                            .unwrap_or_else(|| vec![0; payload.len()]),
                    )
                }
                _ => None,
            }
        }
    }?;
    if redacted == *payload {
        return None;
    }
    let mut out = datagram.to_vec();
    let start = out.len() - payload.len();
    out[start..].copy_from_slice(&redacted);
    Some(out)
}

/// The payload with every secret value blanked; `None` when it cannot be
/// parsed or a secret could not be found in it (the caller zeroes it all).
fn redact_payload(format: Option<ContentFormat>, base: &Path, payload: &[u8]) -> Option<Vec<u8>> {
    let format = format?;
    let records = format::decode(format, base, payload, registry()).ok()?;
    let mut out = payload.to_vec();
    for r in records.iter().filter(|r| is_secret_resource(&r.path)) {
        let secret: Vec<u8> = match &r.value {
            Value::Opaque(b) => b.clone(),
            Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_text().into_bytes(),
        };
        if secret.is_empty() {
            continue;
        }
        // Fillers that keep the payload decodable: zero bytes, base64 'A'
        // (zero bits), hex '0'.
        let mut found = replace_all(&mut out, &secret, 0);
        for text in [
            encode_base64(&secret, STD, true),
            encode_base64(&secret, STD, false),
            encode_base64(&secret, URL, true),
            encode_base64(&secret, URL, false),
        ] {
            found |= replace_all(&mut out, text.as_bytes(), b'A');
        }
        for text in [hex::encode(&secret), hex::encode_upper(&secret)] {
            found |= replace_all(&mut out, text.as_bytes(), b'0');
        }
        if !found {
            return None;
        }
    }
    Some(out)
}

/// Overwrites every occurrence of `needle` in `hay` with `fill`; whether any was found.
fn replace_all(hay: &mut [u8], needle: &[u8], fill: u8) -> bool {
    if needle.is_empty() || needle.len() > hay.len() {
        return false;
    }
    let mut found = false;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if &hay[i..i + needle.len()] == needle {
            hay[i..i + needle.len()].fill(fill);
            found = true;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    found
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 base64 in either alphabet: how text formats carry Opaque values.
fn encode_base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// How many request tokens a [`Redactor`] remembers.
const REMEMBERED: usize = 256;

/// Stateful redaction for a message log that sees both directions: it
/// remembers the tokens of requests to /0 (Read, Observe) and redacts the
/// responses and notifications that carry those tokens, whatever their format.
#[derive(Debug, Default)]
pub struct Redactor {
    tokens: HashMap<Vec<u8>, Path>,
    order: VecDeque<Vec<u8>>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`redact_datagram`], also covering responses to /0 requests seen earlier.
    pub fn redact(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        if let Ok(glance) = Glance::of(datagram) {
            if holds_no_secret(&glance, |token| self.tokens.contains_key(token)) {
                return None;
            }
        }
        self.redact_decoded(datagram)
    }

    /// [`redact`](Self::redact) without the quick look: every datagram decoded.
    fn redact_decoded(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let packet = wire::decode(datagram).ok()?;
        let raw: u8 = packet.header.code.into();
        let token = packet.get_token().to_vec();
        if code::is_request(raw) {
            let target = request_path(&packet);
            if let Target::Path(p) = target {
                if p.object_id() == Some(SECURITY_OBJECT) && !token.is_empty() {
                    if self.tokens.insert(token.clone(), p).is_none() {
                        self.order.push_back(token);
                    }
                    while self.order.len() > REMEMBERED {
                        if let Some(old) = self.order.pop_front() {
                            self.tokens.remove(&old);
                        }
                    }
                }
            }
            return redact_with(datagram, &packet, Some(target));
        }
        let target = self.tokens.get(&token).copied().map(Target::Path);
        redact_with(datagram, &packet, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message as the log sees them: requests with paths that are, or
    /// only look like, object 0; responses that follow a remembered token
    /// or name their paths; payloads that carry a secret or none.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        let first = prop::sample::select(vec![
            None,
            Some("0"),
            Some("+0"),
            Some("00"),
            Some("+00"),
            Some("0/1"),
            Some(""),
            Some("3"),
            Some("+1"),
            Some("0a"),
            Some("rd"),
            Some("bs"),
        ]);
        let rest = prop::sample::select(vec![vec![], vec!["1"], vec!["1", "5"], vec!["x"]]);
        let code =
            prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x04, 0x44, 0x45, 0x41, 0x84, 0x00]);
        let token = prop::sample::select(vec![vec![], vec![1u8], vec![2u8, 2]]);
        let format = prop::sample::select(vec![
            None,
            Some(0u16),
            Some(40),
            Some(42),
            Some(110),
            Some(112),
            Some(11542),
            Some(11543),
            Some(11544),
        ]);
        let payload = prop::sample::select(vec![
            vec![],
            // TLV: /x/5 (Secret Key) = de ad be ef.
            vec![0xc4, 0x05, 0xde, 0xad, 0xbe, 0xef],
            br#"[{"bn":"/0/1/","n":"5","vd":"3q2-7w"}]"#.to_vec(),
            br#"[{"bn":"/3/0/","n":"0","vs":"maker"}]"#.to_vec(),
            vec![0x42, 0x00],
        ]);
        (first, rest, code, token, format, payload, any::<bool>()).prop_map(
            |(first, rest, code, token, format, payload, block)| {
                let mut p = Packet::new();
                p.header.code = coap_lite::MessageClass::from(code);
                p.set_token(token);
                if let Some(first) = first {
                    let mut segments = vec![first];
                    segments.extend(rest);
                    options::add_strings(&mut p, CoapOption::UriPath, &segments);
                }
                if let Some(cf) = format {
                    options::set_uint(&mut p, CoapOption::ContentFormat, u32::from(cf));
                }
                if block {
                    p.add_option(CoapOption::Block2, vec![0x08]);
                }
                p.payload = payload;
                p.to_bytes().unwrap()
            },
        )
    }

    proptest! {
        /// The quick look only ever skips what the full decode would have
        /// logged as it is: for any run of messages, the two answer alike.
        #[test]
        fn the_quick_look_never_changes_what_is_redacted(
            run in prop::collection::vec(message(), 1..12)
        ) {
            let mut quick = Redactor::new();
            let mut full = Redactor::new();
            for datagram in &run {
                prop_assert_eq!(
                    quick.redact(datagram),
                    full.redact_decoded(datagram),
                    "{:02x?}", datagram
                );
            }
        }
    }

    #[test]
    fn a_write_to_object_0_spelt_with_a_plus_is_still_redacted() {
        // `+0` parses as object 0 (Rust's u16 parse takes the sign): the
        // quick look must not take it for another object. (`00` is no
        // LwM2M path at all; the property above checks it is logged alike.)
        for first in ["+0", "0"] {
            let mut p = Packet::new();
            p.header.code = coap_lite::MessageClass::Request(coap_lite::RequestType::Put);
            options::add_strings(&mut p, CoapOption::UriPath, &[first, "1"]);
            options::set_uint(&mut p, CoapOption::ContentFormat, 11542);
            p.payload = vec![0xc4, 0x05, 0xde, 0xad, 0xbe, 0xef];
            let datagram = p.to_bytes().unwrap();
            let logged = Redactor::new().redact(&datagram).expect("redacted");
            assert!(
                !logged.windows(4).any(|w| w == [0xde, 0xad, 0xbe, 0xef]),
                "{first}: {logged:02x?}"
            );
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(encode_base64(b"foobar", STD, true), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fo", STD, true), "Zm8=");
        assert_eq!(encode_base64(b"f", URL, false), "Zg");
        assert_eq!(encode_base64(&[0xfb, 0xff], URL, false), "-_8");
    }

    #[test]
    fn replace_all_blanks_every_occurrence() {
        let mut hay = b"xxabcyyabc".to_vec();
        assert!(replace_all(&mut hay, b"abc", b'*'));
        assert_eq!(hay, b"xx***yy***");
        assert!(!replace_all(&mut hay, b"q", b'*'));
    }

    #[test]
    fn a_block_of_a_security_write_is_blanked_whole() {
        // The second Block1 block of a Bootstrap-Write of /0/1 (RFC 7959
        // §2.5): a cut of the key's bytes that happens to decode as TLV
        // naming no secret (`c1 01 2a c1 02 07`: /0/1/1 = 42, /0/1/2 = 7)
        // must not be trusted to say where the key is.
        let mut p = Packet::new();
        p.header.code = coap_lite::MessageClass::Request(coap_lite::RequestType::Put);
        options::add_strings(&mut p, CoapOption::UriPath, &["0", "1"]);
        options::set_uint(&mut p, CoapOption::ContentFormat, 11542);
        p.add_option(CoapOption::Block1, vec![0x15]);
        p.payload = vec![0xc1, 0x01, 0x2a, 0xc1, 0x02, 0x07];
        let datagram = p.to_bytes().unwrap();
        let redacted = redact_datagram(&datagram).expect("redacted");
        let q = Packet::from_bytes(&redacted).unwrap();
        assert_eq!(q.payload, vec![0; 6]);
    }
}
