//! The few DTLS wire structures the endpoint reads itself, before or beside
//! OpenSSL: record headers (RFC 6347 §4.1), the ClientHello fields a stateless
//! cookie needs (§4.2.1), and the HelloVerifyRequest and plaintext alert it
//! writes. Everything else about the protocol is OpenSSL's.
//!
//! Parsers take any bytes and return [`RecordError`] saying what was wrong and
//! at which offset; they never panic.

/// DTLSPlaintext header length: type(1) version(2) epoch(2) sequence(6) length(2).
pub const RECORD_HEADER_LEN: usize = 13;
/// Handshake header length in DTLS (RFC 6347 §4.2.2): type(1) length(3)
/// message_seq(2) fragment_offset(3) fragment_length(3).
pub const HANDSHAKE_HEADER_LEN: usize = 12;
/// Version field of DTLS 1.0 ({254,255}); what a HelloVerifyRequest carries
/// (RFC 6347 §4.2.1: "SHOULD use DTLS version 1.0 regardless of the version
/// of TLS that is expected to be negotiated").
pub const DTLS1_0: u16 = 0xfeff;
/// Version field of DTLS 1.2 ({254,253}).
pub const DTLS1_2: u16 = 0xfefd;

/// Record content types (RFC 5246 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// 20
    ChangeCipherSpec,
    /// 21
    Alert,
    /// 22
    Handshake,
    /// 23
    ApplicationData,
}

impl ContentType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            20 => Self::ChangeCipherSpec,
            21 => Self::Alert,
            22 => Self::Handshake,
            23 => Self::ApplicationData,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::ChangeCipherSpec => 20,
            Self::Alert => 21,
            Self::Handshake => 22,
            Self::ApplicationData => 23,
        }
    }
}

/// A framing error, with the byte offset in the datagram where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than a record header, or than the header's length says.
    #[error("truncated at offset {offset}: need {needed} bytes, have {available}")]
    Truncated {
        /// Where the incomplete structure starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Content type byte outside 20..=23.
    #[error("unknown content type {value} at offset {offset}")]
    ContentType {
        /// Offset of the record.
        offset: usize,
        /// The byte found.
        value: u8,
    },
    /// Version field whose major byte is not 254 (DTLS).
    #[error("not a DTLS record version {value:#06x} at offset {offset}")]
    Version {
        /// Offset of the record.
        offset: usize,
        /// The version found.
        value: u16,
    },
    /// A record length over 2^14 + 2048 (RFC 6347 §4.1 via RFC 5246 §6.2.3).
    #[error("record length {length} at offset {offset} exceeds 18432")]
    Length {
        /// Offset of the record.
        offset: usize,
        /// The length found.
        length: usize,
    },
    /// The record is not a single, unfragmented, epoch-0 ClientHello.
    #[error("not a ClientHello: {0}")]
    NotClientHello(&'static str),
}

/// One record header and where its fragment sits in the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Content type.
    pub content_type: ContentType,
    /// Version field.
    pub version: u16,
    /// Epoch (0 before the first ChangeCipherSpec).
    pub epoch: u16,
    /// 48-bit sequence number within the epoch.
    pub sequence: u64,
    /// Offset of the fragment in the datagram.
    pub fragment_start: usize,
    /// Fragment length.
    pub length: usize,
}

/// Largest fragment length allowed on the wire (2^14 + 2048).
const MAX_FRAGMENT: usize = 16384 + 2048;

/// Splits a datagram into record headers; DTLS packs several records into
/// one datagram (RFC 6347 §4.1.1) and none may span datagrams.
pub fn parse_records(datagram: &[u8]) -> Result<Vec<RecordHeader>, RecordError> {
    let mut records = Vec::new();
    let mut offset = 0;
    if datagram.is_empty() {
        return Err(RecordError::Truncated {
            offset: 0,
            needed: RECORD_HEADER_LEN,
            available: 0,
        });
    }
    while offset < datagram.len() {
        let rest = &datagram[offset..];
        if rest.len() < RECORD_HEADER_LEN {
            return Err(RecordError::Truncated {
                offset,
                needed: RECORD_HEADER_LEN,
                available: rest.len(),
            });
        }
        let content_type = ContentType::from_u8(rest[0]).ok_or(RecordError::ContentType {
            offset,
            value: rest[0],
        })?;
        let version = u16::from_be_bytes([rest[1], rest[2]]);
        if version >> 8 != 0xfe {
            return Err(RecordError::Version {
                offset,
                value: version,
            });
        }
        let epoch = u16::from_be_bytes([rest[3], rest[4]]);
        let sequence = rest[5..11]
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        let length = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        if length > MAX_FRAGMENT {
            return Err(RecordError::Length { offset, length });
        }
        if rest.len() < RECORD_HEADER_LEN + length {
            return Err(RecordError::Truncated {
                offset,
                needed: RECORD_HEADER_LEN + length,
                available: rest.len(),
            });
        }
        records.push(RecordHeader {
            content_type,
            version,
            epoch,
            sequence,
            fragment_start: offset + RECORD_HEADER_LEN,
            length,
        });
        offset += RECORD_HEADER_LEN + length;
    }
    Ok(records)
}

