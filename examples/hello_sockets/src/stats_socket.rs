//! StatsSocket (`/stats_socket`, chapter 6): every connection and join counted, pings timed,
//! and the slow pings that show why a channel should answer slow work from another task.
//!
//! | event in | behaviour |
//! |---|---|
//! | `ping` | waits up to a second (random), ok `{"ping": "pong"}`, timed as `stats_channel.ping` |
//! | `slow_ping` | takes 3 s in the channel: the channel's next message waits (five take ~15 s) |
//! | `parallel_slow_ping` | answers after 3 s from a spawned task (five take ~3 s) |

use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{
    Assigns, Channel, ConnectError, ConnectInfo, Context, Outcome, Params, Reply, Routes, Socket,
    to_object,
};
use rand::Rng;
use serde_json::json;

use crate::statix::Statix;

/// How long a slow ping takes.
pub const SLOW: Duration = Duration::from_secs(3);

/// See the module docs.
pub struct StatsSocket {
    statix: Statix,
    routes: Routes,
}

impl StatsSocket {
    /// Every topic is served by [`StatsChannel`] (the book's `channel "*"`).
    pub fn new(statix: Statix) -> Self {
        let for_channels = statix.clone();
        StatsSocket {
            statix,
            routes: Routes::new().route("*", move |_| {
                Box::new(StatsChannel {
                    statix: for_channels.clone(),
                }) as Box<dyn Channel>
            }),
        }
    }
}

#[async_trait]
impl Socket for StatsSocket {
    async fn connect(&self, _: &Params, _: &ConnectInfo) -> Result<Assigns, ConnectError> {
        self.statix.increment(
            "socket_connect",
            &[("status", "success"), ("socket", "StatsSocket")],
        );
        Ok(Assigns::none())
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

/// `valid` joins, anything else is refused; see the module docs for its events.
pub struct StatsChannel {
    statix: Statix,
}

impl StatsChannel {
    fn join_increment(&self, status: &str) {
        self.statix.increment(
            "channel_join",
            &[("status", status), ("channel", "StatsChannel")],
        );
    }
}

fn pong() -> Reply {
    Reply::ok_json(&json!({"ping": "pong"}))
}

#[async_trait]
impl Channel for StatsChannel {
    async fn join(
        &mut self,
        topic: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        if topic == "valid" {
            self.join_increment("success");
            Ok(OutPayload::empty())
        } else {
            self.join_increment("fail");
            Err(OutPayload::Json(to_object(
                &json!({"reason": "always fails"}),
            )))
        }
    }

    async fn handle_in(&mut self, event: &str, _: Payload, ctx: &mut Context<'_>) -> Outcome {
        match event {
            "ping" => {
                let wait = Duration::from_millis(rand::rng().random_range(1..=1000));
                self.statix
                    .measure("stats_channel.ping", async {
                        tokio::time::sleep(wait).await;
                        pong().into()
                    })
                    .await
            }
            "slow_ping" => {
                tokio::time::sleep(SLOW).await;
                pong().into()
            }
            "parallel_slow_ping" => {
                if let Some(reply) = ctx.reply_ref() {
                    tokio::spawn(async move {
                        tokio::time::sleep(SLOW).await;
                        reply.reply(pong());
                    });
                }
                Outcome::NoReply
            }
            other => panic!("StatsChannel has no handle_in for event {other:?}"),
        }
    }
}
