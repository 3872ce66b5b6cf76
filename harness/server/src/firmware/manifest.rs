//! The firmware manifest: a YAML file listing the images of a store folder.
//!
//! ```yaml
//! images:
//!   - name: meter-2.0.bin     # the file name, and the name in the URL /fw/<name>
//!     version: "2.0"          # the firmware version the image installs
//!     size: 65536             # bytes
//!     sha256: 9f86d0…         # 64 hex digits, of the whole file
//!   - name: meter-2.0-broken.bin
//!     version: "2.0"
//!     size: 65536
//!     sha256: …
//!     broken: true            # the device's bootloader self-test rejects it
//!   - name: meter-2.0-corrupt.bin
//!     version: "2.0"
//!     size: 65536
//!     sha256: …               # of the image as it was meant to be
//!     corrupt: true           # the file on disk deliberately does not match
//! ```
//!
//! Errors name the manifest file, line and column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::FirmwareError;

/// File name of the manifest inside a store folder.
pub const MANIFEST_FILE: &str = "manifest.yaml";

/// The parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it was read from (for error messages).
    pub file: PathBuf,
    pub images: Vec<ManifestEntry>,
}

/// One image as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    pub name: String,
    pub version: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// The device's bootloader self-test rejects this image on purpose.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub broken: bool,
    /// The file deliberately differs from `sha256`: the store serves it
    /// anyway and the device must report an integrity failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub corrupt: bool,
    /// Not an image of meterbench's format at all (no `MBFW` header): a
    /// package of a type the virtual meter does not install, which it must
    /// refuse with Update Result 6 (LwM2M 1.1 Core §E.6, object 5).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
    /// Line and column of the entry in the manifest (1-based; 0 when built in code).
    #[serde(skip)]
    pub line: u64,
    #[serde(skip)]
    pub column: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    images: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    version: String,
    size: u64,
    sha256: String,
    #[serde(default)]
    broken: bool,
    #[serde(default)]
    corrupt: bool,
    #[serde(default)]
    foreign: bool,
}

/// Whether `name` may name an image: one path segment of ASCII letters,
/// digits, `.`, `_`, `-`, starting with a letter or digit, at most 128
/// characters. Both file servers rely on this: a name that passes can never
/// leave the store folder or be read as a directory.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Manifest, FirmwareError> {
        let text = std::fs::read_to_string(path).map_err(|source| FirmwareError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(&text, path)
    }

    /// Parses manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, FirmwareError> {
        let options = serde_saphyr::options! {
            strict_booleans: true,
            with_snippet: false,
        };
        let raw: RawManifest = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            FirmwareError::Manifest {
                file: origin.to_path_buf(),
                line,
                column,
                message: strip_location(&e.to_string(), line, column),
                snippet: snippet(text, line, column),
            }
        })?;
        let mut names = BTreeSet::new();
        let mut images = Vec::with_capacity(raw.images.len());
        for spanned in raw.images {
            let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
            let r = spanned.value;
            let fail = |message: String| FirmwareError::Entry {
                file: origin.to_path_buf(),
                line,
                column,
                name: r.name.clone(),
                message,
            };
            if !is_valid_name(&r.name) {
                return Err(fail(
                    "a name is one file name of letters, digits, '.', '_' and '-', starting with a letter or digit".into(),
                ));
            }
            if !names.insert(r.name.clone()) {
                return Err(fail("listed twice".into()));
            }
            let sha = r.sha256.to_ascii_lowercase();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(fail(format!(
                    "sha256 must be 64 hex digits, got {:?}",
                    r.sha256
                )));
            }
            if r.version.is_empty() || r.version.len() > super::image::VERSION_LEN {
                return Err(fail(format!(
                    "version must be 1 to {} bytes, got {:?}",
                    super::image::VERSION_LEN,
                    r.version
                )));
            }
            images.push(ManifestEntry {
                name: r.name,
                version: r.version,
                size: r.size,
                sha256: sha,
                broken: r.broken,
                corrupt: r.corrupt,
                foreign: r.foreign,
                line,
                column,
            });
        }
        Ok(Manifest {
            file: origin.to_path_buf(),
            images,
        })
    }

    /// The manifest as YAML text, with a comment saying where it comes from.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# Firmware images of this folder. Written by `server::firmware::generate_fixtures`:\n\
             # the images are generated (deterministic content), only this manifest is committed.\n\
             # Image format: harness/server/src/firmware/image.rs.\n\
             images:\n",
        );
        for e in &self.images {
            out.push_str(&format!("  - name: {}\n", e.name));
            out.push_str(&format!("    version: \"{}\"\n", e.version));
            out.push_str(&format!("    size: {}\n", e.size));
            out.push_str(&format!("    sha256: {}\n", e.sha256));
            if e.broken {
                out.push_str("    broken: true\n");
            }
            if e.corrupt {
                out.push_str("    corrupt: true\n");
            }
            if e.foreign {
                out.push_str("    foreign: true\n");
            }
        }
        out
    }
}