/// The ClientHello fields a stateless server needs (RFC 6347 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// Record sequence number, echoed in the HelloVerifyRequest.
    pub record_sequence: u64,
    /// Handshake message_seq (0 for the first hello, 1 after a HelloVerifyRequest).
    pub message_seq: u16,
    /// client_version.
    pub client_version: u16,
    /// The 32-byte random; a client keeps it across the cookie exchange, so it
    /// binds the cookie to this handshake attempt.
    pub random: [u8; 32],
    /// The cookie, empty on a first hello.
    pub cookie: Vec<u8>,
}

/// Reads a datagram holding exactly one epoch-0 record with one unfragmented
/// ClientHello (what a stateless server can process; OpenSSL's
/// `DTLSv1_listen` has the same restriction).
pub fn parse_client_hello(datagram: &[u8]) -> Result<ClientHello, RecordError> {
    let records = parse_records(datagram)?;
    let [record] = records.as_slice() else {
        return Err(RecordError::NotClientHello(
            "datagram holds more than one record",
        ));
    };
    if record.content_type != ContentType::Handshake || record.epoch != 0 {
        return Err(RecordError::NotClientHello(
            "not an epoch-0 handshake record",
        ));
    }
    let body = &datagram[record.fragment_start..record.fragment_start + record.length];
    let truncated = |at: usize, needed: usize| RecordError::Truncated {
        offset: record.fragment_start + at,
        needed,
        available: body.len().saturating_sub(at),
    };
    if body.len() < HANDSHAKE_HEADER_LEN {
        return Err(truncated(0, HANDSHAKE_HEADER_LEN));
    }
    if body[0] != 1 {
        return Err(RecordError::NotClientHello(
            "handshake type is not client_hello(1)",
        ));
    }
    let u24 = |b: &[u8]| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
    let length = u24(&body[1..4]);
    let message_seq = u16::from_be_bytes([body[4], body[5]]);
    let fragment_offset = u24(&body[6..9]);
    let fragment_length = u24(&body[9..12]);
    if fragment_offset != 0 || fragment_length != length {
        return Err(RecordError::NotClientHello("fragmented ClientHello"));
    }
    let msg = &body[HANDSHAKE_HEADER_LEN..];
    if msg.len() < length {
        return Err(truncated(HANDSHAKE_HEADER_LEN, length));
    }
    let msg = &msg[..length];
    // client_version(2) random(32) session_id<0..32> cookie<0..2^8-1> ...
    let at = HANDSHAKE_HEADER_LEN;
    if msg.len() < 35 {
        return Err(truncated(at, 35));
    }
    let client_version = u16::from_be_bytes([msg[0], msg[1]]);
    let mut random = [0u8; 32];
    random.copy_from_slice(&msg[2..34]);
    let session_id_len = usize::from(msg[34]);
    if session_id_len > 32 {
        return Err(RecordError::NotClientHello(
            "session_id longer than 32 bytes",
        ));
    }
    let cookie_len_at = 35 + session_id_len;
    if msg.len() < cookie_len_at + 1 {
        return Err(truncated(at + 35, session_id_len + 1));
    }
    let cookie_len = usize::from(msg[cookie_len_at]);
    let cookie_start = cookie_len_at + 1;
    if msg.len() < cookie_start + cookie_len {
        return Err(truncated(at + cookie_start, cookie_len));
    }
    Ok(ClientHello {
        record_sequence: record.sequence,
        message_seq,
        client_version,
        random,
        cookie: msg[cookie_start..cookie_start + cookie_len].to_vec(),
    })
}

fn push_record_header(
    out: &mut Vec<u8>,
    content_type: ContentType,
    version: u16,
    epoch: u16,
    sequence: u64,
    length: usize,
) {
    out.push(content_type.to_u8());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes()[2..]);
    out.extend_from_slice(&(length as u16).to_be_bytes());
}

/// Builds a HelloVerifyRequest datagram (RFC 6347 §4.2.1): the record
/// sequence number copies the ClientHello's, message_seq is 0 and
/// server_version is DTLS 1.0.
pub fn hello_verify_request(record_sequence: u64, cookie: &[u8]) -> Vec<u8> {
    debug_assert!(cookie.len() <= 255);
    let body_len = 3 + cookie.len();
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + body_len);
    push_record_header(
        &mut out,
        ContentType::Handshake,
        DTLS1_0,
        0,
        record_sequence & 0xffff_ffff_ffff,
        HANDSHAKE_HEADER_LEN + body_len,
    );
    out.push(3); // hello_verify_request
    out.extend_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&0u16.to_be_bytes()); // message_seq
    out.extend_from_slice(&[0, 0, 0]); // fragment_offset
    out.extend_from_slice(&(body_len as u32).to_be_bytes()[1..]); // fragment_length
    out.extend_from_slice(&DTLS1_0.to_be_bytes());
    out.push(cookie.len() as u8);
    out.extend_from_slice(cookie);
    out
}

