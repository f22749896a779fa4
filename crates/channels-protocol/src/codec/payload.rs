//! Payload types: what clients send ([`Payload`]) and what the server sends
//! ([`OutPayload`], whose JSON form is a pre-serialized [`JsonObject`]).

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::EncodeError;
use super::error::json_type;

/// The payload of a message received from a client.
///
/// Clients may send any JSON value (Phoenix hands it to `handle_in` as-is),
/// or raw bytes in a V2 binary frame (phoenix.js sends an `ArrayBuffer`
/// payload that way).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON text frame's payload; any JSON value.
    Json(Value),
    /// A binary frame's payload, a zero-copy slice of the received frame.
    Binary(Bytes),
}

/// The payload of a message the server sends: a JSON object or binary data.
///
/// Phoenix only sends maps (or `{:binary, data}`), and phoenix.js relies on
/// it, so the JSON form is a [`JsonObject`] whose object-ness was checked when
/// it was built.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutPayload {
    /// Sent in a text frame.
    Json(JsonObject),
    /// Sent in a V2 binary frame; V1 connections cannot receive it.
    Binary(Bytes),
}

impl OutPayload {
    /// The empty object `{}`, the payload of most acknowledgements.
    pub fn empty() -> Self {
        OutPayload::Json(JsonObject::empty())
    }

    /// The payload's size in bytes (JSON text or binary data).
    pub fn len(&self) -> usize {
        match self {
            OutPayload::Json(object) => object.len(),
            OutPayload::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload has no bytes at all (never true for JSON, which is
    /// at least `{}`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<JsonObject> for OutPayload {
    fn from(object: JsonObject) -> Self {
        OutPayload::Json(object)
    }
}

/// The text of one JSON object, validated once and then copied verbatim into
/// outbound frames.
///
/// Building it is where serialization happens (and where non-object values
/// are refused); encoding a frame only copies its bytes, so one payload sent
/// to many sockets or in several frames is serialized once. Cloning is a
/// reference-count increment.
///
/// ```
/// use channels_protocol::codec::JsonObject;
/// use serde_json::json;
///
/// #[derive(serde::Serialize)]
/// struct Stock { item_id: u32, level: &'static str }
///
/// let a = JsonObject::serialize(&Stock { item_id: 7, level: "low" })?;
/// assert_eq!(a.as_str(), r#"{"item_id":7,"level":"low"}"#);
/// let b = JsonObject::from_value(&json!({"body": "hi"}))?;
/// assert_eq!(b.as_str(), r#"{"body":"hi"}"#);
/// assert!(JsonObject::from_value(&json!([1, 2])).is_err());
/// # Ok::<(), channels_protocol::codec::EncodeError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonObject(Bytes);

impl JsonObject {
    /// The empty object `{}`.
    pub fn empty() -> Self {
        JsonObject(Bytes::from_static(b"{}"))
    }

    /// Serializes any value that serializes to a JSON object (a struct, a
    /// map, `serde_json::Map`...). Anything else is refused with
    /// [`EncodeError::NotAnObject`].
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, EncodeError> {
        let text = serde_json::to_vec(value).map_err(EncodeError::Json)?;
        // serde_json writes no leading whitespace, so an object starts with `{`.
        match text.first() {
            Some(b'{') => Ok(JsonObject(Bytes::from(text))),
            _ => Err(EncodeError::NotAnObject {
                found: json_type(&serde_json::from_slice(&text).unwrap_or(Value::Null)),
            }),
        }
    }

    /// Serializes a `serde_json::Value`, which must be an object.
    pub fn from_value(value: &Value) -> Result<Self, EncodeError> {
        match value {
            Value::Object(_) => Self::serialize(value),
            other => Err(EncodeError::NotAnObject {
                found: json_type(other),
            }),
        }
    }

    /// Serializes a JSON map; cannot fail.
    pub fn from_map(map: &serde_json::Map<String, Value>) -> Self {
        let mut text = Vec::with_capacity(64);
        // Writing into a Vec cannot fail and a map of Values always serializes.
        let result = serde_json::to_writer(&mut text, map);
        debug_assert!(result.is_ok(), "serializing a JSON map failed");
        JsonObject(Bytes::from(text))
    }

    /// Takes JSON text that is already serialized (e.g. cached, or received
    /// from another node), after checking that it is one JSON object.
    /// Surrounding whitespace is dropped.
    pub fn from_json(text: impl Into<Bytes>) -> Result<Self, EncodeError> {
        let text: Bytes = text.into();
        let raw: &RawValue = serde_json::from_slice(&text).map_err(EncodeError::Json)?;
        let trimmed = raw.get();
        if !trimmed.starts_with('{') {
            let value: Value = serde_json::from_str(trimmed).unwrap_or(Value::Null);
            return Err(EncodeError::NotAnObject {
                found: json_type(&value),
            });
        }
        if trimmed.len() == text.len() {
            return Ok(JsonObject(text));
        }
        // Keep only the object's text, without copying.
        let start = text.len() - text.trim_ascii_start().len();
        Ok(JsonObject(text.slice(start..start + trimmed.len())))
    }

    /// Takes a borrowed or owned raw JSON value, which must be an object.
    pub fn from_raw(raw: &RawValue) -> Result<Self, EncodeError> {
        Self::from_json(Bytes::copy_from_slice(raw.get().as_bytes()))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        // Every constructor stores text produced by serde_json or validated by
        // it, so this never fails; fall back to `{}` rather than panic.
        std::str::from_utf8(&self.0).unwrap_or("{}")
    }

    /// The JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The JSON text as shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: the shortest object is `{}`. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the text back into a `serde_json::Value` (for tests and
    /// inspection; the hot path never does this).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl Default for JsonObject {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonObject({})", self.as_str())
    }
}

impl fmt::Display for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<Value> for JsonObject {
    type Error = EncodeError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_value(&value)
    }
}

impl TryFrom<&Value> for JsonObject {
    type Error = EncodeError;

    fn try_from(value: &Value) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn from_json_trims_whitespace_without_changing_the_object() {
        let object = JsonObject::from_json("  {\"a\": 1} \n").unwrap();
        assert_eq!(object.as_str(), "{\"a\": 1}");
    }

    #[test]
    fn non_objects_are_refused_with_their_type() {
        for (text, found) in [
            ("[1]", "an array"),
            ("\"s\"", "a string"),
            ("null", "null"),
            ("3", "a number"),
        ] {
            match JsonObject::from_json(text) {
                Err(EncodeError::NotAnObject { found: f }) => assert_eq!(f, found),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            JsonObject::from_json("{\"a\":"),
            Err(EncodeError::Json(_))
        ));
        assert!(matches!(
            JsonObject::serialize(&vec![1, 2]),
            Err(EncodeError::NotAnObject { found: "an array" })
        ));
    }

    #[test]
    fn from_map_and_from_value_agree() {
        let value = json!({"b": [1, 2], "a": "x"});
        let Value::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(
            JsonObject::from_map(map),
            JsonObject::from_value(&value).unwrap()
        );
        assert_eq!(JsonObject::from_map(map).to_value(), value);
    }
}
