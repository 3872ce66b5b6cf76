//! One-line summaries of datagrams for the LwM2M message log, close to what
//! Wireshark's CoAP dissector shows in its Info column.

use std::fmt::Write;

use coap_lite::CoapOption;

use super::{code, options, wire};

/// Summarizes a datagram in one line, e.g.
/// `CON POST mid=0x1a2b tok=0a0b /rd?ep=meter-1&lt=60&lwm2m=1.1&b=U cf=40 len=48`
/// or `ACK 2.01 Created mid=0x1a2b tok=0a0b Location-Path=/rd/5a3f`. Anything
/// that is not a valid CoAP message gives `undecodable (N bytes): <reason>`.
pub fn summarize(datagram: &[u8]) -> String {
    let packet = match wire::decode(datagram) {
        Ok(p) => p,
        Err(e) => return format!("undecodable ({} bytes): {e}", datagram.len()),
    };
    let raw: u8 = packet.header.code.into();
    let mut s = String::new();
    let _ = write!(s, "{} ", wire::type_name(packet.header.get_type()));
    if code::is_request(raw) {
        s.push_str(code::name(raw));
    } else {
        let number = code::to_number(raw);
        let _ = write!(s, "{}.{:02}", number / 100, number % 100);
        let name = code::name(raw);
        if !name.is_empty() {
            let _ = write!(s, " {name}");
        }
    }
    let _ = write!(s, " mid=0x{:04x}", packet.header.message_id);
    if !packet.get_token().is_empty() {
        let _ = write!(s, " tok={}", hex::encode(packet.get_token()));
    }
    let path = options::strings(&packet, CoapOption::UriPath);
    let query = options::strings(&packet, CoapOption::UriQuery);
    if code::is_request(raw) {
        let _ = write!(s, " /{}", path.join("/"));
        if !query.is_empty() {
            let _ = write!(s, "?{}", query.join("&"));
        }
    }
    for (number, values) in packet.options() {
        let option = CoapOption::from(*number);
        for value in values {
            let text = match option {
                CoapOption::UriPath | CoapOption::UriQuery => continue,
                CoapOption::LocationPath => {
                    if !s.contains(" Location-Path=") {
                        let loc = options::strings(&packet, CoapOption::LocationPath).join("/");
                        let _ = write!(s, " Location-Path=/{loc}");
                    }
                    continue;
                }
                CoapOption::ContentFormat => format!("cf={}", uint_text(value)),
                CoapOption::Accept => format!("accept={}", uint_text(value)),
                CoapOption::Observe => format!("obs={}", uint_text(value)),
                CoapOption::Block1 | CoapOption::Block2 => {
                    let name = if option == CoapOption::Block1 {
                        "block1"
                    } else {
                        "block2"
                    };
                    match options::decode_uint(value) {
                        Some(v) => format!(
                            "{name}={}{}/{}",
                            v >> 4,
                            if v & 0x8 != 0 { "+" } else { "" },
                            16u32 << (v & 0x7).min(6)
                        ),
                        None => format!("{name}=0x{}", hex::encode(value)),
                    }
                }
                CoapOption::Size1
                | CoapOption::Size2
                | CoapOption::MaxAge
                | CoapOption::UriPort => {
                    format!("{}={}", option_name(option), uint_text(value))
                }
                CoapOption::UriHost
                | CoapOption::LocationQuery
                | CoapOption::ProxyUri
                | CoapOption::ProxyScheme => {
                    format!("{}={}", option_name(option), String::from_utf8_lossy(value))
                }
                _ => format!("{}=0x{}", option_name(option), hex::encode(value)),
            };
            let _ = write!(s, " {text}");
        }
    }
    if !packet.payload.is_empty() {
        let _ = write!(s, " len={}", packet.payload.len());
    }
    s
}

fn uint_text(value: &[u8]) -> String {
    match options::decode_uint(value) {
        Some(v) => v.to_string(),
        None => format!("0x{}", hex::encode(value)),
    }
}

fn option_name(option: CoapOption) -> String {
    match option {
        CoapOption::IfMatch => "If-Match".into(),
        CoapOption::UriHost => "Uri-Host".into(),
        CoapOption::ETag => "ETag".into(),
        CoapOption::IfNoneMatch => "If-None-Match".into(),
        CoapOption::UriPort => "Uri-Port".into(),
        CoapOption::Oscore => "OSCORE".into(),
        CoapOption::MaxAge => "Max-Age".into(),
        CoapOption::LocationQuery => "Location-Query".into(),
        CoapOption::ProxyUri => "Proxy-Uri".into(),
        CoapOption::ProxyScheme => "Proxy-Scheme".into(),
        CoapOption::Size1 => "Size1".into(),
        CoapOption::Size2 => "Size2".into(),
        CoapOption::NoResponse => "No-Response".into(),
        other => format!("opt{}", u16::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_request_summary() {
        // CON POST mid=0x1a2b tok=0a0b, Uri-Path "rd", queries, Content-Format 40, payload.
        let mut bytes = vec![0x42, 0x02, 0x1a, 0x2b, 0x0a, 0x0b];
        bytes.extend([0xb2, b'r', b'd']); // Uri-Path (11) "rd"
        bytes.extend([0x11, 40]); // delta 1 -> 12 Content-Format = 40
        bytes.extend([0x3a]); // delta 3 -> 15 Uri-Query, len 10
        bytes.extend(b"ep=meter-1");
        bytes.extend([0x05]);
        bytes.extend(b"lt=60");
        bytes.extend([0x09]);
        bytes.extend(b"lwm2m=1.1");
        bytes.extend([0x03]);
        bytes.extend(b"b=U");
        bytes.push(0xff);
        bytes.extend(b"</1/0>,</3/0>");
        assert_eq!(
            summarize(&bytes),
            "CON POST mid=0x1a2b tok=0a0b /rd?ep=meter-1&lt=60&lwm2m=1.1&b=U cf=40 len=13"
        );
    }

    #[test]
    fn created_response_summary() {
        let bytes = [
            0x62, 0x41, 0x1a, 0x2b, 0x0a, 0x0b, 0x82, b'r', b'd', 0x04, b'5', b'a', b'3', b'f',
        ];
        assert_eq!(
            summarize(&bytes),
            "ACK 2.01 Created mid=0x1a2b tok=0a0b Location-Path=/rd/5a3f"
        );
    }

    #[test]
    fn garbage_says_why() {
        assert_eq!(
            summarize(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7]),
            "undecodable (12 bytes): version 3, only version 1 exists"
        );
        assert_eq!(
            summarize(&[1, 2]),
            "undecodable (2 bytes): 2 bytes is shorter than the 4-byte header"
        );
    }

    #[test]
    fn empty_ack_and_notification() {
        assert_eq!(summarize(&[0x60, 0, 0, 9]), "ACK 0.00 Empty mid=0x0009");
        // NON 2.05 with Observe=3, Content-Format 11542, 2-byte payload.
        let bytes = [
            0x51, 0x45, 0, 1, 0x77, 0x61, 3, 0x62, 0x2d, 0x16, 0xff, 1, 2,
        ];
        assert_eq!(
            summarize(&bytes),
            "NON 2.05 Content mid=0x0001 tok=77 obs=3 cf=11542 len=2"
        );
    }
}