/// serde-saphyr appends (or prefixes) the location; ours leads the message.
fn strip_location(message: &str, line: u64, column: u64) -> String {
    let m = message.trim();
    let m = m.strip_prefix("error: ").unwrap_or(m);
    let m = m
        .strip_prefix(&format!("line {line} column {column}: "))
        .unwrap_or(m);
    let m = m
        .strip_suffix(&format!(" at line {line}, column {column}"))
        .unwrap_or(m);
    m.to_owned()
}

/// The offending source line with a caret under the column, or empty.
fn snippet(text: &str, line: u64, column: u64) -> String {
    let Some(src) = usize::try_from(line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|l| text.lines().nth(l))
    else {
        return String::new();
    };
    let pad = usize::try_from(column.saturating_sub(1))
        .unwrap_or(0)
        .min(src.len());
    format!("{src}\n{}^", " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn a_foreign_image_keeps_its_flag_through_the_yaml() {
        let text = format!(
            "images:\n  - name: f.bin\n    version: \"2.0\"\n    size: 3\n    sha256: {SHA}\n    foreign: true\n"
        );
        let m = Manifest::parse(&text, Path::new("m.yaml")).unwrap();
        assert!(m.images[0].foreign);
        assert!(!m.images[0].corrupt && !m.images[0].broken);
        assert!(
            m.to_yaml().ends_with("    foreign: true\n"),
            "{}",
            m.to_yaml()
        );
    }

    #[test]
    fn parses_entries_with_their_lines() {
        let text = format!(
            "images:\n  - name: a.bin\n    version: \"1.0\"\n    size: 3\n    sha256: {SHA}\n  - name: b.bin\n    version: \"2\"\n    size: 4\n    sha256: {SHA}\n    broken: true\n"
        );
        let m = Manifest::parse(&text, Path::new("m.yaml")).unwrap();
        assert_eq!(m.images.len(), 2);
        assert_eq!(m.images[1].line, 6);
        assert!(m.images[1].broken);
        assert!(!m.images[0].corrupt);
        let again = Manifest::parse(&m.to_yaml(), Path::new("m.yaml")).unwrap();
        assert_eq!(again.images[1].name, "b.bin");
        assert_eq!(again.images[1].sha256, SHA);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_column() {
        let text = format!(
            "images:\n  - name: a.bin\n    version: \"1.0\"\n    size: 3\n    sha256: {SHA}\n    sha1: x\n"
        );
        let e = Manifest::parse(&text, Path::new("m.yaml")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("m.yaml:6:"), "{s}");
    }

    #[test]
    fn a_path_as_name_is_refused_with_its_line() {
        for bad in ["../x.bin", "/etc/passwd", "a/b", ".hidden", "a..b", ""] {
            let text = format!(
                "images:\n  - name: \"{bad}\"\n    version: \"1.0\"\n    size: 3\n    sha256: {SHA}\n"
            );
            let e = Manifest::parse(&text, Path::new("m.yaml")).unwrap_err();
            assert!(e.to_string().starts_with("m.yaml:2:"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_short_sha_and_a_duplicate_are_refused() {
        let text = "images:\n  - name: a.bin\n    version: \"1\"\n    size: 3\n    sha256: abc\n";
        assert!(Manifest::parse(text, Path::new("m.yaml"))
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
        let text = format!(
            "images:\n  - name: a.bin\n    version: \"1\"\n    size: 3\n    sha256: {SHA}\n  - name: a.bin\n    version: \"1\"\n    size: 3\n    sha256: {SHA}\n"
        );
        let e = Manifest::parse(&text, Path::new("m.yaml")).unwrap_err();
        assert!(e.to_string().starts_with("m.yaml:6:"), "{e}");
    }

    #[test]
    fn names_are_single_safe_segments() {
        assert!(is_valid_name("meter-2.0.bin"));
        assert!(is_valid_name("A_b-1"));
        for bad in ["..", ".", "%2e%2e", "a/b", "a\\b", "é.bin", " a", "a\0b"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
