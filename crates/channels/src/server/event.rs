//! Typed dispatch of client events: [`parse_event`] reads the `(event, payload)` pair a client
//! pushed into a serde enum, one variant per event, so `handle_in` matches on Rust values instead
//! of strings and picks nothing apart by hand.

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;

use crate::codec::Payload;
use crate::server::channel::{InvalidPayload, Outcome, unhandled};
use crate::server::context::Context;

/// Why [`parse_event`] could not produce the enum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventError {
    /// The enum has no variant for the event: Phoenix's "no `handle_in` clause matches".
    Unhandled,
    /// The event is known but its payload does not fit the variant.
    Invalid(InvalidPayload),
}

impl EventError {
    /// What `handle_in` answers: for [`Unhandled`](EventError::Unhandled) what the default
    /// `handle_in` does ([`unhandled`]: the reply `{"reason":"unhandled event"}`, then the channel
    /// crashes with `phx_error`); for [`Invalid`](EventError::Invalid) the error reply
    /// `{"reason":"invalid payload: …"}`, and the channel goes on.
    pub fn into_outcome(self, event: &str, ctx: &Context<'_>) -> Outcome {
        match self {
            EventError::Unhandled => unhandled(event, ctx),
            EventError::Invalid(invalid) => invalid.into(),
        }
    }
}

/// Reads a client's event and its payload into `E`, an enum with one variant per event the
/// channel handles, named as the event (`#[serde(rename = "new_msg")]` or
/// `#[serde(rename_all = "snake_case")]`). A variant's content is the payload: a unit variant
/// ignores it, a newtype variant reads it as its type, a struct variant reads its fields from it.
///
/// An event with no variant is [`EventError::Unhandled`]; a known event whose payload does not fit
/// (or is binary) is [`EventError::Invalid`]. [`EventError::into_outcome`] turns either into what
/// Phoenix would answer.
///
/// ```
/// use channels::codec::Payload;
/// use channels::server::{parse_event, Channel, Context, Outcome, Reply};
/// use serde_json::json;
///
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "snake_case")]
/// enum BoardIn {
///     Move { x: u32, y: u32 },
///     Resign,
/// }
///
/// struct Board;
///
/// #[async_trait::async_trait]
/// impl Channel for Board {
///     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
///         let message = match parse_event::<BoardIn>(event, payload) {
///             Ok(message) => message,
///             Err(error) => return error.into_outcome(event, ctx),
///         };
///         match message {
///             BoardIn::Move { x, y } => Reply::ok_json(&json!({"at": [x, y]})).into(),
///             BoardIn::Resign => Reply::ok_json(&json!({"resigned": true})).into(),
///         }
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use channels::server::{ConnectInfo, Endpoint, EndpointConfig, Params, Routes};
/// let endpoint = Endpoint::new(pubsub::PubSub::new("doc"), EndpointConfig::default());
/// let routes = Routes::new().route("board:*", |_| Box::new(Board));
/// let client = channels::testing::connect(&endpoint, Arc::new(routes), &Params::new(), ConnectInfo::default())
///     .await
///     .unwrap();
/// let (_, board) = client.join("board:1", json!({})).await.unwrap();
///
/// let ok = board.push("move", json!({"x": 1, "y": 2}));
/// assert_eq!(board.assert_reply(&ok, "ok").await, json!({"at": [1, 2]}));
///
/// let bad = board.push("move", json!({"x": 1}));
/// assert_eq!(board.assert_reply(&bad, "error").await, json!({"reason": "invalid payload: missing field `y`"}));
///
/// let unknown = board.push("dance", json!({}));
/// assert_eq!(board.assert_reply(&unknown, "error").await, json!({"reason": "unhandled event"}));
/// board.assert_push("phx_error").await;
/// # });
/// ```
pub fn parse_event<E: DeserializeOwned>(event: &str, payload: Payload) -> Result<E, EventError> {
    E::deserialize(EventDeserializer { event, payload }).map_err(|error| match error {
        DispatchError::Unhandled => EventError::Unhandled,
        DispatchError::Invalid(message) => EventError::Invalid(InvalidPayload::new(message)),
    })
}

/// The error inside the deserializer: which half of the pair was wrong.
#[derive(Debug)]
enum DispatchError {
    Unhandled,
    Invalid(String),
}

