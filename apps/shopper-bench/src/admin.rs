//! `--check-admin URL`: does the store's admin dashboard count the shoppers the bench holds?
//!
//! The store answers its dashboard aggregate at `/admin/aggregate.json` behind HTTP Basic
//! credentials; its `shoppers` field is the number of distinct carts the CartTracker lists — what
//! the dashboard shows as "Unique Shoppers". The aggregate is published at most every 250 ms, and
//! in a cluster each node learns the other nodes' carts through the tracker's replication, so a
//! count is not right the instant the last shopper joined: each URL is polled every
//! [`POLL_INTERVAL`] until its count reaches the number of shoppers the bench holds, or the wait
//! (`--check-admin-wait-secs`) is over. Every node of a cluster (one `--check-admin` each) must
//! reach it. Other shoppers may be connected too, so more is fine.
//!
//! A wrong password, a missing page or an answer without `shoppers` fails at once: waiting would
//! not fix it. Connection errors and 5xx answers are retried until the wait is over.

use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Interval between two reads of one dashboard.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for one HTTP answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the dashboards said about the bench's shoppers (`admin_check` in `--json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminReport {
    /// Shoppers the bench held while checking: every dashboard must count at least as many.
    pub expected_shoppers: u64,
    /// Whether every dashboard did within the wait.
    pub passed: bool,
    /// One entry per `--check-admin` URL, in the order given.
    pub nodes: Vec<AdminNode>,
}

/// What one dashboard said.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminNode {
    /// The aggregate's URL.
    pub url: String,
    /// The last shopper count read (`None`: no count could be read).
    pub shoppers: Option<u64>,
    /// Whether the count reached the expected number.
    pub passed: bool,
    /// Time until it did, or until giving up, in milliseconds.
    pub waited_ms: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AdminReport {
    /// The failure message: one line per dashboard that failed.
    pub fn failure(&self) -> Option<String> {
        let lines: Vec<&str> = self
            .nodes
            .iter()
            .filter_map(|n| n.error.as_deref())
            .collect();
        (!self.passed).then(|| format!("admin check failed:\n  {}", lines.join("\n  ")))
    }
}

impl std::fmt::Display for AdminReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "admin check             {} (every dashboard must count >= {} shoppers)",
            if self.passed { "passed" } else { "FAILED" },
            self.expected_shoppers
        )?;
        for node in &self.nodes {
            let count = node
                .shoppers
                .map_or_else(|| "no count".to_owned(), |n| format!("{n} shoppers"));
            writeln!(
                f,
                "  {} {}: {count} after {:.1} s",
                if node.passed { "ok  " } else { "FAIL" },
                node.url,
                node.waited_ms as f64 / 1000.0
            )?;
            if let Some(error) = &node.error {
                writeln!(f, "       {error}")?;
            }
        }
        Ok(())
    }
}

/// Basic credentials of the dashboards.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Polls every URL of `urls` at once until each counts at least `expected` shoppers or `wait`
/// is over (each is read at least once).
pub async fn check(
    urls: &[String],
    credentials: &Credentials,
    expected: u64,
    wait: Duration,
) -> AdminReport {
    let deadline = Instant::now() + wait;
    let nodes = join_all(
        urls.iter()
            .map(|url| poll(url, credentials, expected, deadline)),
    )
    .await;
    AdminReport {
        expected_shoppers: expected,
        passed: nodes.iter().all(|n| n.passed),
        nodes,
    }
}

/// Why a read failed.
enum ReadError {
    /// Waiting will not help (credentials, wrong URL, not an aggregate).
    Fatal(anyhow::Error),
    /// The node may answer later (connection refused, 5xx, timeout).
    Transient(anyhow::Error),
}

