//! The messages shards of different nodes exchange, and their compact binary encoding.
//!
//! Four messages travel on a shard's gossip topic (`phx_presence:<tracker>_shard<N>`):
//!
//! * [`Message::Heartbeat`] (to every other node, each tick with a pending delta, or an empty one
//!   after `max_silent_periods` quiet ticks): "I am alive, here is my clock, and my latest delta";
//! * [`Message::TransferReq`] (to one node): "your clock is ahead of mine, send me what I miss";
//! * [`Message::TransferAck`] (back to the requester): a delta generation or the full state;
//! * [`Message::GracefulPermdown`] (to every other node): "I am leaving for good, drop my presences".
//!
//! # Encoding
//!
//! One version byte ([`VERSION`]) then a [postcard](https://docs.rs/postcard) body (varints, length
//! prefixed strings). Replica refs are written once in a table and referred to by index; values are
//! grouped per replica and per topic, dots are written as differences, pids omit their node when it
//! is the owner's, clouds are written as runs of consecutive dots. A replicated join of a typical
//! presence costs about 60 bytes. Decoding checks everything it reads: bad bytes are an error, never
//! a panic, and cannot make the decoder allocate without bound.
//!
//! Over 600 lines with its tests (480 of code): the layout, the encoder and the decoder are kept
//! side by side so that a change to one is seen next to the other two.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::delta::{Delta, Part};
use crate::presence::{Entry, Meta, MetaError, PhxRef, Pid, PresenceEntry};
use crate::replica::ReplicaRef;
use crate::state::Snapshot;

/// The encoding version written as the first byte of every message.
pub const VERSION: u8 = 1;

/// The most dots a decoded message may expand to (clouds are run-length encoded on the wire).
pub const MAX_DOTS: u64 = 50_000_000;

/// Dots any message may expand to, whatever its size: about 16 MB of memory at most.
pub const DOT_BUDGET_BASE: u64 = 1 << 20;

/// Dots each byte of a message adds to its budget (up to [`MAX_DOTS`]).
///
/// Clouds are written as runs, so a few bytes can name millions of dots; without a budget
/// proportional to the input, a 20-byte message could make the decoder allocate hundreds of
/// megabytes. A legitimate message over budget (a mass leave of more than a million presences
/// in one tick) is refused like a lost one: the receiver's next clock comparison asks for a
/// transfer and repairs it.
pub const DOT_BUDGET_PER_BYTE: u64 = 16;

/// The number of dots a message of `len` bytes may expand to.
pub fn dot_budget(len: usize) -> u64 {
    DOT_BUDGET_BASE
        .saturating_add((len as u64).saturating_mul(DOT_BUDGET_PER_BYTE))
        .min(MAX_DOTS)
}

/// What a transfer carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// A delta generation (the requester was only a little behind).
    Delta(Delta),
    /// The full state of the replicas the requester knows.
    Full(Snapshot),
}

/// A message between shards of different nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Liveness, clock and (if any) the latest delta.
    Heartbeat {
        /// The sender.
        from: ReplicaRef,
        /// The sender's clocks (context of its up replicas).
        clocks: Clock,
        /// The delta broadcast this tick; `None` for an empty heartbeat.
        delta: Option<Delta>,
    },
    /// A request for what the requester misses.
    TransferReq {
        /// Matches the answer to the request.
        id: u64,
        /// The requester.
        from: ReplicaRef,
        /// The requester's clocks.
        clocks: Clock,
    },
    /// The answer to a [`Message::TransferReq`].
    TransferAck {
        /// The request's id.
        id: u64,
        /// The responder.
        from: ReplicaRef,
        /// A delta generation or the full state.
        transfer: Transfer,
    },
    /// The sender leaves the cluster for good.
    GracefulPermdown {
        /// The leaving replica.
        from: ReplicaRef,
    },
}

impl Message {
    /// The sending replica.
    pub fn from(&self) -> &ReplicaRef {
        match self {
            Message::Heartbeat { from, .. }
            | Message::TransferReq { from, .. }
            | Message::TransferAck { from, .. }
            | Message::GracefulPermdown { from } => from,
        }
    }
}

