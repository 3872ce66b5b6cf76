//! The firmware image format meterbench's test images use: the server's
//! firmware store writes it, and the virtual meter's download check and
//! bootloader self-test read it. One implementation, here, so the writer
//! and the device can never disagree about the layout.
//!
//! A real meter's images are the vendor's; this format only exists so that
//! the virtual meter can tell a good image from a broken or corrupt one the
//! way a real bootloader would, and report the Update Result a real device
//! would (OMA-TS-LightweightM2M-1.1 Core §E.6, resource /5/0/5).
//!
//! # Layout
//!
//! A 64-byte header followed by the body. Integers are big-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4  | magic `b"MBFW"` |
//! | 4  | 1  | format version, `1` |
//! | 5  | 1  | self-test byte: `0x00` passes; any other value makes the bootloader's self-test fail ([`SELF_TEST_FAIL`] in broken images) |
//! | 6  | 2  | header length, `64` |
//! | 8  | 16 | firmware version, UTF-8, padded with NUL bytes (e.g. `2.0`); what /3/0/3 and /5/0/7 report after the update |
//! | 24 | 4  | body length in bytes (file length − 64) |
//! | 28 | 32 | SHA-256 of the body |
//! | 60 | 4  | reserved, zero |
//! | 64 | …  | body |
//!
//! # What a device checks, and the Update Result it reports
//!
//! 1. When the download completes (before /5/0/3 State goes to 2 Downloaded),
//!    [`check`]: magic, format version and header length wrong → Update
//!    Result 6 "Unsupported package type"; body length not equal to the bytes
//!    received, or the body's SHA-256 not equal to the header's → Update
//!    Result 5 "Integrity check failure" ([`ImageError::update_result`]).
//!    Either way State returns to 0 Idle.
//! 2. When Update (/5/0/2) is executed, the image goes to the inactive slot
//!    and the meter reboots into it; the bootloader looks at the self-test
//!    byte ([`ImageHeader::self_test_passes`]). Non-zero → the bootloader
//!    rolls back to the previous slot and the meter reports Update Result 8
//!    "Firmware update failed"; zero → the new version runs and Update Result
//!    is 1 "Firmware updated successfully".
//!
//! The server's fixtures: `meter-2.0-broken.bin` passes check 1 and fails
//! check 2; `meter-2.0-corrupt.bin` has one body byte flipped after its
//! header was written, so it fails check 1 with Integrity check failure.

use sha2::{Digest, Sha256};

use super::UpdateResult;

/// First four bytes of every image.
pub const MAGIC: [u8; 4] = *b"MBFW";
/// The only format version defined.
pub const FORMAT_VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 64;
/// Longest firmware version string the header holds.
pub const VERSION_LEN: usize = 16;
/// Self-test byte value of a good image.
pub const SELF_TEST_PASS: u8 = 0x00;
/// Self-test byte value the generator writes into deliberately broken images.
pub const SELF_TEST_FAIL: u8 = 0xBD;

/// The decoded header of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHeader {
    pub format_version: u8,
    pub self_test: u8,
    pub version: String,
    pub body_len: u32,
    pub body_sha256: [u8; 32],
}

impl ImageHeader {
    /// Whether the bootloader's self-test accepts the image.
    pub fn self_test_passes(&self) -> bool {
        self.self_test == SELF_TEST_PASS
    }

    /// The 64 header bytes. A version longer than [`VERSION_LEN`] bytes is
    /// cut (the server's manifest refuses such versions before this).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = self.format_version;
        h[5] = self.self_test;
        h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        let v = self.version.as_bytes();
        let n = v.len().min(VERSION_LEN);
        h[8..8 + n].copy_from_slice(&v[..n]);
        h[24..28].copy_from_slice(&self.body_len.to_be_bytes());
        h[28..60].copy_from_slice(&self.body_sha256);
        h
    }

    /// Decodes the header at the start of `image`, without looking at the
    /// body. Never panics.
    pub fn parse(image: &[u8]) -> Result<ImageHeader, ImageError> {
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
        let raw_version = &h[8..8 + VERSION_LEN];
        let end = raw_version
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(VERSION_LEN);
        let version = std::str::from_utf8(&raw_version[..end])
            .map_err(|_| ImageError::VersionNotUtf8)?
            .to_owned();
        let mut body_sha256 = [0u8; 32];
        body_sha256.copy_from_slice(&h[28..60]);
        Ok(ImageHeader {
            format_version: h[4],
            self_test: h[5],
            version,
            body_len: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
            body_sha256,
        })
    }
}

