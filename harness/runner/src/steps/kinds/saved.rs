//! `{saved:NAME}` and `{saved:NAME+N}` in a case value: a value the device
//! gave earlier in the case (`read: {save: NAME}`), so that a case can write
//! a value derived from the device's own (ETS int-102 writes the Lifetime it
//! read plus 10) and put back what it changed, instead of assuming the
//! values of one vendor's configuration.

use std::collections::HashMap;

use crate::case::model::ScalarValue;
use crate::steps::error::{bench, StepError};

/// The case value with a whole-text `{saved:NAME}` or `{saved:NAME±N}`
/// replaced by the saved value (plus N); other values are returned as they
/// are. The saved text is typed back (`true`, `42`, `1.5`, else text), so
/// the object model types it as it would a literal in the case.
pub fn expand(
    value: &ScalarValue,
    saved: &HashMap<String, String>,
) -> Result<ScalarValue, StepError> {
    let ScalarValue::Text(text) = value else {
        return Ok(value.clone());
    };
    let Some(inner) = text
        .trim()
        .strip_prefix("{saved:")
        .and_then(|t| t.strip_suffix('}'))
    else {
        return Ok(value.clone());
    };
    let (name, offset) = match inner.find(['+', '-']) {
        Some(at) => {
            let n: i64 = inner[at..]
                .trim_start_matches('+')
                .trim()
                .parse()
                .map_err(|_| {
                    bench(format!(
                        "{text}: the offset after {:?} is not an integer",
                        &inner[..at]
                    ))
                })?;
            (inner[..at].trim(), Some(n))
        }
        None => (inner.trim(), None),
    };
    let raw = saved.get(name).ok_or_else(|| {
        bench(format!(
            "{text}: nothing was saved as {name:?} earlier in the case (a `read: {{path, save: {name}}}` step saves it)"
        ))
    })?;
    let typed = typed_text(raw);
    match offset {
        None => Ok(typed),
        Some(n) => match typed {
            ScalarValue::Integer(i) => i
                .checked_add(n)
                .map(ScalarValue::Integer)
                .ok_or_else(|| bench(format!("{text}: {i} {n:+} overflows"))),
            ScalarValue::Float(f) => Ok(ScalarValue::Float(f + n as f64)),
            other => Err(bench(format!(
                "{text}: the saved value {other} is not a number, so {n:+} cannot be added"
            ))),
        },
    }
}

/// A saved value's text as the case value it would have been in YAML. A
/// number that would not be written back the same (a version "1.0") stays
/// text, so that it still equals the string it was read from.
fn typed_text(raw: &str) -> ScalarValue {
    match raw.trim() {
        "true" => ScalarValue::Bool(true),
        "false" => ScalarValue::Bool(false),
        t => t
            .parse::<i64>()
            .map(ScalarValue::Integer)
            .or_else(|_| t.parse::<f64>().map(ScalarValue::Float))
            .ok()
            .filter(|v| v.to_string() == t)
            .unwrap_or_else(|| ScalarValue::Text(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> HashMap<String, String> {
        HashMap::from([
            ("lifetime".to_owned(), "30".to_owned()),
            ("flag".to_owned(), "false".to_owned()),
            ("name".to_owned(), "meter-7".to_owned()),
        ])
    }

    fn text(t: &str) -> ScalarValue {
        ScalarValue::Text(t.to_owned())
    }

    #[test]
    fn a_saved_value_is_typed_back_and_may_be_offset() {
        let s = saved();
        assert_eq!(
            expand(&text("{saved:lifetime}"), &s).unwrap(),
            ScalarValue::Integer(30)
        );
        assert_eq!(
            expand(&text("{saved:lifetime+10}"), &s).unwrap(),
            ScalarValue::Integer(40)
        );
        assert_eq!(
            expand(&text("{saved:lifetime-5}"), &s).unwrap(),
            ScalarValue::Integer(25)
        );
        assert_eq!(
            expand(&text("{saved:flag}"), &s).unwrap(),
            ScalarValue::Bool(false)
        );
        assert_eq!(expand(&text("{saved:name}"), &s).unwrap(), text("meter-7"));
        // A firmware version read as "1.0" must still equal "1.0", not 1.
        let s = HashMap::from([("version".to_owned(), "1.0".to_owned())]);
        assert_eq!(expand(&text("{saved:version}"), &s).unwrap(), text("1.0"));
    }

    #[test]
    fn other_values_pass_unchanged() {
        let s = saved();
        assert_eq!(expand(&text("U"), &s).unwrap(), text("U"));
        assert_eq!(
            expand(&ScalarValue::Integer(7), &s).unwrap(),
            ScalarValue::Integer(7)
        );
        assert_eq!(
            expand(&text("x {saved:lifetime}"), &s).unwrap(),
            text("x {saved:lifetime}")
        );
    }

    #[test]
    fn a_name_never_saved_or_a_bad_offset_is_a_clear_error() {
        let s = saved();
        let e = expand(&text("{saved:lt}"), &s).unwrap_err().to_string();
        assert!(e.contains("\"lt\"") && e.contains("save"), "{e}");
        let e = expand(&text("{saved:lifetime+x}"), &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("offset"), "{e}");
        let e = expand(&text("{saved:name+1}"), &s).unwrap_err().to_string();
        assert!(e.contains("not a number"), "{e}");
    }
}