/// Why bytes could not be decoded into a [`Message`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The message is empty.
    #[error("empty tracker message")]
    Empty,
    /// The sender uses another encoding version; upgrade nodes so that all speak the same one.
    #[error("tracker message version {0} is not supported (this node speaks {VERSION})")]
    Version(u8),
    /// The body is not valid postcard for the expected layout.
    #[error("malformed tracker message: {0}")]
    Malformed(#[from] postcard::Error),
    /// The body refers to a replica missing from its table.
    #[error("tracker message refers to replica #{0}, absent from its table")]
    UnknownReplica(u32),
    /// A dot or a dot run is out of range.
    #[error("tracker message has an invalid dot or dot run")]
    BadDot,
    /// A meta is not a JSON object.
    #[error("tracker message has an invalid meta: {0}")]
    BadMeta(#[from] MetaError),
}

// ------------------------------------------------------------------------------------ layout

type WireClock = Vec<(u32, u64)>;

#[derive(Serialize, Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    refs: Vec<(&'a str, u64)>,
    from: u32,
    #[serde(borrow)]
    body: Body<'a>,
}

#[derive(Serialize, Deserialize)]
enum Body<'a> {
    Heartbeat {
        clocks: WireClock,
        #[serde(borrow)]
        delta: Option<WireDelta<'a>>,
    },
    TransferReq {
        id: u64,
        clocks: WireClock,
    },
    TransferAckDelta {
        id: u64,
        #[serde(borrow)]
        delta: WireDelta<'a>,
    },
    TransferAckFull {
        id: u64,
        context: WireClock,
        #[serde(borrow)]
        parts: Vec<WirePart<'a>>,
    },
    GracefulPermdown,
}

#[derive(Serialize, Deserialize)]
struct WireDelta<'a> {
    start: WireClock,
    end: WireClock,
    #[serde(borrow)]
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WirePart<'a> {
    replica: u32,
    /// Runs of consecutive dots: (distance from the previous run's last dot, length).
    cloud: Vec<(u64, u64)>,
    #[serde(borrow)]
    topics: Vec<WireTopic<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireTopic<'a> {
    topic: &'a str,
    #[serde(borrow)]
    values: Vec<WireValue<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireValue<'a> {
    /// Distance from the previous dot of this topic group (the first is absolute).
    dot: u64,
    /// The pid's node when it is not the owner replica's vsn.
    pid_node: Option<u64>,
    pid: u64,
    key: &'a str,
    meta: &'a str,
    phx_ref: [u8; 12],
    prev: Option<[u8; 12]>,
}

// ------------------------------------------------------------------------------------ encode

struct Refs<'a> {
    table: Vec<(&'a str, u64)>,
    index: BTreeMap<&'a ReplicaRef, u32>,
}

