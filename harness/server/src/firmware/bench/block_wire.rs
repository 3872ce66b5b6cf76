//! The few bytes of CoAP the benchmark's yardsticks speak: a confirmable
//! GET with Block2, and the piggybacked 2.05 answer to it (RFC 7252 §3 and
//! §3.1, RFC 7959 §2.2). Hand-written rather than through coap-lite because
//! the yardsticks must cost as little as possible: the do-nothing server is
//! the floor every other server is measured against, and the client's cost
//! is in every server's figure alike. The file server's Block2 fast path
//! (`coap_files`) reads and writes its common case with the same code.

use std::fmt;

use coap_lite::MessageType;
use lwm2m::coap::glance::Glance;

/// Option numbers (RFC 7252 §12.2, RFC 7959 §2.1).
pub(crate) const URI_PATH: u16 = 11;
pub(crate) const BLOCK2: u16 = 23;
/// Message types (RFC 7252 §3).
pub(crate) const CON: u8 = 0;
pub(crate) const ACK: u8 = 2;
/// Codes (RFC 7252 §12.1): 0.01 GET, 2.05 Content, 4.00 Bad Request.
pub(crate) const GET: u8 = 0x01;
pub(crate) const CONTENT: u8 = 0x45;
pub(crate) const BAD_REQUEST: u8 = 0x80;

/// A Block2 option value (RFC 7959 §2.2): block number, more flag, size exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub num: u32,
    pub more: bool,
    pub szx: u8,
}

impl Block {
    pub fn size(self) -> usize {
        16 << self.szx
    }

    pub fn offset(self) -> usize {
        self.num as usize * self.size()
    }

    /// `NUM << 4 | M << 3 | SZX` as the shortest big-endian uint (0 to 3 bytes).
    fn encode(self, out: &mut Vec<u8>) -> usize {
        let v = (self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx & 7);
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.extend_from_slice(&bytes[skip..]);
        4 - skip
    }

    fn decode(value: &[u8]) -> Option<Block> {
        if value.len() > 3 {
            return None;
        }
        let v = value.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b));
        Some(Block {
            num: v >> 4,
            more: v & 8 != 0,
            szx: (v & 7) as u8,
        })
    }
}

/// The size exponent of a block size of 16 … 1024 bytes.
pub(crate) fn szx_of(block_size: usize) -> Option<u8> {
    (block_size.is_power_of_two() && (16..=1024).contains(&block_size))
        .then(|| (block_size.trailing_zeros() - 4) as u8)
}

/// Why a datagram is not the message we read it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What the yardsticks read of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub message_type: u8,
    pub code: u8,
    pub message_id: u16,
    pub token: &'a [u8],
    pub block2: Option<Block>,
    pub payload: &'a [u8],
}

/// Reads a message's header, token, Block2 option and payload; other
/// options are walked over (RFC 7252 §3.1 delta/length nibbles with their
/// 1- and 2-byte extensions).
pub(crate) fn parse(datagram: &[u8]) -> Result<Message<'_>, Malformed> {
    parse_visiting(datagram, |_, _| {})
}

/// As [`parse`], showing `visit` every option (number, value) in order.
pub(crate) fn parse_visiting<'a>(
    datagram: &'a [u8],
    mut visit: impl FnMut(u16, &'a [u8]),
) -> Result<Message<'a>, Malformed> {
    let glance = Glance::of(datagram).map_err(|e| Malformed(e.0))?;
    let mut block2 = None;
    for (number, value) in glance.options() {
        visit(number, value);
        if number == BLOCK2 {
            block2 = Some(Block::decode(value).ok_or(Malformed("Block2 longer than 3 bytes"))?);
        }
    }
    let header = glance.header;
    Ok(Message {
        message_type: match header.message_type {
            MessageType::Confirmable => CON,
            MessageType::NonConfirmable => 1,
            MessageType::Acknowledgement => ACK,
            MessageType::Reset => 3,
        },
        code: header.code,
        message_id: header.message_id,
        token: glance.token,
        block2,
        payload: glance.payload,
    })
}

/// Appends one option's header (delta and length, extended as needed) and value.
pub(crate) fn put_option(out: &mut Vec<u8>, delta: u16, value: &[u8]) {
    fn nibble(n: usize) -> u8 {
        match n {
            0..=12 => n as u8,
            13..=268 => 13,
            _ => 14,
        }
    }
    fn extension(out: &mut Vec<u8>, n: usize) {
        match n {
            0..=12 => {}
            13..=268 => out.push((n - 13) as u8),
            _ => out.extend_from_slice(&((n - 269) as u16).to_be_bytes()),
        }
    }
    let delta = usize::from(delta);
    out.push((nibble(delta) << 4) | nibble(value.len()));
    extension(out, delta);
    extension(out, value.len());
    out.extend_from_slice(value);
}

/// A CON GET of `path` (one Uri-Path option per segment) asking for `block`
/// (its more flag is 0 in a request, RFC 7959 §2.2).
pub(crate) fn block2_request(
    message_id: u16,
    token: &[u8],
    path: &[&str],
    block: Block,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.push(0x40 | (CON << 4) | token.len() as u8);
    out.push(GET);
    out.extend_from_slice(&message_id.to_be_bytes());
    out.extend_from_slice(token);
    let mut last = 0;
    for segment in path {
        put_option(&mut out, URI_PATH - last, segment.as_bytes());
        last = URI_PATH;
    }
    let mut value = Vec::with_capacity(3);
    block.encode(&mut value);
    put_option(&mut out, BLOCK2 - last, &value);
    out
}

