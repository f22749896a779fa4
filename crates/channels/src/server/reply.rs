//! What a channel answers to a client's message: [`Reply`], its status and response object.
//!
//! Apart from the `Channel` trait because the callbacks' [`Context`](super::Context) replies too,
//! from a spawned task.

use serde::Serialize;
use serde_json::Value;

use crate::codec::{JsonObject, OutPayload};

/// The status and body of a reply to a client message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `"ok"`, `"error"`, or any status the client code understands.
    pub status: &'static str,
    /// The `response` object (or binary data).
    pub payload: OutPayload,
}

impl Reply {
    /// `{"status":"ok","response":payload}`.
    pub fn ok(payload: impl Into<OutPayload>) -> Self {
        Reply {
            status: "ok",
            payload: payload.into(),
        }
    }

    /// `{"status":"error","response":payload}`.
    pub fn error(payload: impl Into<OutPayload>) -> Self {
        Reply {
            status: "error",
            payload: payload.into(),
        }
    }

    /// An `ok` reply whose response is `value` serialized (which must serialize to a JSON object).
    pub fn ok_json<T: Serialize + ?Sized>(value: &T) -> Self {
        Reply::ok(to_object(value))
    }

    /// An `error` reply whose response is `value` serialized (which must serialize to a JSON object).
    pub fn error_json<T: Serialize + ?Sized>(value: &T) -> Self {
        Reply::error(to_object(value))
    }

    /// `{"status":"error","response":{"reason":reason}}`, the shape Phoenix uses for its own errors.
    pub fn error_reason(reason: &str) -> Self {
        Reply::error(JsonObject::from_map(&reason_map(reason)))
    }
}

fn reason_map(reason: &str) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("reason".to_owned(), Value::String(reason.to_owned()));
    map
}

/// Serializes a value that is known to be an object (a struct or a map) into a payload. Values
/// that are not objects are a programming error; they are logged and replaced by `{}`.
pub fn to_object<T: Serialize + ?Sized>(value: &T) -> JsonObject {
    match JsonObject::serialize(value) {
        Ok(object) => object,
        Err(error) => {
            tracing::error!(%error, "payload is not a JSON object; sending {{}} instead");
            JsonObject::empty()
        }
    }
}
