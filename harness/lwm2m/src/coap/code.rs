//! CoAP codes as LwM2M speaks of them: `class.detail` packed into one byte on
//! the wire (RFC 7252 §3, §12.1), and as the decimal number `class*100+detail`
//! (2.05 -> 205) in meterbench's API and logs.

/// Converts a wire code byte to `class*100+detail` (0x45 -> 205).
pub fn to_number(code: u8) -> u16 {
    u16::from(code >> 5) * 100 + u16::from(code & 0x1f)
}

/// Converts `class*100+detail` to the wire byte; `None` when the class is above 7
/// or the detail above 31.
pub fn from_number(number: u16) -> Option<u8> {
    let (class, detail) = (number / 100, number % 100);
    (class <= 7 && detail <= 31).then_some(((class as u8) << 5) | detail as u8)
}

/// The registered name of a code (RFC 7252 §12.1, RFC 7959, RFC 8132), or "" when unassigned.
pub fn name(code: u8) -> &'static str {
    match code {
        0x00 => "Empty",
        0x01 => "GET",
        0x02 => "POST",
        0x03 => "PUT",
        0x04 => "DELETE",
        0x05 => "FETCH",
        0x06 => "PATCH",
        0x07 => "iPATCH",
        0x41 => "Created",
        0x42 => "Deleted",
        0x43 => "Valid",
        0x44 => "Changed",
        0x45 => "Content",
        0x5f => "Continue",
        0x80 => "Bad Request",
        0x81 => "Unauthorized",
        0x82 => "Bad Option",
        0x83 => "Forbidden",
        0x84 => "Not Found",
        0x85 => "Method Not Allowed",
        0x86 => "Not Acceptable",
        0x88 => "Request Entity Incomplete",
        0x89 => "Conflict",
        0x8c => "Precondition Failed",
        0x8d => "Request Entity Too Large",
        0x8f => "Unsupported Content-Format",
        0xa0 => "Internal Server Error",
        0xa1 => "Not Implemented",
        0xa2 => "Bad Gateway",
        0xa3 => "Service Unavailable",
        0xa4 => "Gateway Timeout",
        0xa5 => "Proxying Not Supported",
        _ => "",
    }
}

/// Whether the code byte is a request method (class 0, detail 1..=31).
pub fn is_request(code: u8) -> bool {
    code >> 5 == 0 && code != 0
}

/// Whether the code byte is a response (classes 2, 4, 5).
pub fn is_response(code: u8) -> bool {
    matches!(code >> 5, 2 | 4 | 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_wire_bytes() {
        assert_eq!(to_number(0x45), 205);
        assert_eq!(to_number(0x84), 404);
        assert_eq!(from_number(201), Some(0x41));
        assert_eq!(from_number(415), Some(0x8f));
        assert_eq!(from_number(832), None);
        for b in 0..=255u8 {
            assert_eq!(from_number(to_number(b)), Some(b));
        }
    }
}
