//! Reading SCPI program messages the way an instrument does: `;`-separated
//! message units (IEEE 488.2 §7.3), case-insensitive headers in short or
//! long form, optional nodes, and the SCPI-99 §6.2.4 path rule (a unit
//! without a leading `:` continues from the previous header's branch, so
//! `MEAS:VOLT?;CURR?` asks for `MEAS:CURR?`).

/// One program message unit, its header resolved against the current path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub header: Header,
    pub query: bool,
    /// Comma-separated parameters, trimmed, quotes kept.
    pub params: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Header {
    /// `*IDN`, `*RST`... (uppercase, with the star).
    Common(String),
    /// The mnemonics from the root, uppercase: `["MEAS", "CURR"]`.
    Compound(Vec<String>),
}

/// A message unit that is not even well-formed (SCPI-99 §21.8.9 codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub code: i32,
    pub text: &'static str,
}

const INVALID_SEPARATOR: SyntaxError = SyntaxError {
    code: -103,
    text: "Invalid separator",
};
const SYNTAX: SyntaxError = SyntaxError {
    code: -102,
    text: "Syntax error",
};

/// Splits a program message into its units at `;` outside quoted strings.
pub(crate) fn split_units(message: &str) -> Vec<&str> {
    let mut units = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in message.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                units.push(&message[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    units.push(&message[start..]);
    units
}

/// Parses one unit; `path` is the current branch (updated by compound
/// headers, untouched by common commands).
pub(crate) fn parse_unit(text: &str, path: &mut Vec<String>) -> Result<Unit, SyntaxError> {
    let text = text.trim();
    let (header, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let params = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(',').map(|p| p.trim().to_owned()).collect()
    };
    let (name, query) = match header.strip_suffix('?') {
        Some(h) => (h, true),
        None => (header, false),
    };
    if name.is_empty() {
        return Err(SYNTAX);
    }
    if let Some(common) = name.strip_prefix('*') {
        if common.is_empty() || !common.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(SYNTAX);
        }
        return Ok(Unit {
            header: Header::Common(name.to_ascii_uppercase()),
            query,
            params,
        });
    }
    let (absolute, body) = match name.strip_prefix(':') {
        Some(b) => (true, b),
        None => (false, name),
    };
    let mnemonics: Vec<String> = body.split(':').map(str::to_ascii_uppercase).collect();
    if mnemonics
        .iter()
        .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(if body.contains("::") || body.ends_with(':') {
            INVALID_SEPARATOR
        } else {
            SYNTAX
        });
    }
    let mut full = if absolute { Vec::new() } else { path.clone() };
    full.extend(mnemonics);
    *path = full[..full.len() - 1].to_vec();
    Ok(Unit {
        header: Header::Compound(full),
        query,
        params,
    })
}

/// Whether `mnemonics` spell `pattern`, a header as manuals write it:
/// `[SOURce:]VOLTage[:LEVel]`, upper case marking the short form.
pub(crate) fn header_matches(pattern: &str, mnemonics: &[String]) -> bool {
    let mut nodes: Vec<(String, bool)> = Vec::new();
    let mut node = String::new();
    let (mut in_brackets, mut node_optional) = (false, false);
    let mut flush = |node: &mut String, optional: bool| {
        if !node.is_empty() {
            nodes.push((std::mem::take(node), optional));
        }
    };
    for c in pattern.chars() {
        match c {
            '[' | ']' | ':' => {
                flush(&mut node, node_optional);
                match c {
                    '[' => in_brackets = true,
                    ']' => in_brackets = false,
                    _ => {}
                }
            }
            _ => {
                if node.is_empty() {
                    node_optional = in_brackets;
                }
                node.push(c);
            }
        }
    }
    flush(&mut node, node_optional);
    let nodes: Vec<(&str, bool)> = nodes.iter().map(|(n, o)| (n.as_str(), *o)).collect();
    matches_nodes(&nodes, mnemonics)
}

fn matches_nodes(nodes: &[(&str, bool)], mnemonics: &[String]) -> bool {
    let Some(((node, optional), rest)) = nodes.split_first() else {
        return mnemonics.is_empty();
    };
    let here = mnemonics
        .first()
        .is_some_and(|m| spells(node, m) && matches_nodes(rest, &mnemonics[1..]));
    here || (*optional && matches_nodes(rest, mnemonics))
}

/// A mnemonic is the node's short form (its upper-case letters) or its
/// whole long form, in any case; nothing in between (`VOLTA` is neither).
fn spells(node: &str, mnemonic: &str) -> bool {
    let short: String = node.chars().filter(|c| !c.is_ascii_lowercase()).collect();
    mnemonic == short || mnemonic == node.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mn(s: &[&str]) -> Vec<String> {
        s.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn short_and_long_forms_in_any_case_match_but_nothing_between() {
        let p = "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]";
        assert!(header_matches(p, &mn(&["VOLT"])));
        assert!(header_matches(p, &mn(&["VOLTAGE"])));
        assert!(header_matches(
            p,
            &mn(&["SOUR", "VOLT", "LEV", "IMM", "AMPL"])
        ));
        assert!(header_matches(p, &mn(&["SOURCE", "VOLT", "AMPLITUDE"])));
        assert!(!header_matches(p, &mn(&["VOLTA"])));
        assert!(!header_matches(p, &mn(&["VOL"])));
        assert!(!header_matches(p, &mn(&["CURR"])));
    }

    #[test]
    fn path_rule_continues_from_the_previous_branch() {
        let mut path = Vec::new();
        let units: Vec<Unit> = split_units("meas:volt?;CURR?;:outp on;*IDN?;OUTP?")
            .into_iter()
            .map(|u| parse_unit(u, &mut path).unwrap())
            .collect();
        assert_eq!(units[0].header, Header::Compound(mn(&["MEAS", "VOLT"])));
        assert_eq!(units[1].header, Header::Compound(mn(&["MEAS", "CURR"])));
        assert_eq!(units[2].header, Header::Compound(mn(&["OUTP"])));
        assert_eq!(units[2].params, vec!["on".to_string()]);
        assert_eq!(units[3].header, Header::Common("*IDN".into()));
        assert!(units[3].query);
        assert_eq!(units[4].header, Header::Compound(mn(&["OUTP"])));
    }

    #[test]
    fn quoted_semicolons_do_not_split_and_bad_separators_are_refused() {
        assert_eq!(split_units("DISP:TEXT \"a;b\";*CLS").len(), 2);
        assert_eq!(
            parse_unit("MEAS::VOLT?", &mut Vec::new()),
            Err(INVALID_SEPARATOR)
        );
        assert_eq!(parse_unit("?", &mut Vec::new()), Err(SYNTAX));
    }
}
