//! `ref` and `join_ref` values as the client sent them.
//!
//! phoenix.js sends its refs as JSON strings, other clients as numbers; Phoenix
//! echoes whatever value it received, and clients that compare refs with `==`
//! in a typed language (Python's `phxsocket`, `chunnel`) wait forever for a
//! reply whose ref came back as `"4"` instead of `4`. A [`Ref`] therefore keeps
//! the JSON type next to the text, and the encoders write it back unchanged.

use std::ops::Deref;
use std::sync::Arc;

/// A `ref` or `join_ref` received from a client: a JSON string or a JSON number
/// (kept as its JSON text). A JSON `null` is the absence of a ref
/// (`Option<Ref>` is `None`). Dereferences to the text, so that
/// `message.ref_.as_deref() == Some("4")` holds for `"4"` and for `4` alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ref {
    text: Arc<str>,
    number: bool,
}

impl Ref {
    /// A ref the client sent as a JSON string (what phoenix.js does).
    pub fn string(text: impl Into<Arc<str>>) -> Ref {
        Ref {
            text: text.into(),
            number: false,
        }
    }

    /// A ref the client sent as a JSON number; encoded back as that number.
    pub fn number(number: &serde_json::Number) -> Ref {
        Ref {
            text: Arc::from(number.to_string()),
            number: true,
        }
    }

    /// The ref's text: the string, or the number's JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the client sent this ref as a JSON number.
    pub fn is_number(&self) -> bool {
        self.number
    }

    /// A borrowed view, for the encoders.
    pub fn view(&self) -> RefStr<'_> {
        RefStr {
            text: &self.text,
            number: self.number,
        }
    }
}

impl Deref for Ref {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl From<&str> for Ref {
    fn from(text: &str) -> Ref {
        Ref::string(text)
    }
}

impl From<String> for Ref {
    fn from(text: String) -> Ref {
        Ref::string(text)
    }
}

/// A borrowed [`Ref`], as the encoders take it: a plain `&str` converts into a
/// string ref (`Some("4".into())`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefStr<'a> {
    text: &'a str,
    number: bool,
}

impl<'a> RefStr<'a> {
    /// The ref's text: the string, or the number's JSON text.
    pub fn as_str(self) -> &'a str {
        self.text
    }

    /// Whether the ref is written as a JSON number.
    pub fn is_number(self) -> bool {
        self.number
    }
}

impl<'a> From<&'a str> for RefStr<'a> {
    fn from(text: &'a str) -> RefStr<'a> {
        RefStr {
            text,
            number: false,
        }
    }
}

impl<'a> From<&'a Ref> for RefStr<'a> {
    fn from(r: &'a Ref) -> RefStr<'a> {
        r.view()
    }
}