impl std::fmt::Display for DispatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchError::Unhandled => f.write_str("unhandled event"),
            DispatchError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DispatchError {}

impl de::Error for DispatchError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        DispatchError::Invalid(message.to_string())
    }
}

fn invalid(error: serde_json::Error) -> DispatchError {
    DispatchError::Invalid(error.to_string())
}

/// Presents `(event, payload)` to serde as an externally tagged enum value: the event is the
/// variant, the payload its content.
struct EventDeserializer<'a> {
    event: &'a str,
    payload: Payload,
}

impl EventDeserializer<'_> {
    fn json(self) -> Result<Value, DispatchError> {
        match self.payload {
            Payload::Json(value) => Ok(value),
            Payload::Binary(_) => Err(DispatchError::Invalid(
                "expected JSON, got binary data".to_owned(),
            )),
        }
    }
}

impl<'de> de::Deserializer<'de> for EventDeserializer<'_> {
    type Error = DispatchError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DispatchError> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DispatchError> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de> de::EnumAccess<'de> for EventDeserializer<'_> {
    type Error = DispatchError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), DispatchError> {
        let name: StrDeserializer<'_, DispatchError> = self.event.into_deserializer();
        // Whatever fails here is the event name itself: no variant has it.
        let variant = seed
            .deserialize(name)
            .map_err(|_| DispatchError::Unhandled)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for EventDeserializer<'_> {
    type Error = DispatchError;

    fn unit_variant(self) -> Result<(), DispatchError> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, DispatchError> {
        seed.deserialize(self.json()?).map_err(invalid)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DispatchError> {
        de::Deserializer::deserialize_tuple(self.json()?, len, visitor).map_err(invalid)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DispatchError> {
        de::Deserializer::deserialize_struct(self.json()?, "", fields, visitor).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::{EventError, parse_event};
    use crate::codec::Payload;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        body: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum In {
        NewMsg(Body),
        Typing {
            on: bool,
        },
        Ping,
        #[serde(rename = "phx:pair")]
        Pair(u32, u32),
    }

    fn parse(event: &str, payload: serde_json::Value) -> Result<In, EventError> {
        parse_event(event, Payload::Json(payload))
    }

    fn reason(result: Result<In, EventError>) -> String {
        match result {
            Err(EventError::Invalid(invalid)) => invalid.to_string(),
            other => panic!("expected an invalid payload, got {other:?}"),
        }
    }

    #[test]
    fn each_variant_shape_reads_its_payload() {
        assert_eq!(
            parse("new_msg", json!({"body": "hi"})),
            Ok(In::NewMsg(Body { body: "hi".into() }))
        );
        assert_eq!(
            parse("typing", json!({"on": true})),
            Ok(In::Typing { on: true })
        );
        assert_eq!(parse("ping", json!({"ignored": 1})), Ok(In::Ping));
        assert_eq!(parse("phx:pair", json!([1, 2])), Ok(In::Pair(1, 2)));
    }

    #[test]
    fn an_event_without_a_variant_is_unhandled_whatever_its_payload() {
        assert_eq!(parse("dance", json!({})), Err(EventError::Unhandled));
        assert_eq!(
            parse("NewMsg", json!({"body": "hi"})),
            Err(EventError::Unhandled)
        );
        assert_eq!(
            parse_event::<In>("dance", Payload::Binary(bytes::Bytes::from_static(b"x"))),
            Err(EventError::Unhandled)
        );
    }

    #[test]
    fn a_known_event_with_a_bad_payload_says_what_is_wrong() {
        assert_eq!(
            reason(parse("new_msg", json!({}))),
            "invalid payload: missing field `body`"
        );
        assert_eq!(
            reason(parse("typing", json!({"on": "yes"}))),
            "invalid payload: invalid type: string \"yes\", expected a boolean"
        );
        assert_eq!(
            reason(parse("phx:pair", json!([1]))),
            "invalid payload: invalid length 1, expected tuple variant In::Pair with 2 elements"
        );
        assert_eq!(
            reason(parse_event::<In>(
                "new_msg",
                Payload::Binary(bytes::Bytes::from_static(b"x"))
            )),
            "invalid payload: expected JSON, got binary data"
        );
    }
}
