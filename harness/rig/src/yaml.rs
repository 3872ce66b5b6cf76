//! Reading the crate's YAML files (rig files, dialect files) with serde-saphyr,
//! so that a mistake is reported as `file:line:column: what was expected`.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::RigError;

/// Reads and deserializes `path`.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<T, RigError> {
    let text = std::fs::read_to_string(path).map_err(|source| RigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Deserializes `text`; `origin` names it in errors.
///
/// YAML 1.2 booleans only (`strict_booleans`): in YAML 1.1 `on:`/`off:` are
/// booleans, which would turn a command power's `on:` key into `true`.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, RigError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        RigError::File {
            file: origin.to_path_buf(),
            line,
            column,
            message: strip_location(&e.to_string(), line, column),
            snippet: snippet(text, line, column),
        }
    })
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
