//! The CartTracker meta of one tab and the cart channel's join params, typed and bounded, shared
//! by the cart channel that writes the meta (the serving crate's `sockets::cart`) and the
//! dashboard's aggregate that reads it (`admin::aggregate` there).
//!
//! A meta is `{page_loaded_at, page, items}` (spec §14.4). Every field is bounded before it is
//! tracked — and therefore before it is replicated to every node and listed to admins: `page` at
//! most [`MAX_PAGE_LEN`] bytes, `items` at most the cart's maximum size — so one meta is a few
//! hundred bytes whatever a client sends. [`JoinParams::parse`] refuses join params over the
//! limits (the join is refused with a reason; nothing is tracked).

use channels_protocol::codec::Payload;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracker::Meta;

use crate::model::ItemId;

/// Longest `page` accepted at join and kept in a meta, in bytes.
pub const MAX_PAGE_LEN: usize = 120;
/// Longest `serialized` cart accepted at join, in bytes (a full signed cart is a few hundred).
pub const MAX_SERIALIZED_LEN: usize = 4096;
/// Most keys in a cart join's params object.
pub const MAX_PARAM_KEYS: usize = 8;

/// One tab's meta in the CartTracker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CartMeta {
    /// When the tab joined (Unix milliseconds).
    #[serde(default)]
    pub page_loaded_at: i64,
    /// The tab's page, `None` for `null`.
    #[serde(default)]
    pub page: Option<String>,
    /// The cart's item ids (the aggregate reads them distinct and ascending).
    #[serde(default)]
    pub items: Vec<ItemId>,
}

impl CartMeta {
    /// Reads a tracked meta: typed, then normalized (items distinct and ascending, page cut at
    /// [`MAX_PAGE_LEN`] bytes, for metas from other nodes). A meta of another shape is an
    /// error; the aggregate counts such a tab with an empty cart and no page.
    pub fn parse(meta: &Meta) -> Result<CartMeta, serde_json::Error> {
        let mut parsed: CartMeta = serde_json::from_str(meta.as_json())?;
        parsed.items.sort_unstable();
        parsed.items.dedup();
        parsed.page = parsed.page.map(truncate_page);
        Ok(parsed)
    }
}

/// Cuts `page` at [`MAX_PAGE_LEN`] bytes, on a character boundary.
pub fn truncate_page(mut page: String) -> String {
    if page.len() > MAX_PAGE_LEN {
        let mut end = MAX_PAGE_LEN;
        while !page.is_char_boundary(end) {
            end -= 1;
        }
        page.truncate(end);
    }
    page
}

/// The params of a `cart:<id>` join.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinParams {
    /// The signed cart from the browser's storage.
    pub serialized: Option<String>,
    /// The tab's path.
    pub page: Option<String>,
}

impl JoinParams {
    /// Validates join params: a JSON object (or nothing) of at most [`MAX_PARAM_KEYS`] keys,
    /// `serialized` and `page` strings (or null) within [`MAX_SERIALIZED_LEN`] and
    /// [`MAX_PAGE_LEN`] bytes. The error is the join's refusal reason.
    pub fn parse(params: &Payload) -> Result<JoinParams, &'static str> {
        let object = match params {
            Payload::Json(Value::Null) => return Ok(JoinParams::default()),
            Payload::Json(Value::Object(object)) => object,
            _ => return Err("join params must be a JSON object"),
        };
        if object.len() > MAX_PARAM_KEYS {
            return Err("too many join params");
        }
        let string = |key: &str, max: usize, too_long: &'static str| match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(too_long),
            Some(_) => Err("join params `serialized` and `page` must be strings"),
        };
        Ok(JoinParams {
            serialized: string("serialized", MAX_SERIALIZED_LEN, "serialized cart too long")?,
            page: string("page", MAX_PAGE_LEN, "page too long")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metas_round_trip_and_are_normalized() {
        let meta = CartMeta {
            page_loaded_at: 5,
            page: Some("/".into()),
            items: vec![3, 1, 3],
        };
        let tracked = Meta::from_serialize(&meta).unwrap_or_default();
        let read = CartMeta::parse(&tracked).expect("a cart meta");
        assert_eq!(read.items, vec![1, 3]);
        assert_eq!(read.page.as_deref(), Some("/"));
        let long = Meta::new(json!({"page": "é".repeat(100)})).unwrap_or_default();
        let page = CartMeta::parse(&long)
            .ok()
            .and_then(|m| m.page)
            .unwrap_or_default();
        assert!(page.len() <= MAX_PAGE_LEN && page.len() >= MAX_PAGE_LEN - 1);
        let wrong = Meta::new(json!({"page": 3, "items": ["x"]})).unwrap_or_default();
        assert!(CartMeta::parse(&wrong).is_err());
        assert_eq!(
            CartMeta::parse(&Meta::empty()).ok(),
            Some(CartMeta::default())
        );
    }

    #[test]
    fn join_params_are_bounded() {
        let ok = JoinParams::parse(&Payload::Json(json!({"serialized": "t", "page": "/"})));
        assert_eq!(
            ok,
            Ok(JoinParams {
                serialized: Some("t".into()),
                page: Some("/".into())
            })
        );
        assert_eq!(
            JoinParams::parse(&Payload::Json(Value::Null)),
            Ok(JoinParams::default())
        );
        let page = "/".repeat(MAX_PAGE_LEN + 1);
        assert_eq!(
            JoinParams::parse(&Payload::Json(json!({ "page": page }))),
            Err("page too long")
        );
        let serialized = "a".repeat(MAX_SERIALIZED_LEN + 1);
        assert_eq!(
            JoinParams::parse(&Payload::Json(json!({ "serialized": serialized }))),
            Err("serialized cart too long")
        );
        assert!(JoinParams::parse(&Payload::Json(json!({"page": 1}))).is_err());
        assert!(JoinParams::parse(&Payload::Json(json!([1]))).is_err());
        let many: serde_json::Map<String, Value> = (0..=MAX_PARAM_KEYS)
            .map(|n| (n.to_string(), Value::Null))
            .collect();
        assert!(JoinParams::parse(&Payload::Json(Value::Object(many))).is_err());
    }
}