/// Why an image fails the download check, and so the Update Result object 5
/// reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("{len} bytes is shorter than the {HEADER_LEN}-byte image header")]
    TooShort { len: usize },
    #[error("magic {found:02x?} is not \"MBFW\"")]
    Magic { found: [u8; 4] },
    #[error("format version {0}, only {FORMAT_VERSION} is defined")]
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
    /// The Update Result (/5/0/5) a device reports for this failure
    /// (OMA-TS-LightweightM2M-1.1 Core §E.6): 6 Unsupported package type for
    /// a file that is not an image at all, 5 Integrity check failure for a
    /// body that is not what the header says.
    pub fn update_result(&self) -> UpdateResult {
        match self {
            ImageError::BodyLength { .. } | ImageError::BodySha256 { .. } => {
                UpdateResult::IntegrityCheckFailure
            }
            _ => UpdateResult::UnsupportedPackageType,
        }
    }
}

/// The download check (step 1 of the module doc): the header is valid and
/// the body is exactly as long and hashes exactly as the header declares.
pub fn check(image: &[u8]) -> Result<ImageHeader, ImageError> {
    let header = ImageHeader::parse(image)?;
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

/// Builds an image from a version string, a self-test byte and a body.
pub fn build(version: &str, self_test: u8, body: &[u8]) -> Vec<u8> {
    let header = ImageHeader {
        format_version: FORMAT_VERSION,
        self_test,
        version: version.to_owned(),
        body_len: body.len() as u32,
        body_sha256: Sha256::digest(body).into(),
    };
    let mut image = Vec::with_capacity(HEADER_LEN + body.len());
    image.extend_from_slice(&header.encode());
    image.extend_from_slice(body);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_image_passes_the_check_and_keeps_its_fields() {
        let image = build("2.0", SELF_TEST_PASS, b"hello body");
        let h = check(&image).unwrap();
        assert_eq!(h.version, "2.0");
        assert_eq!(h.body_len, 10);
        assert_eq!(h.format_version, FORMAT_VERSION);
        assert!(h.self_test_passes());
        assert_eq!(image.len(), HEADER_LEN + 10);
        assert_eq!(
            ImageHeader::parse(&image).unwrap().encode(),
            image[..HEADER_LEN]
        );
    }

    #[test]
    fn the_header_layout_is_byte_exact() {
        // ("2.0", pass, b"abc"): SHA-256("abc") is the FIPS 180-2 B.1 vector.
        let image = build("2.0", SELF_TEST_PASS, b"abc");
        assert_eq!(&image[..8], &[b'M', b'B', b'F', b'W', 1, 0, 0, 64]);
        assert_eq!(&image[8..11], b"2.0");
        assert!(image[11..24].iter().all(|b| *b == 0));
        assert_eq!(&image[24..28], &[0, 0, 0, 3]);
        assert_eq!(
            hex::encode(&image[28..60]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(&image[60..], b"\0\0\0\0abc");
    }

    #[test]
    fn a_flipped_body_byte_is_an_integrity_failure() {
        let mut image = build("2.0", SELF_TEST_PASS, &[7u8; 100]);
        image[HEADER_LEN + 50] ^= 1;
        let e = check(&image).unwrap_err();
        assert!(matches!(e, ImageError::BodySha256 { .. }), "{e}");
        assert_eq!(e.update_result(), UpdateResult::IntegrityCheckFailure);
    }

    #[test]
    fn a_truncated_image_is_an_integrity_failure() {
        let image = build("2.0", SELF_TEST_PASS, &[7u8; 100]);
        let e = check(&image[..image.len() - 1]).unwrap_err();
        assert_eq!(
            e,
            ImageError::BodyLength {
                declared: 100,
                actual: 99
            }
        );
        assert_eq!(e.update_result(), UpdateResult::IntegrityCheckFailure);
    }

    #[test]
    fn a_foreign_file_is_an_unsupported_package() {
        let e = check(&[0u8; 80]).unwrap_err();
        assert!(matches!(e, ImageError::Magic { .. }));
        assert_eq!(e.update_result(), UpdateResult::UnsupportedPackageType);
        assert_eq!(check(b"MBFW").unwrap_err(), ImageError::TooShort { len: 4 });
    }

    #[test]
    fn a_broken_image_passes_the_check_but_not_the_self_test() {
        let h = check(&build("2.0", SELF_TEST_FAIL, b"x")).unwrap();
        assert!(!h.self_test_passes());
    }

    #[test]
    fn check_never_panics_on_short_or_garbage_input() {
        for len in 0..HEADER_LEN + 3 {
            let _ = check(&vec![0xff; len]);
            let mut v = vec![0u8; len];
            if len >= 8 {
                v[..4].copy_from_slice(&MAGIC);
                v[4] = FORMAT_VERSION;
                v[7] = HEADER_LEN as u8;
            }
            let _ = check(&v);
        }
    }
}
