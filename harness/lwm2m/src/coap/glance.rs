//! A look at a CoAP datagram in place (RFC 7252 §3), without building a
//! `Packet`: the header, the token, each option as its number and value
//! bytes, and the payload, all borrowed from the datagram.
//!
//! Why: the server logs every datagram it sends and receives, and the log's
//! redaction must first know where a message points. Decoding each one into
//! coap-lite's `Packet` (an allocation per option) for that cost more than
//! the registration it logged at 100,000 meters (docs/perf/figures.md);
//! this answers the same question from the bytes. Anything it cannot read is
//! [`Unreadable`], and the caller then takes the full decoder's word. The
//! firmware file server's Block2 fast path and the benchmark's yardsticks
//! read their messages with it too.

use super::wire::RawHeader;

/// Why a datagram cannot be read as CoAP (RFC 7252 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub &'static str);

/// A well-formed datagram, read in place.
#[derive(Debug, Clone, Copy)]
pub struct Glance<'a> {
    pub header: RawHeader,
    pub token: &'a [u8],
    /// The encoded options (RFC 7252 §3.1), already checked to walk cleanly.
    options: &'a [u8],
    /// Empty when there is no payload marker.
    pub payload: &'a [u8],
}

impl<'a> Glance<'a> {
    /// Refuses what RFC 7252 §3 does not allow: a short header, a version
    /// other than 1, a token length 9-15, options that run past the end or
    /// use the reserved nibble 15, a payload marker with nothing after it.
    pub fn of(datagram: &'a [u8]) -> Result<Glance<'a>, Unreadable> {
        let header =
            RawHeader::peek(datagram).ok_or(Unreadable("shorter than the 4-byte CoAP header"))?;
        if header.version != 1 {
            return Err(Unreadable("CoAP version is not 1"));
        }
        let token_end = 4 + header.token_length as usize;
        let token = match datagram.get(4..token_end) {
            Some(token) if header.token_length <= 8 => token,
            _ => return Err(Unreadable("bad token length")),
        };
        let rest = &datagram[token_end..];
        let mut walk = Options {
            bytes: rest,
            number: 0,
        };
        for option in walk.by_ref() {
            option?;
        }
        let options_len = rest.len() - walk.bytes.len();
        let payload = match walk.bytes {
            [] => &[][..],
            [0xff] => return Err(Unreadable("payload marker without payload")),
            [_, payload @ ..] => payload,
        };
        Ok(Glance {
            header,
            token,
            options: &rest[..options_len],
            payload,
        })
    }

    /// Each option in order: its number and its value's bytes.
    pub fn options(&self) -> impl Iterator<Item = (u16, &'a [u8])> {
        Options {
            bytes: self.options,
            number: 0,
        }
        .map_while(Result::ok)
    }

    /// The first value of option `number`.
    pub fn option(&self, number: u16) -> Option<&'a [u8]> {
        self.options().find(|(n, _)| *n == number).map(|(_, v)| v)
    }

    /// Option `number` as the unsigned integer RFC 7252 §3.2 encodes (at
    /// most four bytes, leading zeros allowed); `None` when absent or longer.
    pub fn uint_option(&self, number: u16) -> Option<u32> {
        let value = self.option(number)?;
        (value.len() <= 4).then(|| value.iter().fold(0, |n, b| (n << 8) | u32::from(*b)))
    }
}

/// Walks encoded options; stops at the payload marker or the end.
struct Options<'a> {
    bytes: &'a [u8],
    number: u16,
}

