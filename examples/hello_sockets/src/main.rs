//! hello_sockets: Part I of *Real-Time Phoenix* (chapters 2 to 6) and chapter 10's UserTracker,
//! on this project's stack, so that a reader can run every exercise of the book against it.
//!
//! `hello_sockets serve` runs the node; the other commands are the book's `iex` console
//! commands, sent to the running node (see [`console`]). The README walks the book chapter by
//! chapter.

use hello_sockets::{app, console, user_tracker};

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Real-Time Phoenix's HelloSockets (Part I and the UserTracker), in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the book's sockets, pages, /metrics and the console API.
    Serve(ServeArgs),
    /// Broadcast an event to a topic on every node (Endpoint.broadcast/3).
    Broadcast {
        /// Topic, e.g. ping.
        topic: String,
        /// Event, e.g. request_ping.
        event: String,
        /// Payload, a JSON object.
        #[arg(default_value = "{}")]
        payload: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Broadcast numbers to `dupe`, each list `--times` times (DedupeChannel.broadcast/2).
    Dedupe {
        /// Numbers separated by commas, e.g. 1,2,3.
        numbers: String,
        /// How many times the list is broadcast.
        #[arg(long, default_value_t = 1)]
        times: u32,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Queue data for a user in the push pipeline (Producer.push/1, push_timed/1).
    Push {
        /// The user whose `user:<id>` topic receives it.
        user_id: String,
        /// The data, any JSON object.
        data: String,
        /// Stamp the enqueue time (`push_timed`) to measure delivery.
        #[arg(long)]
        timed: bool,
        /// Queue it this many times, `{"n": i}` merged into the data (the book's Enum.each(1..50, push)).
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The UserTracker.
    Tracker {
        #[command(subcommand)]
        command: TrackerCommand,
    },
    /// Sign a token for the auth socket (Phoenix.Token.sign(Endpoint, "salt identifier", id)).
    Token {
        /// The user id to sign.
        user_id: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand)]
enum TrackerCommand {
    /// Who is tracked, on this node's view of the cluster (UserTracker.list/0).
    List {
        /// The topic.
        #[arg(long, default_value = user_tracker::TOPIC)]
        topic: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 4000)]
    port: u16,
    /// Secret the auth socket's tokens are signed with (at least 20 bytes); the same on every node.
    #[arg(
        long,
        env = "SECRET_KEY_BASE",
        hide_env_values = true,
        default_value = "hello-sockets-development-secret-key-base-0123456789"
    )]
    secret_key_base: String,
    /// This node's name, unique in the cluster [default: nonode@nohost alone,
    /// hello_sockets@127.0.0.1:PORT with PUBSUB_URL].
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// The cluster's broker: `redis://127.0.0.1:6379/?cluster=NAME` or
    /// `nats://127.0.0.1:4222/?cluster=NAME`, the same on every node; unset or `local`: one node.
    #[arg(long, env = "PUBSUB_URL")]
    pubsub_url: Option<String>,
    /// StatsD server (host:port) to send the metrics to, e.g. 127.0.0.1:8126.
    #[arg(long, env = "STATSD_ADDR")]
    statsd_addr: Option<String>,
}

#[derive(Args)]
struct NodeArgs {
    /// URL of the running node [default: http://127.0.0.1:$PORT, PORT defaulting to 4000].
    #[arg(long, env = "NODE_URL")]
    node_url: Option<String>,
}

impl NodeArgs {
    fn url(&self) -> String {
        self.node_url.clone().unwrap_or_else(|| {
            let port = std::env::var("PORT").unwrap_or_else(|_| "4000".to_owned());
            format!("http://127.0.0.1:{port}")
        })
    }
}

fn parse_json(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{what} is not valid JSON ({e}): {text}"))
}

fn parse_numbers(text: &str) -> anyhow::Result<Vec<Value>> {
    text.split(',')
        .map(|n| {
            n.trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| anyhow::anyhow!("{n:?} is not an integer; give numbers like 1,2,3"))
        })
        .collect()
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let local = args
                .pubsub_url
                .as_deref()
                .is_none_or(|u| u.trim().is_empty() || u == "local");
            let node_name = args
                .node_name
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| {
                    if local {
                        "nonode@nohost".to_owned()
                    } else {
                        format!("hello_sockets@127.0.0.1:{}", args.port)
                    }
                });
            app::serve(app::ServeConfig {
                port: args.port,
                secret_key_base: args.secret_key_base,
                node_name,
                pubsub_url: args.pubsub_url,
                statsd_addr: args.statsd_addr,
            })
            .await
        }
        Command::Broadcast {
            topic,
            event,
            payload,
            node,
        } => {
            let payload = parse_json("the payload", &payload)?;
            let body = json!({"topic": topic, "event": event, "payload": payload});
            console::request(&node.url(), "POST", "/console/broadcast", Some(&body)).await?;
            println!(":ok");
            Ok(())
        }
        Command::Dedupe {
            numbers,
            times,
            node,
        } => {
            let body = json!({"numbers": parse_numbers(&numbers)?, "times": times});
            let answer =
                console::request(&node.url(), "POST", "/console/dedupe", Some(&body)).await?;
            println!(":ok ({} broadcasts)", answer["broadcasts"]);
            Ok(())
        }
        Command::Push {
            user_id,
            data,
            timed,
            count,
            node,
        } => {
            let data = parse_json("the data", &data)?;
            for n in 1..=count {
                let mut data = data.clone();
                if count > 1
                    && let Value::Object(map) = &mut data
                {
                    map.insert("n".to_owned(), Value::from(n));
                }
                let body = json!({"user_id": user_id, "data": data, "timed": timed});
                console::request(&node.url(), "POST", "/console/push", Some(&body)).await?;
            }
            println!(":ok");
            Ok(())
        }
        Command::Tracker {
            command: TrackerCommand::List { topic, node },
        } => {
            let path = format!("/console/tracker?topic={}", encode(&topic));
            let answer = console::request(&node.url(), "GET", &path, None).await?;
            for entry in answer.as_array().into_iter().flatten() {
                println!(
                    "{} {}",
                    entry["key"].as_str().unwrap_or_default(),
                    entry["meta"]
                );
            }
            Ok(())
        }
        Command::Token { user_id, node } => {
            let path = format!("/console/token?user_id={}", encode(&user_id));
            let answer = console::request(&node.url(), "GET", &path, None).await?;
            println!("{}", answer["token"].as_str().unwrap_or_default());
            Ok(())
        }
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