async fn poll(url: &str, credentials: &Credentials, expected: u64, deadline: Instant) -> AdminNode {
    let started = Instant::now();
    let mut shoppers = None;
    let mut last_error = None;
    let finish = |shoppers: Option<u64>, error: Option<String>| AdminNode {
        url: url.to_owned(),
        shoppers,
        passed: error.is_none(),
        waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
    };
    loop {
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .clamp(POLL_INTERVAL, REQUEST_TIMEOUT);
        match tokio::time::timeout(limit, read_shoppers(url, credentials)).await {
            Ok(Ok(count)) => {
                shoppers = Some(count);
                if count >= expected {
                    return finish(shoppers, None);
                }
            }
            Ok(Err(ReadError::Fatal(error))) => {
                return finish(shoppers, Some(format!("{url}: {error:#}")));
            }
            Ok(Err(ReadError::Transient(error))) => last_error = Some(format!("{error:#}")),
            Err(_) => last_error = Some(format!("no answer within {:.1} s", limit.as_secs_f64())),
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let waited = started.elapsed().as_secs_f64();
    let error = match (shoppers, last_error) {
        (Some(count), _) => format!(
            "{url}: the dashboard counts {count} shoppers but the bench held {expected} \
             (waited {waited:.1} s; raise --check-admin-wait-secs if the cluster replicates \
             slowly, or check that this node is in the cluster the bench connected to)"
        ),
        (None, Some(error)) => {
            format!("{url}: no shopper count within {waited:.1} s (expected {expected}): {error}")
        }
        (None, None) => format!("{url}: no shopper count within {waited:.1} s"),
    };
    finish(shoppers, Some(error))
}

/// One read of the aggregate's `shoppers`.
async fn read_shoppers(url: &str, credentials: &Credentials) -> Result<u64, ReadError> {
    let (status, body) = get(url, credentials).await?;
    match status {
        200 => {}
        401 | 403 => {
            return Err(ReadError::Fatal(anyhow::anyhow!(
                "HTTP {status}: the credentials were refused; pass the store's admin user and \
                 password with --admin-user/--admin-password (or ADMIN_USER/ADMIN_PASSWORD)"
            )));
        }
        404 => {
            return Err(ReadError::Fatal(anyhow::anyhow!(
                "HTTP 404: no aggregate there; the store answers it at /admin/aggregate.json"
            )));
        }
        500.. => {
            return Err(ReadError::Transient(anyhow::anyhow!(
                "HTTP {status}: {body:.200}"
            )));
        }
        _ => {
            return Err(ReadError::Fatal(anyhow::anyhow!(
                "HTTP {status}: {body:.200}"
            )));
        }
    }
    shoppers_of(&body).map_err(ReadError::Fatal)
}

/// The `shoppers` field of an aggregate document.
fn shoppers_of(body: &str) -> anyhow::Result<u64> {
    let aggregate: serde_json::Value = serde_json::from_str(body)
        .with_context(|| format!("the answer is not JSON: {body:.200}"))?;
    aggregate["shoppers"].as_u64().with_context(|| {
        format!("no numeric `shoppers` in the answer (is it the store's /admin/aggregate.json?): {body:.200}")
    })
}

/// `GET url` with Basic credentials: the status and the body.
async fn get(url: &str, credentials: &Credentials) -> Result<(u16, String), ReadError> {
    let request = http_client::Request::get(url)
        .map_err(|error| ReadError::Fatal(anyhow::anyhow!("--check-admin: {error}")))?;
    let response = request
        .basic_auth(&credentials.user, &credentials.password)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|error| ReadError::Transient(error.into()))?;
    Ok((response.status.as_u16(), response.text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shopper_count_of_an_aggregate() {
        let body = r#"{"seq":3,"at":1,"shoppers":500,"tabs":501,"pages":[]}"#;
        assert_eq!(shoppers_of(body).ok(), Some(500));
        assert!(shoppers_of(r#"{"unique_shoppers":5}"#).is_err());
        assert!(shoppers_of("<html>").is_err());
    }

    #[test]
    fn a_failed_report_names_each_failing_url() {
        let report = AdminReport {
            expected_shoppers: 10,
            passed: false,
            nodes: vec![
                AdminNode {
                    url: "http://a/x".into(),
                    shoppers: Some(10),
                    passed: true,
                    waited_ms: 5,
                    error: None,
                },
                AdminNode {
                    url: "http://b/x".into(),
                    shoppers: Some(7),
                    passed: false,
                    waited_ms: 10_000,
                    error: Some("http://b/x: the dashboard counts 7 shoppers".into()),
                },
            ],
        };
        let failure = report.failure().unwrap_or_default();
        assert!(failure.contains("http://b/x: the dashboard counts 7"));
        assert!(!failure.contains("http://a/x"));
        let text = report.to_string();
        assert!(
            text.contains("FAILED") && text.contains("ok   http://a/x"),
            "{text}"
        );
    }

    /// A one-shot HTTP server answering `responses` in order, one per connection.
    async fn server(responses: Vec<&'static str>) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for response in responses {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    fn ok(shoppers: u64) -> &'static str {
        let body = format!("{{\"shoppers\":{shoppers}}}");
        Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        )
    }

    fn credentials() -> Credentials {
        Credentials {
            user: "admin".into(),
            password: "password".into(),
        }
    }

    /// `ok(shoppers)` with a chunked body.
    fn ok_chunked(shoppers: u64) -> &'static str {
        let body = format!("{{\"shoppers\":{shoppers}}}");
        let (head, tail) = body.split_at(5);
        Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                 {:x}\r\n{head}\r\n{:x}\r\n{tail}\r\n0\r\n\r\n",
                head.len(),
                tail.len()
            )
            .into_boxed_str(),
        )
    }

    #[tokio::test]
    async fn polls_until_the_count_is_reached() {
        let addr = server(vec![ok(3), ok_chunked(8), ok_chunked(10)]).await;
        let url = format!("http://{addr}/admin/aggregate.json");
        let report = check(&[url], &credentials(), 10, Duration::from_secs(5)).await;
        assert!(report.passed, "{report}");
        assert_eq!(report.nodes[0].shoppers, Some(10));
    }

    #[tokio::test]
    async fn fails_naming_the_url_and_both_numbers() {
        let addr = server(vec![ok(3); 100]).await;
        let url = format!("http://{addr}/admin/aggregate.json");
        let report = check(
            std::slice::from_ref(&url),
            &credentials(),
            10,
            Duration::from_millis(300),
        )
        .await;
        assert!(!report.passed);
        let failure = report.failure().unwrap_or_default();
        assert!(
            failure.contains(&url) && failure.contains("counts 3") && failure.contains("held 10"),
            "{failure}"
        );
    }

    #[tokio::test]
    async fn a_url_that_is_not_plain_http_fails_at_once() {
        for url in ["https://store/admin/aggregate.json", "http:///x"] {
            let report = check(
                &[url.to_owned()],
                &credentials(),
                1,
                Duration::from_secs(30),
            )
            .await;
            let error = report.nodes[0].error.as_deref().unwrap_or_default();
            assert!(error.contains("--check-admin"), "{report}");
            assert!(report.nodes[0].waited_ms < 5_000, "{report}");
        }
    }

    #[tokio::test]
    async fn refused_credentials_fail_at_once() {
        let addr = server(vec![
            "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        let url = format!("http://{addr}/admin/aggregate.json");
        let report = check(&[url], &credentials(), 1, Duration::from_secs(30)).await;
        assert!(!report.passed);
        assert!(report.nodes[0].waited_ms < 5_000);
        assert!(
            report.nodes[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("--admin-password")),
            "{report}"
        );
    }
}