/// An option's delta or length nibble with its extension bytes (§3.1).
fn extended(nibble: u8, bytes: &mut &[u8]) -> Result<u16, Unreadable> {
    const MISSING: Unreadable = Unreadable("option extension missing");
    match nibble {
        0..=12 => Ok(u16::from(nibble)),
        13 => {
            let (&b, rest) = bytes.split_first().ok_or(MISSING)?;
            *bytes = rest;
            Ok(u16::from(b) + 13)
        }
        14 => {
            let [hi, lo, rest @ ..] = *bytes else {
                return Err(MISSING);
            };
            *bytes = rest;
            u16::from_be_bytes([*hi, *lo])
                .checked_add(269)
                .ok_or(Unreadable("option number overflows"))
        }
        _ => Err(Unreadable("reserved option nibble 15")),
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), Unreadable>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&first, mut rest) = self.bytes.split_first()?;
        if first == 0xff {
            return None;
        }
        let step = (|| {
            let delta = extended(first >> 4, &mut rest)?;
            let len = extended(first & 0x0f, &mut rest)? as usize;
            let value = rest
                .get(..len)
                .ok_or(Unreadable("option longer than the datagram"))?;
            let number = self
                .number
                .checked_add(delta)
                .ok_or(Unreadable("option number overflows"))?;
            Ok((number, value, &rest[len..]))
        })();
        match step {
            Ok((number, value, after)) => {
                self.number = number;
                self.bytes = after;
                Some(Ok((number, value)))
            }
            Err(e) => {
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
    use proptest::prelude::*;

    #[test]
    fn reads_a_get_with_a_uri_path_byte_for_byte() {
        // CON GET, MID 0x7d34, Uri-Path "temperature" (RFC 7252 §3:
        // option 11, delta 11, length 11 in one byte 0xbb).
        let mut datagram = vec![0x40, 0x01, 0x7d, 0x34, 0xbb];
        datagram.extend_from_slice(b"temperature");
        let g = Glance::of(&datagram).expect("well formed");
        assert_eq!(g.header.code, 0x01);
        assert_eq!(g.header.message_id, 0x7d34);
        assert!(g.token.is_empty());
        assert_eq!(
            g.options().collect::<Vec<_>>(),
            vec![(11, &b"temperature"[..])]
        );
        assert!(g.payload.is_empty());
    }

    #[test]
    fn reads_extended_deltas_lengths_token_and_payload() {
        // Token 0xbeef; Content-Format (12) = 110 in one byte; then option
        // 12 + 269 + 0x0100 = 537 by a 2-byte extended delta (nibble 14),
        // its 14-byte value by a 1-byte extended length (nibble 13, 1 + 13);
        // payload "hi".
        let mut datagram = vec![
            0x42, 0x45, 0x00, 0x01, 0xbe, 0xef, 0xc1, 110, 0xed, 0x01, 0x00, 0x01,
        ];
        datagram.extend_from_slice(&[7; 14]);
        datagram.extend_from_slice(&[0xff, b'h', b'i']);
        let g = Glance::of(&datagram).expect("well formed");
        assert_eq!(g.token, &[0xbe, 0xef]);
        assert_eq!(g.uint_option(12), Some(110));
        assert_eq!(g.option(537), Some(&[7u8; 14][..]));
        assert_eq!(g.payload, b"hi");
    }

    #[test]
    fn refuses_what_rfc_7252_does_not_allow() {
        for (datagram, why) in [
            (&[0x40, 0x01, 0x00][..], "short header"),
            (&[0x80, 0x01, 0x00, 0x01][..], "version 2"),
            (&[0x49, 0x01, 0x00, 0x01][..], "token length 9"),
            (&[0x42, 0x01, 0x00, 0x01, 0xaa][..], "token past the end"),
            (
                &[0x40, 0x01, 0x00, 0x01, 0xb5, b'a'][..],
                "value past the end",
            ),
            (&[0x40, 0x01, 0x00, 0x01, 0xf1, 0x00][..], "delta nibble 15"),
            (
                &[0x40, 0x01, 0x00, 0x01, 0x1f, 0x00][..],
                "length nibble 15",
            ),
            (
                &[0x40, 0x01, 0x00, 0x01, 0xd0][..],
                "delta extension missing",
            ),
            (
                &[0x40, 0x45, 0x00, 0x01, 0xff][..],
                "marker without payload",
            ),
        ] {
            assert!(Glance::of(datagram).is_err(), "{why}: {datagram:02x?}");
        }
    }

    fn packet() -> impl Strategy<Value = Packet> {
        (
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..=8),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        1usize, 3, 4, 7, 8, 11, 12, 14, 15, 17, 23, 27, 60, 258, 2049,
                    ]),
                    prop::collection::vec(any::<u8>(), 0..300),
                ),
                0..6,
            ),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(mid, token, options, payload)| {
                let mut p = Packet::new();
                p.header.set_type(MessageType::Confirmable);
                p.header.code = MessageClass::Request(RequestType::Post);
                p.header.message_id = mid;
                p.set_token(token);
                for (number, value) in options {
                    p.add_option(CoapOption::from(number as u16), value);
                }
                p.payload = payload;
                p
            })
    }

    proptest! {
        #[test]
        fn reads_what_coap_lite_encodes(p in packet()) {
            let bytes = p.to_bytes().unwrap();
            let g = Glance::of(&bytes).expect("coap-lite's encoding is well formed");
            prop_assert_eq!(g.header.message_id, p.header.message_id);
            prop_assert_eq!(g.token, p.get_token());
            let mut want: Vec<(u16, Vec<u8>)> = Vec::new();
            for (number, values) in p.options() {
                for v in values {
                    want.push((*number, v.clone()));
                }
            }
            let got: Vec<(u16, Vec<u8>)> = g.options().map(|(n, v)| (n, v.to_vec())).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(g.payload, &p.payload[..]);
        }

        #[test]
        fn never_panics_and_agrees_with_the_decoder_on_what_is_well_formed(
            bytes in prop::collection::vec(any::<u8>(), 0..80)
        ) {
            if let Ok(p) = super::super::wire::decode(&bytes) {
                let g = Glance::of(&bytes);
                prop_assert!(g.is_ok(), "the decoder took {:02x?}", bytes);
                let g = g.unwrap();
                prop_assert_eq!(g.payload, &p.payload[..]);
                prop_assert_eq!(g.token, p.get_token());
            }
        }
    }
}