impl<'a> Refs<'a> {
    fn new() -> Self {
        Refs {
            table: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    fn id(&mut self, r: &'a ReplicaRef) -> u32 {
        if let Some(&i) = self.index.get(r) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push((&r.name, r.vsn));
        self.index.insert(r, i);
        i
    }

    fn clock(&mut self, c: &'a Clock) -> WireClock {
        c.iter().map(|(r, v)| (self.id(r), *v)).collect()
    }

    fn parts(&mut self, parts: &'a BTreeMap<ReplicaRef, Part>) -> Vec<WirePart<'a>> {
        parts
            .iter()
            .map(|(r, p)| {
                let replica = self.id(r);
                encode_part(r, replica, p)
            })
            .collect()
    }

    fn delta(&mut self, d: &'a Delta) -> WireDelta<'a> {
        WireDelta {
            start: self.clock(&d.start),
            end: self.clock(&d.end),
            parts: self.parts(&d.parts),
        }
    }
}

fn encode_part<'a>(owner: &ReplicaRef, replica: u32, p: &'a Part) -> WirePart<'a> {
    let mut cloud = Vec::new();
    let mut prev_end = 0u64;
    let mut run: Option<(u64, u64)> = None; // (start, len)
    for &d in &p.cloud {
        match &mut run {
            Some((start, len)) if *start + *len == d => *len += 1,
            _ => {
                if let Some((start, len)) = run.take() {
                    cloud.push((start - prev_end, len));
                    prev_end = start + len - 1;
                }
                run = Some((d, 1));
            }
        }
    }
    if let Some((start, len)) = run {
        cloud.push((start - prev_end, len));
    }
    let mut by_topic: BTreeMap<&str, Vec<(u64, &Entry)>> = BTreeMap::new();
    for (&d, e) in &p.values {
        by_topic.entry(&e.topic).or_default().push((d, e));
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, values)| {
            let mut last = 0;
            let values = values
                .into_iter()
                .map(|(d, e)| {
                    let v = WireValue {
                        dot: d - last,
                        pid_node: (e.pid.node != owner.vsn).then_some(e.pid.node),
                        pid: e.pid.id,
                        key: &e.presence.key,
                        meta: e.presence.meta.as_json(),
                        phx_ref: e.presence.phx_ref.0,
                        prev: e.presence.phx_ref_prev.map(|r| r.0),
                    };
                    last = d;
                    v
                })
                .collect();
            WireTopic { topic, values }
        })
        .collect();
    WirePart {
        replica,
        cloud,
        topics,
    }
}

/// Encodes a message: the version byte, then the postcard body.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut refs = Refs::new();
    let from = refs.id(message.from());
    let body = match message {
        Message::Heartbeat { clocks, delta, .. } => Body::Heartbeat {
            clocks: refs.clock(clocks),
            delta: delta.as_ref().map(|d| refs.delta(d)),
        },
        Message::TransferReq { id, clocks, .. } => Body::TransferReq {
            id: *id,
            clocks: refs.clock(clocks),
        },
        Message::TransferAck {
            id,
            transfer: Transfer::Delta(d),
            ..
        } => Body::TransferAckDelta {
            id: *id,
            delta: refs.delta(d),
        },
        Message::TransferAck {
            id,
            transfer: Transfer::Full(s),
            ..
        } => Body::TransferAckFull {
            id: *id,
            context: refs.clock(&s.context),
            parts: refs.parts(&s.parts),
        },
        Message::GracefulPermdown { .. } => Body::GracefulPermdown,
    };
    let envelope = WireMessage {
        refs: refs.table,
        from,
        body,
    };
    postcard::to_extend(&envelope, vec![VERSION]).unwrap_or_else(|_| vec![VERSION])
}

// ------------------------------------------------------------------------------------ decode

struct Decoder {
    refs: Vec<ReplicaRef>,
    dots: u64,
    budget: u64,
}

impl Decoder {
    fn replica(&self, i: u32) -> Result<&ReplicaRef, WireError> {
        self.refs
            .get(i as usize)
            .ok_or(WireError::UnknownReplica(i))
    }

    fn clock(&self, c: WireClock) -> Result<Clock, WireError> {
        c.into_iter()
            .map(|(i, v)| Ok((self.replica(i)?.clone(), v)))
            .collect()
    }

    fn parts(&mut self, parts: Vec<WirePart<'_>>) -> Result<BTreeMap<ReplicaRef, Part>, WireError> {
        let mut out = BTreeMap::new();
        for p in parts {
            let owner = self.replica(p.replica)?.clone();
            let mut part = Part::default();
            let mut prev_end = 0u64;
            for (gap, len) in p.cloud {
                let start = prev_end.checked_add(gap).ok_or(WireError::BadDot)?;
                if gap == 0 || len == 0 {
                    return Err(WireError::BadDot);
                }
                self.dots = self.dots.checked_add(len).ok_or(WireError::BadDot)?;
                if self.dots > self.budget {
                    return Err(WireError::BadDot);
                }
                let end = start.checked_add(len - 1).ok_or(WireError::BadDot)?;
                part.cloud.extend(start..=end);
                prev_end = end;
            }
            for t in p.topics {
                let topic: Arc<str> = Arc::from(t.topic);
                let mut last = 0u64;
                for v in t.values {
                    let dot = last.checked_add(v.dot).ok_or(WireError::BadDot)?;
                    if dot == 0 || (last != 0 && v.dot == 0) {
                        return Err(WireError::BadDot);
                    }
                    last = dot;
                    let meta = Meta::from_peer_json(v.meta)?;
                    let entry = Entry {
                        topic: topic.clone(),
                        pid: Pid {
                            node: v.pid_node.unwrap_or(owner.vsn),
                            id: v.pid,
                        },
                        presence: PresenceEntry::new(
                            Arc::from(v.key),
                            meta,
                            PhxRef(v.phx_ref),
                            v.prev.map(PhxRef),
                        ),
                    };
                    part.values.insert(dot, entry);
                }
            }
            out.insert(owner, part);
        }
        Ok(out)
    }