/// The piggybacked answer (an ACK with the request's message id and token)
/// carrying `block` and `payload`, or a bare `code` when `block` is `None`.
pub(crate) fn block2_response(
    out: &mut Vec<u8>,
    message_id: u16,
    token: &[u8],
    code: u8,
    block: Option<Block>,
    payload: &[u8],
) {
    out.clear();
    out.push(0x40 | (ACK << 4) | token.len() as u8);
    out.push(code);
    out.extend_from_slice(&message_id.to_be_bytes());
    out.extend_from_slice(token);
    if let Some(block) = block {
        let mut value = Vec::with_capacity(3);
        block.encode(&mut value);
        put_option(out, BLOCK2, &value);
    }
    if !payload.is_empty() {
        out.push(0xff);
        out.extend_from_slice(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7252 §3: 0x44 = ver 1, CON, TKL 4; 0x01 GET; message id 0x1234;
    /// token; Uri-Path "fw" (0xb2: delta 11, length 2); Uri-Path "a.bin"
    /// (0x05: delta 0, length 5); Block2 (0xc1: delta 12 to option 23,
    /// length 1) = 0x16: NUM 1, M 0, SZX 6 (RFC 7959 §2.2, 1024 bytes).
    #[test]
    fn a_block2_request_is_encoded_as_rfc_7252_and_7959_lay_it_out() {
        let block = Block {
            num: 1,
            more: false,
            szx: 6,
        };
        let got = block2_request(0x1234, &[1, 2, 3, 4], &["fw", "a.bin"], block);
        let want: Vec<u8> = [
            &[0x44, 0x01, 0x12, 0x34, 1, 2, 3, 4][..],
            &[0xb2, b'f', b'w'],
            &[0x05, b'a', b'.', b'b', b'i', b'n'],
            &[0xc1, 0x16],
        ]
        .concat();
        assert_eq!(got, want);
        let read = coap_lite::Packet::from_bytes(&got).expect("coap-lite reads it");
        assert_eq!(
            read.get_option(coap_lite::CoapOption::Block2)
                .and_then(|l| l.front().cloned()),
            Some(vec![0x16])
        );
    }

    /// Block 0 of SZX 6 is the value 6 in one byte; block 4096 of SZX 4 with
    /// more set is 0x01_0000 | 0x8 | 4 = three bytes 01 00 0c (RFC 7959 §2.2).
    #[test]
    fn block_values_take_the_fewest_bytes() {
        let mut out = Vec::new();
        let n = Block {
            num: 0,
            more: false,
            szx: 6,
        }
        .encode(&mut out);
        assert_eq!((n, out.as_slice()), (1, &[0x06][..]));
        out.clear();
        let n = Block {
            num: 4096,
            more: true,
            szx: 4,
        }
        .encode(&mut out);
        assert_eq!((n, out.as_slice()), (3, &[0x01, 0x00, 0x0c][..]));
        assert_eq!(
            Block::decode(&[0x01, 0x00, 0x0c]),
            Some(Block {
                num: 4096,
                more: true,
                szx: 4
            })
        );
    }

    /// 0x64 = ver 1, ACK, TKL 4; 0x45 = 2.05 Content; Block2 as option 23
    /// from 0 needs the 1-byte extension: 0xd1, 23 - 13 = 0x0a, value 0x1e
    /// (NUM 1, M 1, SZX 6); 0xff then the payload.
    #[test]
    fn a_block2_answer_round_trips_and_matches_its_bytes() {
        let mut out = Vec::new();
        let block = Block {
            num: 1,
            more: true,
            szx: 6,
        };
        block2_response(&mut out, 0x1234, &[9, 8, 7, 6], CONTENT, Some(block), b"xy");
        assert_eq!(
            out,
            [0x64, 0x45, 0x12, 0x34, 9, 8, 7, 6, 0xd1, 0x0a, 0x1e, 0xff, b'x', b'y']
        );
        let m = parse(&out).unwrap();
        assert_eq!(
            (
                m.message_type,
                m.code,
                m.message_id,
                m.token,
                m.block2,
                m.payload
            ),
            (
                ACK,
                CONTENT,
                0x1234,
                &[9, 8, 7, 6][..],
                Some(block),
                &b"xy"[..]
            )
        );
    }

    #[test]
    fn options_with_extended_lengths_are_walked_over() {
        // Uri-Path of 300 bytes: length nibble 14, extension 300 - 269 = 31.
        let long = "p".repeat(300);
        let block = Block {
            num: 7,
            more: false,
            szx: 2,
        };
        let request = block2_request(1, &[], &[&long], block);
        assert_eq!(&request[4..7], &[0xbe, 0x00, 0x1f]);
        assert_eq!(parse(&request).unwrap().block2, Some(block));
    }

    #[test]
    fn malformed_datagrams_say_what_is_wrong() {
        assert_eq!(
            parse(&[0x40, 1]).unwrap_err().0,
            "shorter than the 4-byte CoAP header"
        );
        assert_eq!(
            parse(&[0x80, 1, 0, 0]).unwrap_err().0,
            "CoAP version is not 1"
        );
        assert_eq!(parse(&[0x49, 1, 0, 0]).unwrap_err().0, "bad token length");
        assert_eq!(
            parse(&[0x40, 1, 0, 0, 0xff]).unwrap_err().0,
            "payload marker without payload"
        );
        assert_eq!(
            parse(&[0x40, 1, 0, 0, 0xd1]).unwrap_err().0,
            "option extension missing"
        );
        assert_eq!(
            parse(&[0x40, 1, 0, 0, 0xf0]).unwrap_err().0,
            "reserved option nibble 15"
        );
        assert_eq!(szx_of(1024), Some(6));
        assert_eq!(szx_of(16), Some(0));
        assert_eq!(szx_of(2048), None);
        assert_eq!(szx_of(100), None);
    }
}
