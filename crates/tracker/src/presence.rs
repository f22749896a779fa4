//! What the tracker stores and reports: processes, metadata, refs, presences and diffs.
//!
//! A *presence* is one `(topic, pid, key) -> meta` registration. The pid names the tracked process
//! (a channel instance); the key is what the application groups by (a user id); the meta is a small
//! JSON object (`{"online_at": ...}`). Every presence also carries a `phx_ref` that is unique to this
//! version of it, and after an update the previous version's ref as `phx_ref_prev`: clients use the
//! pair to match an update's join with its leave.
//!
//! Metas are kept as compact JSON object *text* behind an `Arc`, so copying a presence into a list, a
//! diff or a delta costs a reference count, and rendering it to a client is a string copy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// A topic name, shared by every presence of the topic.
pub type Topic = Arc<str>;

/// A presence key (what presences are grouped by, e.g. a user id).
pub type Key = Arc<str>;

/// The identity of a tracked process, unique across the cluster.
///
/// `node` is the incarnation of the tracker that created it and `id` a counter of that program, so
/// processes of different nodes, and of different boots of one node, never share a pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    /// Incarnation (`vsn`) of the tracker that handed out this pid.
    pub node: u64,
    /// Sequence number within that incarnation.
    pub id: u64,
}

/// Why a JSON value was refused as a presence meta.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    /// Metas are JSON objects (Phoenix maps); wrap other values in an object.
    #[error("a presence meta must be a JSON object, got {0}; wrap the value in an object")]
    NotAnObject(&'static str),
    /// The text given is not valid JSON.
    #[error("presence meta is not valid JSON: {0}")]
    Invalid(String),
}

/// The application's metadata of one presence: a JSON object stored as compact text.
///
/// `phx_ref` and `phx_ref_prev` are never part of it: they live beside it in [`PresenceEntry`] and are
/// added when the meta is rendered ([`PresenceInfo::meta_json`]). Keys of those names given by the
/// application are dropped, as Phoenix overwrites them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Meta(Arc<str>);

impl Meta {
    /// The empty object `{}`.
    pub fn empty() -> Meta {
        Meta(Arc::from("{}"))
    }

    /// A meta from a JSON object.
    pub fn new(value: Value) -> Result<Meta, MetaError> {
        match value {
            Value::Object(mut map) => {
                map.remove("phx_ref");
                map.remove("phx_ref_prev");
                let text = Value::Object(map).to_string();
                Ok(Meta(Arc::from(text)))
            }
            Value::Null => Err(MetaError::NotAnObject("null")),
            Value::Bool(_) => Err(MetaError::NotAnObject("a boolean")),
            Value::Number(_) => Err(MetaError::NotAnObject("a number")),
            Value::String(_) => Err(MetaError::NotAnObject("a string")),
            Value::Array(_) => Err(MetaError::NotAnObject("an array")),
        }
    }

    /// A meta from any value that serializes to a JSON object (a struct of the application's),
    /// written straight to text: cheaper than building a [`Value`] and calling [`Meta::new`].
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Online { online_at: i64 }
    /// let meta = tracker::Meta::from_serialize(&Online { online_at: 1 }).unwrap();
    /// assert_eq!(meta.as_json(), r#"{"online_at":1}"#);
    /// ```
    pub fn from_serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Meta, MetaError> {
        let text = serde_json::to_string(value).map_err(|e| MetaError::Invalid(e.to_string()))?;
        if kept_as_written(&text) {
            return Ok(Meta(Arc::from(text)));
        }
        Meta::from_json(&text)
    }

    /// A meta from JSON text, which must be an object (used when decoding peers' messages).
    pub fn from_json(text: &str) -> Result<Meta, MetaError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| MetaError::Invalid(e.to_string()))?;
        Meta::new(value)
    }

    /// A meta from JSON text sent by a peer: checked to be a JSON object, kept as is when it needs no
    /// normalization (the common case, which avoids re-serializing every replicated meta).
    pub(crate) fn from_peer_json(text: &str) -> Result<Meta, MetaError> {
        if !kept_as_written(text) {
            return Meta::from_json(text);
        }
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| MetaError::Invalid(e.to_string()))?;
        Ok(Meta(Arc::from(text)))
    }

    /// The meta as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| Value::Object(Default::default()))
    }

    /// The compact JSON text of the object.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// Whether valid JSON `text` can be stored as the meta without normalizing: an object (serde_json
