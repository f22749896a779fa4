//! Error types of the codec: one per boundary (negotiation, decoding,
//! encoding), each saying what was wrong with which input.

/// Why a `vsn` query parameter selects no serializer. The transport answers
/// such a connect with HTTP 403, like Phoenix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VsnError {
    /// The value is not a semantic version (`MAJOR.MINOR.PATCH[-pre][+build]`).
    #[error("vsn {vsn:?} is not a semantic version like \"2.0.0\"")]
    Invalid {
        /// The rejected value.
        vsn: String,
    },
    /// A valid version that matches neither `~> 1.0.0` nor `~> 2.0.0`.
    #[error("vsn {vsn:?} is not supported; use \"2.0.0\" (or \"1.0.0\" for the legacy format)")]
    Unsupported {
        /// The rejected value.
        vsn: String,
    },
}

/// Why a frame received from a client could not be decoded.
///
/// Phoenix closes the connection on such frames; the transport decides.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A text frame is not valid JSON (or not valid UTF-8).
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// A V2 text frame is valid JSON but not an array.
    #[error("V2 frame must be a JSON array [join_ref, ref, topic, event, payload], found {found}")]
    NotAnArray {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A V2 text frame has fewer than five elements.
    #[error("V2 frame must have 5 elements [join_ref, ref, topic, event, payload], found {found}")]
    TooFewElements {
        /// How many elements the array had.
        found: usize,
    },
    /// A V1 text frame is valid JSON but not an object.
    #[error("V1 frame must be a JSON object with topic, event, payload and ref, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A V1 text frame lacks one of its required keys.
    #[error("V1 frame has no {field:?} key")]
    MissingField {
        /// The missing key.
        field: &'static str,
    },
    /// A field holds a JSON value of the wrong type.
    #[error("{field} must be {expected}, found {found}")]
    WrongType {
        /// Which field (`join_ref`, `ref`, `topic` or `event`).
        field: &'static str,
        /// What it may be.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A binary frame arrived on a V1 connection, which has no binary format.
    #[error("binary frames are not supported by the V1 serializer")]
    BinaryNotSupported,
    /// A binary frame is empty or starts with an unexpected kind byte (clients
    /// send only kind 0 pushes; servers send kinds 0, 1 and 2).
    #[error("unexpected binary frame kind {kind:?} (clients send kind 0, servers kinds 0-2)")]
    BadBinaryKind {
        /// The first byte, `None` for an empty frame.
        kind: Option<u8>,
    },
    /// A binary frame is shorter than its header or its length fields say.
    #[error(
        "binary frame truncated: {needed} bytes needed for the header and strings, {len} received"
    )]
    Truncated {
        /// Bytes the header and strings require.
        needed: usize,
        /// Bytes received.
        len: usize,
    },
    /// A string field of a binary frame is not UTF-8.
    #[error("binary frame field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        field: &'static str,
    },
}

/// Why an outbound message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A binary frame field is longer than a one-byte length can say.
    #[error("{field} is {len} bytes; binary frames allow at most 255")]
    FieldTooLong {
        /// Which field (`join_ref`, `ref`, `topic`, `event` or `status`).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A binary payload was given to the V1 serializer.
    #[error("binary payloads need the V2 serializer (the client connected with vsn 1.x)")]
    BinaryNotSupported,
    /// An outbound JSON payload is not a JSON object (Phoenix requires maps).
    #[error("outbound payloads must be JSON objects, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The payload could not be serialized to JSON, or its text is not JSON.
    #[error("payload is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
