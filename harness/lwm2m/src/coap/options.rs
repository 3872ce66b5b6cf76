//! Reading and writing the CoAP options LwM2M uses (RFC 7252 §5.10, RFC 7641
//! §2), on top of coap-lite's raw option lists.

use coap_lite::{CoapOption, Packet};

/// Decodes a `uint` option value: big-endian, leading zeros allowed, at most
/// four bytes for the options we read (RFC 7252 §3.2).
pub fn decode_uint(bytes: &[u8]) -> Option<u32> {
    if bytes.len() > 4 {
        return None;
    }
    Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// Encodes a `uint` option value in the fewest bytes (zero is the empty string).
pub fn encode_uint(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// The first value of a uint option; `None` when absent or longer than four bytes.
pub fn uint(packet: &Packet, option: CoapOption) -> Option<u32> {
    packet.get_first_option(option).and_then(|v| decode_uint(v))
}

/// Replaces a uint option with one value.
pub fn set_uint(packet: &mut Packet, option: CoapOption, value: u32) {
    packet.clear_option(option);
    packet.add_option(option, encode_uint(value));
}

/// Every value of a string option (Uri-Path, Uri-Query, Location-Path), lossily decoded as UTF-8.
pub fn strings(packet: &Packet, option: CoapOption) -> Vec<String> {
    packet
        .get_option(option)
        .map(|list| {
            list.iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Appends one value per item to a string option.
pub fn add_strings<S: AsRef<str>>(packet: &mut Packet, option: CoapOption, values: &[S]) {
    for v in values {
        packet.add_option(option, v.as_ref().as_bytes().to_vec());
    }
}

/// The Uri-Query options split at the first '=' (`lt=60` -> ("lt", Some("60")), `Q` -> ("Q", None)).
pub fn query(packet: &Packet) -> Vec<(String, Option<String>)> {
    strings(packet, CoapOption::UriQuery)
        .into_iter()
        .map(|q| match q.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (q, None),
        })
        .collect()
}

/// The Uri-Path as one string with a leading '/', `/` for an empty path.
pub fn uri_path_string(packet: &Packet) -> String {
    format!("/{}", strings(packet, CoapOption::UriPath).join("/"))
}

/// The Content-Format option as a number.
pub fn content_format(packet: &Packet) -> Option<u16> {
    uint(packet, CoapOption::ContentFormat).and_then(|v| u16::try_from(v).ok())
}

/// The Accept option as a number.
pub fn accept(packet: &Packet) -> Option<u16> {
    uint(packet, CoapOption::Accept).and_then(|v| u16::try_from(v).ok())
}

/// The Observe option (RFC 7641 §2): 0 registers, 1 deregisters in requests;
/// a 24-bit sequence number in notifications.
pub fn observe(packet: &Packet) -> Option<u32> {
    packet
        .get_first_option(CoapOption::Observe)
        .filter(|v| v.len() <= 3)
        .and_then(|v| decode_uint(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uints_are_minimal_and_round_trip() {
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(40), vec![40]);
        assert_eq!(encode_uint(11542), vec![0x2d, 0x16]);
        assert_eq!(decode_uint(&[0x00, 0x2d, 0x16]), Some(11542));
        assert_eq!(decode_uint(&[1, 2, 3, 4, 5]), None);
        for v in [0, 1, 255, 256, 65535, 1 << 23, u32::MAX] {
            assert_eq!(decode_uint(&encode_uint(v)), Some(v));
        }
    }

    #[test]
    fn query_splits_at_first_equals() {
        let mut p = Packet::new();
        add_strings(&mut p, CoapOption::UriQuery, &["ep=a=b", "Q"]);
        assert_eq!(
            query(&p),
            vec![
                ("ep".to_string(), Some("a=b".to_string())),
                ("Q".to_string(), None)
            ]
        );
    }
}