/// writes nothing else between braces) with no key named like the refs kept beside the meta,
/// which [`Meta::new`] drops. Text that merely mentions `phx_ref` takes that slower path too.
fn kept_as_written(text: &str) -> bool {
    text.starts_with('{') && text.ends_with('}') && !text.contains("phx_ref")
}

impl Default for Meta {
    fn default() -> Self {
        Meta::empty()
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<Value> for Meta {
    type Error = MetaError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Meta::new(value)
    }
}

/// The unique reference of one version of a presence (Phoenix's `phx_ref`).
///
/// 12 bytes: 64-bit nanosecond wall-clock time, 16-bit hash of the node, 16-bit counter; shown as
/// 16 characters of URL-safe base64 without padding (e.g. `GOqwPPe9nnvjbgAy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhxRef(pub [u8; 12]);

impl PhxRef {
    /// A ref from its parts.
    pub fn new(nanos: u64, node_hash: u16, counter: u16) -> PhxRef {
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..10].copy_from_slice(&node_hash.to_be_bytes());
        bytes[10..].copy_from_slice(&counter.to_be_bytes());
        PhxRef(bytes)
    }

    /// Appends the 16-character string form to `out`.
    pub fn write_to(&self, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.0, out);
    }
}

impl fmt::Display for PhxRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(16);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for PhxRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The fields of one presence version: key, meta and refs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceInfo {
    /// What presences are grouped by.
    pub key: Key,
    /// The application's metadata.
    pub meta: Meta,
    /// This version's unique ref.
    pub phx_ref: PhxRef,
    /// The ref of the version this one replaced by an update.
    pub phx_ref_prev: Option<PhxRef>,
}

/// One presence as queries and diffs report it: a shared, immutable [`PresenceInfo`] (fields are
/// reached through `Deref`: `entry.key`, `entry.meta`, ...).
///
/// Named apart from a channels-level `Presence` (the registry a channel calls `track` on): this is
/// one record of it, one element of a key's `metas` list.
///
/// Sharing makes a presence one allocation that lists, diffs and deltas copy with a single
/// reference-count increment, which is what keeps `list` of 100k presences in the low milliseconds.
#[derive(Clone, PartialEq, Eq)]
pub struct PresenceEntry(Arc<PresenceInfo>);

impl PresenceEntry {
    /// A presence version.
    pub fn new(
        key: Key,
        meta: Meta,
        phx_ref: PhxRef,
        phx_ref_prev: Option<PhxRef>,
    ) -> PresenceEntry {
        PresenceEntry(Arc::new(PresenceInfo {
            key,
            meta,
            phx_ref,
            phx_ref_prev,
        }))
    }
}

impl PresenceEntry {
    /// Reads the shared allocation's reference count with a plain load, bringing its cache line
    /// in; used to overlap memory misses before the (serializing) atomic increments of a clone.
    pub(crate) fn prefetch(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl std::ops::Deref for PresenceEntry {
    type Target = PresenceInfo;
    fn deref(&self) -> &PresenceInfo {
        &self.0
    }
}

impl fmt::Debug for PresenceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PresenceInfo {
    /// Appends the meta as a JSON object with `phx_ref` (and `phx_ref_prev` after an update) added,
    /// the shape Phoenix.Presence puts in `metas`.
    pub fn write_meta_json(&self, out: &mut String) {
        let text = self.meta.as_json();
        let body = text.strip_suffix('}').unwrap_or(text);
        out.push_str(body);
        if body.trim_end() != "{" {
            out.push(',');
        }
        out.push_str("\"phx_ref\":\"");
        self.phx_ref.write_to(out);
        out.push('"');
        if let Some(prev) = &self.phx_ref_prev {
            out.push_str(",\"phx_ref_prev\":\"");
            prev.write_to(out);
            out.push('"');
        }
        out.push('}');
    }

    /// The meta with refs as JSON text (see [`PresenceInfo::write_meta_json`]).
    pub fn meta_json(&self) -> String {
        let mut out = String::with_capacity(self.meta.as_json().len() + 60);
        self.write_meta_json(&mut out);
        out
    }

    /// The meta with refs as a JSON value.
    pub fn meta_value(&self) -> Value {
        serde_json::from_str(&self.meta_json()).unwrap_or(Value::Null)
    }
}

/// A presence with where it lives: the unit the CRDT stores, replicates and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The topic the process is tracked on.
    pub topic: Topic,
    /// The tracked process.
    pub pid: Pid,
    /// Key, meta and refs.
    pub presence: PresenceEntry,
}

/// Joins and leaves of one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicDiff {
    /// Presences that appeared (including the new version of an updated presence).
    pub joins: Vec<PresenceEntry>,
    /// Presences that disappeared (including the old version of an updated presence).
    pub leaves: Vec<PresenceEntry>,
}