    fn delta(&mut self, d: WireDelta<'_>) -> Result<Delta, WireError> {
        Ok(Delta {
            start: self.clock(d.start)?,
            end: self.clock(d.end)?,
            parts: self.parts(d.parts)?,
        })
    }
}

/// Decodes bytes received from another node. Never panics: anything unexpected is a [`WireError`].
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    decode_with_max_dots(bytes, MAX_DOTS)
}

/// [`decode`] with another ceiling than [`MAX_DOTS`] on the dots clouds expand to. For fuzzing
/// only (fuzz/fuzz_targets/tracker_wire.rs): expanding tens of millions of dots takes seconds per
/// input, which would hide every other path; a low ceiling keeps all of them reachable.
#[doc(hidden)]
pub fn decode_with_max_dots(bytes: &[u8], max_dots: u64) -> Result<Message, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let envelope: WireMessage<'_> = postcard::from_bytes(body)?;
    let mut dec = Decoder {
        refs: envelope
            .refs
            .iter()
            .map(|(n, v)| ReplicaRef::new(*n, *v))
            .collect(),
        dots: 0,
        budget: dot_budget(bytes.len()).min(max_dots),
    };
    let from = dec.replica(envelope.from)?.clone();
    Ok(match envelope.body {
        Body::Heartbeat { clocks, delta } => Message::Heartbeat {
            from,
            clocks: dec.clock(clocks)?,
            delta: delta.map(|d| dec.delta(d)).transpose()?,
        },
        Body::TransferReq { id, clocks } => Message::TransferReq {
            id,
            from,
            clocks: dec.clock(clocks)?,
        },
        Body::TransferAckDelta { id, delta } => Message::TransferAck {
            id,
            from,
            transfer: Transfer::Delta(dec.delta(delta)?),
        },
        Body::TransferAckFull { id, context, parts } => Message::TransferAck {
            id,
            from,
            transfer: Transfer::Full(Snapshot {
                context: dec.clock(context)?,
                parts: dec.parts(parts)?,
            }),
        },
        Body::GracefulPermdown => Message::GracefulPermdown { from },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a() -> ReplicaRef {
        ReplicaRef::new("node-a", 1_700_000_000_000_000 << 16)
    }

    fn entry(i: u64, topic: &str) -> Entry {
        Entry {
            topic: topic.into(),
            pid: Pid {
                node: a().vsn,
                id: 1000 + i,
            },
            presence: PresenceEntry::new(
                format!("user:{i}").into(),
                Meta::new(json!({"online_at": "1700000000"})).unwrap(),
                PhxRef::new(1_700_000_000_000_000_000 + i, 77, i as u16),
                i.is_multiple_of(2).then(|| PhxRef::new(i, 1, 2)),
            ),
        }
    }

    fn sample_delta(n: u64) -> Delta {
        let mut d = Delta::empty_at(&a(), 10);
        d.end.insert(a(), 10 + n + 3);
        let part = d.parts.entry(a()).or_default();
        part.cloud.extend(11..=10 + n);
        part.cloud.insert(10 + n + 3);
        part.cloud.insert(3); // a relayed removal, out of the range
        for i in 11..=10 + n {
            part.values
                .insert(i, entry(i, if i % 3 == 0 { "room:a" } else { "room:b" }));
        }
        // A value whose pid belongs to another node.
        part.values.get_mut(&11).unwrap().pid.node = 42;
        let b = ReplicaRef::new("b", 9);
        d.parts.entry(b).or_default().cloud.insert(5);
        d
    }

    fn roundtrip(m: Message) {
        let bytes = encode(&m);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn every_message_roundtrips() {
        let clocks: Clock = [(a(), 5), (ReplicaRef::new("b", 9), 2)]
            .into_iter()
            .collect();
        roundtrip(Message::Heartbeat {
            from: a(),
            clocks: clocks.clone(),
            delta: Some(sample_delta(20)),
        });
        roundtrip(Message::Heartbeat {
            from: a(),
            clocks: clocks.clone(),
            delta: None,
        });
        roundtrip(Message::TransferReq {
            id: 7,
            from: a(),
            clocks: clocks.clone(),
        });
        roundtrip(Message::TransferAck {
            id: 7,
            from: a(),
            transfer: Transfer::Delta(sample_delta(3)),
        });
        let d = sample_delta(5);
        roundtrip(Message::TransferAck {
            id: 8,
            from: a(),
            transfer: Transfer::Full(Snapshot {
                context: clocks,
                parts: d.parts,
            }),
        });
        roundtrip(Message::GracefulPermdown { from: a() });
    }

    #[test]
    fn a_replicated_join_costs_under_70_bytes() {
        let small = encode(&Message::Heartbeat {
            from: a(),
            clocks: Clock::new(),
            delta: Some(sample_delta(1)),
        });
        let big = encode(&Message::Heartbeat {
            from: a(),
            clocks: Clock::new(),
            delta: Some(sample_delta(1001)),
        });
        let per_join = (big.len() - small.len()) as f64 / 1000.0;
        assert!(per_join < 70.0, "{per_join} bytes per join");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(decode(&[]), Err(WireError::Empty)));
        assert!(matches!(decode(&[9, 1, 2]), Err(WireError::Version(9))));
        let good = encode(&Message::Heartbeat {
            from: a(),
            clocks: Clock::new(),
            delta: Some(sample_delta(10)),
        });
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]);
        }
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % bytes.len();
                bytes[i] = (x >> 32) as u8;
            }
            bytes[0] = VERSION;
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn huge_cloud_runs_are_refused() {
        let mut refs = Refs::new();
        let r = a();
        let from = refs.id(&r);
        let env = WireMessage {
            refs: refs.table,
            from,
            body: Body::Heartbeat {
                clocks: vec![],
                delta: Some(WireDelta {
                    start: vec![],
                    end: vec![],
                    parts: vec![WirePart {
                        replica: 0,
                        cloud: vec![(1, u64::MAX / 2)],
                        topics: vec![],
                    }],
                }),
            },
        };
        let bytes = postcard::to_extend(&env, vec![VERSION]).unwrap();
        assert!(matches!(decode(&bytes), Err(WireError::BadDot)));
        // Within MAX_DOTS but far over what a message this small may expand to: refused before
        // anything is allocated; the same run fits the budget of a message large enough.
        let run = |len: u64| WireMessage {
            refs: vec![("node-a", 1)],
            from: 0,
            body: Body::Heartbeat {
                clocks: vec![],
                delta: Some(WireDelta {
                    start: vec![],
                    end: vec![],
                    parts: vec![WirePart {
                        replica: 0,
                        cloud: vec![(1, len)],
                        topics: vec![],
                    }],
                }),
            },
        };
        let small = postcard::to_extend(&run(DOT_BUDGET_BASE + 1000), vec![VERSION]).unwrap();
        assert!(small.len() < 40);
        assert!(matches!(decode(&small), Err(WireError::BadDot)));
        let fits = postcard::to_extend(&run(DOT_BUDGET_BASE / 4), vec![VERSION]).unwrap();
        assert!(decode(&fits).is_ok());
        assert!(dot_budget(usize::MAX) == MAX_DOTS);
        // A length prefix claiming four billion replica refs in a few bytes is an error.
        let mut claim = vec![VERSION];
        claim.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode(&claim).is_err());
        let env = WireMessage {
            refs: vec![],
            from: 3,
            body: Body::GracefulPermdown,
        };
        let bytes = postcard::to_extend(&env, vec![VERSION]).unwrap();
        assert!(matches!(decode(&bytes), Err(WireError::UnknownReplica(3))));
    }
}
