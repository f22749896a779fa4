//! The pubsub URL of a broker adapter: the broker client's part, this crate's tuning parameters
//! ([`BrokerOptions`]), and the names used on the broker.

use std::time::Duration;

/// The cluster name used when the URL names none.
pub const DEFAULT_CLUSTER: &str = "pubsub";

/// Tuning of a broker adapter, read from the query string of its URL.
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `cluster` | `pubsub` | cluster name: channel/subject prefix; nodes with the same name talk |
/// | `queue` | 65 536 | frames the send queue holds before dropping |
/// | `queue_bytes` | 256 MiB | bytes the send queue holds before dropping |
/// | `max_payload` | 1 MiB | largest broker message; bigger frames are chunked (NATS: at most the server's `max_payload`) |
/// | `ping_ms` | 2 000 | liveness probe of an idle link; a link silent for two probes is reconnected |
/// | `connect_timeout_ms` | 2 000 | one connection attempt |
/// | `backoff_max_ms` | 5 000 | longest wait between reconnection attempts |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerOptions {
    /// Cluster name.
    pub cluster: String,
    /// Send queue capacity in frames.
    pub queue: usize,
    /// Send queue capacity in bytes.
    pub queue_bytes: usize,
    /// Largest broker message (envelope included).
    pub max_payload: usize,
    /// Liveness probe period.
    pub ping: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Longest back-off between attempts.
    pub backoff_max: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            cluster: DEFAULT_CLUSTER.to_owned(),
            queue: 65_536,
            queue_bytes: 256 * 1024 * 1024,
            max_payload: 1024 * 1024,
            ping: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why a pubsub URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error(
        "PUBSUB_URL {url:?} is not a URL ({cause}); expected e.g. redis://127.0.0.1:6379 or nats://127.0.0.1:4222"
    )]
    Invalid {
        /// The URL given.
        url: String,
        /// Parser message.
        cause: String,
    },
    /// A scheme no adapter handles.
    #[error("PUBSUB_URL scheme {scheme:?} is not supported: use local, redis://… or nats://…")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// A broker whose adapter this build leaves out.
    #[error(
        "PUBSUB_URL scheme {scheme:?} needs the `{feature}` feature of the pubsub crate, which this build leaves out"
    )]
    Disabled {
        /// The scheme given.
        scheme: String,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// A tuning parameter that is not a positive number, or a cluster name with odd characters.
    #[error("PUBSUB_URL parameter {name}={value:?} is invalid: {expected}")]
    Parameter {
        /// Parameter name.
        name: String,
        /// Value given.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

/// Splits `url` into the URL the broker client is given (without this crate's parameters) and the
/// [`BrokerOptions`] they set.
pub fn parse_url(url: &str) -> Result<(url::Url, BrokerOptions), UrlError> {
    let mut parsed = url::Url::parse(url).map_err(|e| UrlError::Invalid {
        url: redact(url),
        cause: e.to_string(),
    })?;
    let mut options = BrokerOptions::default();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (name, value) in parsed.query_pairs() {
        let number = |expected| {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| UrlError::Parameter {
                    name: name.to_string(),
                    value: value.to_string(),
                    expected,
                })
        };
        match &*name {
            "cluster" => {
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(UrlError::Parameter {
                        name: name.to_string(),
                        value: value.to_string(),
                        expected: "letters, digits, '_' or '-'",
                    });
                }
                options.cluster = value.to_string();
            }
            "queue" => options.queue = number("a positive number of frames")? as usize,
            "queue_bytes" => {
                options.queue_bytes = number("a positive number of bytes")? as usize;
            }
            "max_payload" => {
                let n = number("a number of bytes, at least 1024")?;
                if n < 1024 {
                    return Err(UrlError::Parameter {
                        name: name.to_string(),
                        value: value.to_string(),
                        expected: "a number of bytes, at least 1024",
                    });
                }
                options.max_payload = n as usize;
            }
            "ping_ms" => options.ping = Duration::from_millis(number("milliseconds > 0")?),
            "connect_timeout_ms" => {
                options.connect_timeout = Duration::from_millis(number("milliseconds > 0")?);
            }
            "backoff_max_ms" => {
                options.backoff_max = Duration::from_millis(number("milliseconds > 0")?);
            }
            _ => kept.push((name.to_string(), value.to_string())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed, options))
}

/// `url` without its password, for logs and error messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// A node name made safe for a channel or subject token: ASCII letters, digits, `-` and `_` are
/// kept, every other byte becomes `~xx` (hex). Different names stay different.
pub(crate) fn name_token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_broker_part_and_yield_options() {
        let (url, o) = parse_url(
            "redis://:secret@127.0.0.1:6379/0?cluster=shop-1&queue=10&max_payload=4096&ping_ms=50&protocol=resp2",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "redis://:secret@127.0.0.1:6379/0?protocol=resp2"
        );
        assert_eq!(o.cluster, "shop-1");
        assert_eq!(o.queue, 10);
        assert_eq!(o.max_payload, 4096);
        assert_eq!(o.ping, Duration::from_millis(50));
        let (url, o) = parse_url("nats://127.0.0.1:4222").unwrap();
        assert_eq!(url.as_str(), "nats://127.0.0.1:4222");
        assert_eq!(o, BrokerOptions::default());
        assert!(matches!(
            parse_url("nats://h?cluster=a.b"),
            Err(UrlError::Parameter { .. })
        ));
        assert!(matches!(
            parse_url("nats://h?queue=0"),
            Err(UrlError::Parameter { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(UrlError::Invalid { .. })
        ));
        assert_eq!(
            redact("redis://:secret@h:1/"),
            "redis://:***@h:1/".to_owned()
        );
    }

    #[test]
    fn node_names_become_safe_distinct_tokens() {
        assert_eq!(name_token("app-1_b"), "app-1_b");
        assert_eq!(name_token("a.b"), "a~2eb");
        assert_ne!(name_token("a.b"), name_token("a~2eb"));
        assert_eq!(name_token("a*>"), "a~2a~3e");
    }
}