/// A batch of changes grouped by topic, what [`DiffHandler`](crate::DiffHandler) receives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Changes per topic.
    pub topics: BTreeMap<Topic, TopicDiff>,
}

impl Diff {
    /// Groups entries that joined and left by topic.
    pub fn from_entries(joins: Vec<Entry>, leaves: Vec<Entry>) -> Diff {
        let mut topics: BTreeMap<Topic, TopicDiff> = BTreeMap::new();
        for e in joins {
            topics.entry(e.topic).or_default().joins.push(e.presence);
        }
        for e in leaves {
            topics.entry(e.topic).or_default().leaves.push(e.presence);
        }
        Diff { topics }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_must_be_an_object_and_drops_refs() {
        assert_eq!(
            Meta::new(json!([1])),
            Err(MetaError::NotAnObject("an array"))
        );
        let m = Meta::new(json!({"a": 1, "phx_ref": "x"})).unwrap();
        assert_eq!(m.as_json(), r#"{"a":1}"#);
        assert_eq!(m.to_value(), json!({"a": 1}));
        assert!(Meta::from_json("{").is_err());
        assert!(Meta::from_json("3").is_err());
    }

    #[test]
    fn a_serialized_struct_is_kept_as_its_text_and_must_still_be_an_object() {
        #[derive(serde::Serialize)]
        struct Cart<'a> {
            page: Option<&'a str>,
            items: &'a [u32],
        }
        let fast = Meta::from_serialize(&Cart {
            page: Some("/"),
            items: &[1, 2],
        })
        .unwrap();
        // The struct's field order is kept (a `Value` would sort the keys); the object is the same.
        assert_eq!(fast.as_json(), r#"{"page":"/","items":[1,2]}"#);
        let slow = Meta::new(json!({"page": "/", "items": [1, 2]})).unwrap();
        assert_eq!(fast.to_value(), slow.to_value());
        assert_eq!(
            Meta::from_serialize(&[1, 2]),
            Err(MetaError::NotAnObject("an array"))
        );
        assert_eq!(
            Meta::from_serialize("{}"),
            Err(MetaError::NotAnObject("a string"))
        );
        #[derive(serde::Serialize)]
        struct Sneaky {
            a: u8,
            phx_ref: &'static str,
            phx_ref_prev: &'static str,
        }
        let m = Meta::from_serialize(&Sneaky {
            a: 1,
            phx_ref: "x",
            phx_ref_prev: "y",
        })
        .unwrap();
        assert_eq!(m.as_json(), r#"{"a":1}"#);
    }

    #[test]
    fn phx_ref_renders_as_16_url_safe_chars() {
        let r = PhxRef::new(u64::MAX, 0xfbff, 0xffff);
        let s = r.to_string();
        assert_eq!(s.len(), 16);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn meta_json_adds_refs() {
        let p = PresenceEntry::new("1".into(), Meta::empty(), PhxRef::new(1, 2, 3), None);
        let v: Value = serde_json::from_str(&p.meta_json()).unwrap();
        assert_eq!(v, json!({"phx_ref": p.phx_ref.to_string()}));
        let q = PresenceEntry::new(
            p.key.clone(),
            Meta::new(json!({"s": "away"})).unwrap(),
            PhxRef::new(9, 2, 4),
            Some(p.phx_ref),
        );
        assert_eq!(
            q.meta_value(),
            json!({"s": "away", "phx_ref": q.phx_ref.to_string(), "phx_ref_prev": p.phx_ref.to_string()})
        );
    }
}
