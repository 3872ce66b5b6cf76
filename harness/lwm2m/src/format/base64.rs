//! Base64 (RFC 4648 §4) and base64url (§5) for opaque values in text-based
//! formats: plain text carries Opaque as base64 (LwM2M 1.1 Core §7.4.1) and
//! SenML JSON's `vd` as base64url without padding (RFC 8428 §4.3). Decoding
//! accepts either alphabet, with or without padding, because devices mix them.

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard alphabet with `=` padding.
pub(crate) fn encode_std(bytes: &[u8]) -> String {
    encode(bytes, STD, true)
}

/// URL-safe alphabet without padding.
pub(crate) fn encode_url(bytes: &[u8]) -> String {
    encode(bytes, URL, false)
}

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes either alphabet; padding optional. Err gives the byte offset of the
/// first character that is not base64.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, usize> {
    let end = text.iter().rposition(|c| *c != b'=').map_or(0, |p| p + 1);
    if text.len() - end > 2 {
        return Err(end);
    }
    let body = &text[..end];
    if body.len() % 4 == 1 {
        return Err(body.len().saturating_sub(1));
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (i, c) in body.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(i),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors.
    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_std(plain.as_bytes()), enc);
            assert_eq!(decode(enc.as_bytes()).unwrap(), plain.as_bytes());
            assert_eq!(
                decode(encode_url(plain.as_bytes()).as_bytes()).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(encode_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode(b"Zm9v!"), Err(4));
    }
}
