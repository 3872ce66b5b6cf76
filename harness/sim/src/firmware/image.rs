//! The device side of meterbench's firmware image format: what the virtual
//! meter checks when a download completes and what its bootloader checks
//! before it runs a new image. The format is defined by the server's
//! firmware store (harness/server/src/firmware/image.rs, which writes the
//! test images); a device carries its own copy of the check, as a real
//! bootloader does.
//!
//! Layout: a 64-byte header (big-endian integers) then the body.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4  | magic `b"MBFW"` |
//! | 4  | 1  | format version, `1` |
//! | 5  | 1  | self-test byte: `0x00` passes, anything else fails at boot |
//! | 6  | 2  | header length, `64` |
//! | 8  | 16 | firmware version, UTF-8, NUL-padded |
//! | 24 | 4  | body length |
//! | 28 | 32 | SHA-256 of the body |
//! | 60 | 4  | reserved |

use lwm2m::firmware::UpdateResult;
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"MBFW";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 64;
const VERSION_LEN: usize = 16;
/// Self-test byte of an image that boots.
pub const SELF_TEST_PASS: u8 = 0x00;

/// The decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHeader {
    pub self_test: u8,
    pub version: String,
    pub body_len: u32,
    pub body_sha256: [u8; 32],
}

impl ImageHeader {
    /// What the bootloader's self-test says about the image.
    pub fn self_test_passes(&self) -> bool {
        self.self_test == SELF_TEST_PASS
    }
}

/// Why an image is refused, and so the Update Result object 5 reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("{len} bytes is shorter than the {HEADER_LEN}-byte image header")]
    TooShort { len: usize },
    #[error("magic {found:02x?} is not \"MBFW\"")]
    Magic { found: [u8; 4] },
    #[error("image format version {0}, only {FORMAT_VERSION} is known")]
    FormatVersion(u8),
    #[error("header length {0}, expected {HEADER_LEN}")]
    HeaderLength(u16),
    #[error("the version string is not UTF-8")]
    VersionNotUtf8,
    #[error("the header declares a {declared}-byte body, {actual} bytes follow it")]
    BodyLength { declared: u32, actual: usize },
    #[error("the body's SHA-256 is {actual}, the header says {declared}")]
    BodySha256 { declared: String, actual: String },
}

impl ImageError {
    /// Object 5's Update Result for this failure (Core §E.6, resource 5):
    /// 6 Unsupported package type for a file that is not an image at all,
    /// 5 Integrity check failure for a body that is not what the header says.
    pub fn update_result(&self) -> UpdateResult {
        match self {
            ImageError::BodyLength { .. } | ImageError::BodySha256 { .. } => {
                UpdateResult::IntegrityCheckFailure
            }
            _ => UpdateResult::UnsupportedPackageType,
        }
    }
}

/// Decodes the header at the start of `image`; never panics.
pub fn parse_header(image: &[u8]) -> Result<ImageHeader, ImageError> {
    let h = image
        .get(..HEADER_LEN)
        .ok_or(ImageError::TooShort { len: image.len() })?;
    if h[0..4] != MAGIC {
        return Err(ImageError::Magic {
            found: [h[0], h[1], h[2], h[3]],
        });
    }
    if h[4] != FORMAT_VERSION {
        return Err(ImageError::FormatVersion(h[4]));
    }
    let header_len = u16::from_be_bytes([h[6], h[7]]);
    if usize::from(header_len) != HEADER_LEN {
        return Err(ImageError::HeaderLength(header_len));
    }
    let raw = &h[8..8 + VERSION_LEN];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(VERSION_LEN);
    let version = std::str::from_utf8(&raw[..end])
        .map_err(|_| ImageError::VersionNotUtf8)?
        .to_owned();
    let mut body_sha256 = [0u8; 32];
    body_sha256.copy_from_slice(&h[28..60]);
    Ok(ImageHeader {
        self_test: h[5],
        version,
        body_len: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
        body_sha256,
    })
}

/// The integrity check: a valid header, and a body exactly as long and with
/// exactly the SHA-256 the header declares.
pub fn check(image: &[u8]) -> Result<ImageHeader, ImageError> {
    let header = parse_header(image)?;
    let body = &image[HEADER_LEN..];
    if body.len() != header.body_len as usize {
        return Err(ImageError::BodyLength {
            declared: header.body_len,
            actual: body.len(),
        });
    }
    let actual: [u8; 32] = Sha256::digest(body).into();
    if actual != header.body_sha256 {
        return Err(ImageError::BodySha256 {
            declared: hex::encode(header.body_sha256),
            actual: hex::encode(actual),
        });
    }
    Ok(header)
}

/// Builds an image (tests, and a factory image for the fixtures' format).
pub fn build(version: &str, self_test: u8, body: &[u8]) -> Vec<u8> {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = FORMAT_VERSION;
    h[5] = self_test;
    h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    let v = version.as_bytes();
    let n = v.len().min(VERSION_LEN);
    h[8..8 + n].copy_from_slice(&v[..n]);
    h[24..28].copy_from_slice(&(body.len() as u32).to_be_bytes());
    let digest: [u8; 32] = Sha256::digest(body).into();
    h[28..60].copy_from_slice(&digest);
    let mut image = h.to_vec();
    image.extend_from_slice(body);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_image_passes_and_keeps_its_version() {
        let image = build("2.0", SELF_TEST_PASS, b"body");
        let h = check(&image).unwrap();
        assert_eq!(h.version, "2.0");
        assert!(h.self_test_passes());
        assert!(!check(&build("2.0", 0xBD, b"x")).unwrap().self_test_passes());
    }

    #[test]
    fn the_fixture_header_layout_is_byte_exact() {
        // Header of the server's generator for ("2.0", pass, b"abc").
        let image = build("2.0", 0, b"abc");
        assert_eq!(&image[..8], &[b'M', b'B', b'F', b'W', 1, 0, 0, 64]);
        assert_eq!(&image[8..11], b"2.0");
        assert_eq!(&image[24..28], &[0, 0, 0, 3]);
        assert_eq!(
            hex::encode(&image[28..60]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_flipped_byte_is_an_integrity_failure_and_garbage_an_unsupported_package() {
        let mut image = build("2.0", 0, &[7u8; 100]);
        image[HEADER_LEN + 3] ^= 1;
        let e = check(&image).unwrap_err();
        assert_eq!(e.update_result(), UpdateResult::IntegrityCheckFailure);
        let e = check(&image[..image.len() - 1]).unwrap_err();
        assert_eq!(e.update_result(), UpdateResult::IntegrityCheckFailure);
        let e = check(&[0u8; 80]).unwrap_err();
        assert_eq!(e.update_result(), UpdateResult::UnsupportedPackageType);
    }

    #[test]
    fn check_never_panics() {
        for len in 0..HEADER_LEN + 3 {
            let _ = check(&vec![0xff; len]);
            let mut v = vec![0u8; len];
            if len >= 8 {
                v[..4].copy_from_slice(&MAGIC);
                v[4] = 1;
                v[7] = 64;
            }
            let _ = check(&v);
        }
    }
}
