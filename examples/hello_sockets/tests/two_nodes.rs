//! Two `hello_sockets serve` processes on two ports sharing a broker (`PUBSUB_URL`), as the
//! book runs its cluster (chapters 5 and 10): once over Redis, once over NATS, each run under
//! its own cluster name and node names so that parallel runs never hear each other.
//!
//! - A user who joins `tracked` through node A is listed by `tracker list` on both nodes, and is
//!   gone from both once the WebSocket (the tab) closes.
//! - `broadcast ping request_ping` sent to node B reaches a client of node A, intercepted there
//!   (`from_node` is A's name).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Client, Server};
use serde_json::json;

/// Tracker replication runs every 1.5 s; allow a few rounds.
const CONVERGE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug)]
enum Broker {
    Redis,
    Nats,
}

impl Broker {
    fn url(self, cluster: &str) -> String {
        match self {
            Broker::Redis => {
                let addr = std::env::var("REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".into());
                format!("redis://{addr}/?cluster={cluster}")
            }
            Broker::Nats => {
                let addr = std::env::var("NATS_ADDR").unwrap_or_else(|_| "127.0.0.1:4222".into());
                format!("nats://{addr}/?cluster={cluster}")
            }
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn start_pair(broker: Broker) -> (Server, Server, String) {
    let cluster = unique("hello_sockets");
    let url = broker.url(&cluster);
    let a_name = format!("{cluster}_a@127.0.0.1");
    let b_name = format!("{cluster}_b@127.0.0.1");
    let a = Server::start(&[("PUBSUB_URL", &url), ("NODE_NAME", &a_name)]).await;
    let b = Server::start(&[("PUBSUB_URL", &url), ("NODE_NAME", &b_name)]).await;
    (a, b, a_name)
}

/// The keys `tracker list` prints on `server`.
async fn tracked_keys(server: &Server) -> Vec<String> {
    let listed = server.console(&["tracker", "list"]).await;
    listed
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(key, _)| key.to_owned()))
        .collect()
}

async fn wait_keys(server: &Server, want: &[&str], what: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let keys = tracked_keys(server).await;
        if keys == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: listed {keys:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn tracked_on_both_until_the_tab_closes(broker: Broker) {
    let (a, b, _) = start_pair(broker).await;
    let token = common::token(&a, "1").await;
    let mut tab = Client::connect(a.addr, "/auth_socket", &[("token", &token)])
        .await
        .expect("connect to node A");
    let other_token = common::token(&b, "other").await;
    let mut other_tab = Client::connect(b.addr, "/auth_socket", &[("token", &other_token)])
        .await
        .expect("connect to node B");
    assert_eq!(tab.join("tracked", json!({})).await["status"], "ok");
    assert_eq!(other_tab.join("tracked", json!({})).await["status"], "ok");
    wait_keys(&a, &["1", "other"], "node A").await;
    wait_keys(&b, &["1", "other"], "node B").await;
    drop(tab);
    wait_keys(&a, &["other"], "node A after the tab closed").await;
    wait_keys(&b, &["other"], "node B after the tab closed").await;
}

async fn a_broadcast_on_b_reaches_a_client_of_a(broker: Broker) {
    let (a, b, a_name) = start_pair(broker).await;
    let mut client = Client::connect(a.addr, "/socket", &[])
        .await
        .expect("connect");
    assert_eq!(client.join("ping", json!({})).await["status"], "ok");
    // The brokers deliver only once both nodes have subscribed; retry until it arrives.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        b.console(&["broadcast", "ping", "request_ping", "{}"])
            .await;
        if let Some(pushed) = client
            .expect_push_within("ping", "send_ping", Duration::from_millis(500))
            .await
        {
            assert_eq!(pushed, json!({ "from_node": a_name }));
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no send_ping from node B's broadcast"
        );
    }
}

mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_is_tracked_on_both_nodes_until_the_tab_closes() {
        tracked_on_both_until_the_tab_closes(Broker::Redis).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broadcast_sent_to_one_node_reaches_the_other_nodes_clients() {
        a_broadcast_on_b_reaches_a_client_of_a(Broker::Redis).await;
    }
}

mod nats {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_is_tracked_on_both_nodes_until_the_tab_closes() {
        tracked_on_both_until_the_tab_closes(Broker::Nats).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broadcast_sent_to_one_node_reaches_the_other_nodes_clients() {
        a_broadcast_on_b_reaches_a_client_of_a(Broker::Nats).await;
    }
}