/// Alert descriptions this crate names (RFC 5246 §7.2, RFC 4279 §2).
pub mod alert {
    /// close_notify
    pub const CLOSE_NOTIFY: u8 = 0;
    /// bad_record_mac
    pub const BAD_RECORD_MAC: u8 = 20;
    /// handshake_failure
    pub const HANDSHAKE_FAILURE: u8 = 40;
    /// decrypt_error: "a handshake cryptographic operation failed, including
    /// being unable to ... validate a Finished message" — what a wrong PSK causes.
    pub const DECRYPT_ERROR: u8 = 51;
    /// unknown_psk_identity (RFC 4279 §2)
    pub const UNKNOWN_PSK_IDENTITY: u8 = 115;

    /// The RFC name of an alert description.
    pub fn name(description: u8) -> &'static str {
        match description {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            22 => "record_overflow",
            40 => "handshake_failure",
            47 => "illegal_parameter",
            50 => "decode_error",
            51 => "decrypt_error",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            90 => "user_canceled",
            100 => "no_renegotiation",
            110 => "unsupported_extension",
            115 => "unknown_psk_identity",
            _ => "unknown",
        }
    }
}

/// A fatal alert in an epoch-0 (plaintext) record. Used when the peer's
/// Finished cannot be authenticated: DTLS discards such records silently
/// (RFC 6347 §4.1.2.7), so without this the peer would only learn of a wrong
/// key by timing out.
pub fn plaintext_fatal_alert(sequence: u64, description: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + 2);
    push_record_header(
        &mut out,
        ContentType::Alert,
        DTLS1_2,
        0,
        sequence & 0xffff_ffff_ffff,
        2,
    );
    out.push(2); // fatal
    out.push(description);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A first ClientHello as OpenSSL 3 sends it (trimmed extensions),
    /// record sequence 0, empty cookie.
    fn hello(cookie: &[u8], record_seq: u8, message_seq: u8) -> Vec<u8> {
        let mut body = vec![0xfe, 0xfd];
        body.extend_from_slice(&[0x11; 32]);
        body.push(0); // session id
        body.push(cookie.len() as u8);
        body.extend_from_slice(cookie);
        body.extend_from_slice(&[0, 2, 0xc0, 0xa8]); // TLS_PSK_WITH_AES_128_CCM_8
        body.extend_from_slice(&[1, 0]); // null compression
        let len = body.len() as u32;
        let mut hs = vec![1];
        hs.extend_from_slice(&len.to_be_bytes()[1..]);
        hs.extend_from_slice(&[0, message_seq, 0, 0, 0]);
        hs.extend_from_slice(&len.to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, record_seq];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn client_hello_fields_are_read() {
        let ch = parse_client_hello(&hello(&[], 0, 0)).unwrap();
        assert_eq!(ch.client_version, DTLS1_2);
        assert_eq!(ch.random, [0x11; 32]);
        assert!(ch.cookie.is_empty());
        let ch = parse_client_hello(&hello(&[9; 16], 1, 1)).unwrap();
        assert_eq!(ch.cookie, vec![9; 16]);
        assert_eq!((ch.record_sequence, ch.message_seq), (1, 1));
    }

    /// RFC 6347 §4.2.1 layout, byte by byte, for a 2-byte cookie.
    #[test]
    fn hello_verify_request_layout() {
        let hvr = hello_verify_request(7, &[0xaa, 0xbb]);
        assert_eq!(
            hvr,
            vec![
                22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 7, 0, 17, // record header
                3, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, // handshake header
                0xfe, 0xff, 2, 0xaa, 0xbb, // server_version, cookie
            ]
        );
        let records = parse_records(&hvr).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].sequence, 7);
    }

    #[test]
    fn truncation_is_reported_with_offset() {
        let full = hello(&[], 0, 0);
        let err = parse_records(&full[..full.len() - 1]).unwrap_err();
        assert!(
            matches!(err, RecordError::Truncated { offset: 0, .. }),
            "{err}"
        );
        let mut two = full.clone();
        two.extend_from_slice(&full[..5]);
        let err = parse_records(&two).unwrap_err();
        assert_eq!(
            err,
            RecordError::Truncated {
                offset: full.len(),
                needed: 13,
                available: 5
            }
        );
        assert!(matches!(
            parse_records(&[99; 20]),
            Err(RecordError::ContentType { value: 99, .. })
        ));
    }

    #[test]
    fn alert_record_layout() {
        assert_eq!(
            plaintext_fatal_alert(3, alert::DECRYPT_ERROR),
            vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, 2, 51]
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_records(&bytes);
            let _ = parse_client_hello(&bytes);
        }

        #[test]
        fn mutated_hellos_never_panic(idx in 0usize..80, val in any::<u8>(), cut in 0usize..80) {
            let mut h = hello(&[1, 2, 3], 0, 1);
            let i = idx % h.len();
            h[i] = val;
            h.truncate(h.len() - cut.min(h.len()));
            let _ = parse_client_hello(&h);
        }
    }
}
