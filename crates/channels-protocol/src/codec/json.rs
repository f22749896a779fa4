//! Helpers shared by the two JSON serializers: writing escaped strings
//! straight into the output buffer and reading the envelope fields.

use serde_json::Value;

use super::DecodeError;
use super::error::json_type;
use super::refs::{Ref, RefStr};

/// The envelope fields of an outbound frame; the payload is written by a
/// closure so that pre-serialized JSON is copied, never re-parsed.
pub(crate) struct Fields<'a> {
    pub(crate) join_ref: Option<RefStr<'a>>,
    pub(crate) ref_: Option<RefStr<'a>>,
    pub(crate) topic: &'a str,
    pub(crate) event: &'a str,
}

impl Fields<'_> {
    /// A capacity that fits the frame without reallocation in the common case
    /// (no characters needing escapes).
    pub(crate) fn capacity_hint(&self, extra: usize) -> usize {
        let len = |s: Option<RefStr<'_>>| s.map_or(4, |s| s.as_str().len() + 2);
        len(self.join_ref) + len(self.ref_) + self.topic.len() + self.event.len() + extra + 48
    }
}

/// Appends `s` as a JSON string literal.
///
/// Topics, events and refs rarely need escapes, so those are copied between
/// quotes directly; anything else is escaped by serde_json.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let plain = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail and a str always serializes.
    let result = serde_json::to_writer(&mut *out, s);
    debug_assert!(result.is_ok(), "serializing a str into a Vec failed");
}

/// Appends a ref as the JSON value it was received as, or `null`.
pub(crate) fn write_opt_ref(out: &mut Vec<u8>, r: Option<RefStr<'_>>) {
    match r {
        // The text of a number ref came from serde_json's own number formatting.
        Some(r) if r.is_number() => out.extend_from_slice(r.as_str().as_bytes()),
        Some(r) => write_str(out, r.as_str()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Reads a `join_ref`/`ref` field: a string, a number (kept as a number, to be
/// echoed as one), or `null` (`None`).
pub(crate) fn read_ref(value: Value, field: &'static str) -> Result<Option<Ref>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Ref::string(s))),
        Value::Number(n) => Ok(Some(Ref::number(&n))),
        other => Err(DecodeError::WrongType {
            field,
            expected: "a string, a number or null",
            found: json_type(&other),
        }),
    }
}

/// Reads a `topic`/`event` field, which must be a string.
pub(crate) fn read_string(value: Value, field: &'static str) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(DecodeError::WrongType {
            field,
            expected: "a string",
            found: json_type(&other),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The direct-copy fast path writes exactly what serde_json writes.
        #[test]
        fn write_str_matches_serde_json(s in any::<String>()) {
            let mut out = Vec::new();
            super::write_str(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }
    }

    #[test]
    fn write_str_escapes_quotes_backslashes_and_controls() {
        let mut out = Vec::new();
        super::write_str(&mut out, "a\"b\\c\u{1f}\u{7f}é");
        assert_eq!(
            out,
            br#""a\"b\\c\u001f"#.iter().copied().chain("\u{7f}é\"".bytes()).collect::<Vec<u8>>()
        );
    }
}
