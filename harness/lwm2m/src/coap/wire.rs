//! Strict decoding and encoding of CoAP messages (RFC 7252 §3).
//!
//! coap-lite's decoder is lenient: it accepts any version, an Empty message
//! with a token or payload, and a payload marker followed by nothing. RFC 7252
//! calls all of these message format errors (§3, §4.1), which a CON must get a
//! Reset for and anything else is silently dropped; so every datagram passes
//! through [`decode`] here, which adds those checks and says what was wrong.

use coap_lite::{MessageType, Packet};

/// Largest UDP payload we encode (IPv4 limit); Block-wise transfer, not this
/// codec, is what keeps messages small on constrained links.
pub const MAX_DATAGRAM: usize = 65_507;

/// Why a datagram is not a CoAP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{len} bytes is shorter than the 4-byte header")]
    TooShort { len: usize },
    #[error("version {0}, only version 1 exists")]
    Version(u8),
    #[error("token length {0} is reserved (9-15)")]
    TokenLength(u8),
    #[error("token length {tkl} runs past the end of the {len}-byte datagram")]
    Truncated { tkl: u8, len: usize },
    #[error("bad option encoding: {0}")]
    Options(String),
    #[error("Empty message (0.00) with {0} bytes after the header")]
    EmptyWithContent(usize),
    #[error("payload marker 0xFF followed by no payload")]
    EmptyPayload,
    #[error("code {class}.{detail:02} is in a reserved class")]
    ReservedClass { class: u8, detail: u8 },
    #[error("{0} message carries a request code")]
    RequestInAckOrReset(&'static str),
}

/// The fixed header, readable from any datagram of at least four bytes; what
/// a Reset for an undecodable message needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawHeader {
    pub version: u8,
    pub message_type: MessageType,
    pub token_length: u8,
    pub code: u8,
    pub message_id: u16,
}

impl RawHeader {
    pub fn peek(datagram: &[u8]) -> Option<RawHeader> {
        let b = datagram.get(..4)?;
        Some(RawHeader {
            version: b[0] >> 6,
            message_type: type_from_bits(b[0] >> 4),
            token_length: b[0] & 0x0f,
            code: b[1],
            message_id: u16::from_be_bytes([b[2], b[3]]),
        })
    }
}

fn type_from_bits(bits: u8) -> MessageType {
    match bits & 0b11 {
        0 => MessageType::Confirmable,
        1 => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    }
}

/// Three-letter name of a message type, as logs and Wireshark print it.
pub fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Confirmable => "CON",
        MessageType::NonConfirmable => "NON",
        MessageType::Acknowledgement => "ACK",
        MessageType::Reset => "RST",
    }
}

/// Decodes one datagram, rejecting every message format error RFC 7252 names.
pub fn decode(datagram: &[u8]) -> Result<Packet, WireError> {
    let header = RawHeader::peek(datagram).ok_or(WireError::TooShort {
        len: datagram.len(),
    })?;
    if header.version != 1 {
        return Err(WireError::Version(header.version));
    }
    if header.token_length > 8 {
        return Err(WireError::TokenLength(header.token_length));
    }
    if 4 + header.token_length as usize > datagram.len() {
        return Err(WireError::Truncated {
            tkl: header.token_length,
            len: datagram.len(),
        });
    }
    let class = header.code >> 5;
    if matches!(class, 1 | 6 | 7) {
        return Err(WireError::ReservedClass {
            class,
            detail: header.code & 0x1f,
        });
    }
    if header.code == 0 && datagram.len() > 4 {
        return Err(WireError::EmptyWithContent(datagram.len() - 4));
    }
    if super::code::is_request(header.code) {
        match header.message_type {
            MessageType::Acknowledgement => return Err(WireError::RequestInAckOrReset("ACK")),
            MessageType::Reset => return Err(WireError::RequestInAckOrReset("RST")),
            _ => {}
        }
    }
    let packet = Packet::from_bytes(datagram).map_err(|e| WireError::Options(e.to_string()))?;
    // A valid message re-encodes to the same bytes (option encodings are
    // unique); the one lossy case is a payload marker with nothing after it.
    if packet.payload.is_empty()
        && datagram.last() == Some(&0xff)
        && encode(&packet).len() != datagram.len()
    {
        return Err(WireError::EmptyPayload);
    }
    Ok(packet)
}

/// Encodes a message. Packets built by this crate always encode (tokens are at
/// most 8 bytes); an oversized one is logged and comes out empty, which no
/// peer will mistake for a message.
pub fn encode(packet: &Packet) -> Vec<u8> {
    match packet.to_bytes_with_limit(MAX_DATAGRAM) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "CoAP message could not be encoded");
            Vec::new()
        }
    }
}

/// An Empty message (ACK or RST) with the given id (RFC 7252 §4.2, §4.3).
pub fn empty(message_type: MessageType, message_id: u16) -> Vec<u8> {
    let t = match message_type {
        MessageType::Confirmable => 0,
        MessageType::NonConfirmable => 1,
        MessageType::Acknowledgement => 2,
        MessageType::Reset => 3,
    };
    let [hi, lo] = message_id.to_be_bytes();
    vec![0x40 | (t << 4), 0x00, hi, lo]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_each_format_error() {
        assert_eq!(decode(&[0x40, 0x01]), Err(WireError::TooShort { len: 2 }));
        assert_eq!(decode(&[0x80, 0x01, 0, 1]), Err(WireError::Version(2)));
        assert_eq!(decode(&[0x49, 0x01, 0, 1]), Err(WireError::TokenLength(9)));
        assert!(matches!(
            decode(&[0x44, 0x01, 0, 1, 0xaa]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(
            decode(&[0x40, 0x00, 0, 1, 0xff]),
            Err(WireError::EmptyWithContent(1))
        );
        assert_eq!(
            decode(&[0x40, 0x21, 0, 1]),
            Err(WireError::ReservedClass {
                class: 1,
                detail: 1
            })
        );
        assert_eq!(
            decode(&[0x40, 0x01, 0, 1, 0xff]),
            Err(WireError::EmptyPayload)
        );
        assert_eq!(
            decode(&[0x60, 0x01, 0, 1]),
            Err(WireError::RequestInAckOrReset("ACK"))
        );
        assert!(matches!(
            decode(&[0x40, 0x01, 0, 1, 0xf1]),
            Err(WireError::Options(_))
        ));
    }

    #[test]
    fn empty_messages_are_four_bytes() {
        assert_eq!(
            empty(MessageType::Acknowledgement, 0x1a2b),
            vec![0x60, 0x00, 0x1a, 0x2b]
        );
        assert_eq!(empty(MessageType::Reset, 7), vec![0x70, 0x00, 0x00, 0x07]);
        assert!(decode(&empty(MessageType::Reset, 7)).is_ok());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoded_messages_re_encode_identically(bytes in proptest::collection::vec(any::<u8>(), 4..48)) {
            if let Ok(p) = decode(&bytes) {
                prop_assert_eq!(encode(&p), bytes);
            }
        }
    }
}
