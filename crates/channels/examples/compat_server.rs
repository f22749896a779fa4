//! The server the JavaScript compatibility suite (`tests/js/channels.test.mjs`) drives with the
//! official `phoenix` client: one socket at `/socket` (WebSocket and LongPoll) whose `room:*`
//! channel exercises every part of the protocol on demand.
//!
//! Prints `listening on http://ADDR` once it accepts connections. `PORT` picks the port (default:
//! any free one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use channels::codec::{JsonObject, OutPayload, Payload};
use channels::presence::Presence;
use channels::server::transport::{Transports, socket_router};
use channels::server::{
    Assigns, Channel, ConnectError, ConnectInfo, Context, Endpoint, EndpointConfig, Outcome,
    Params, Reply, Routes, Socket, StopReason, to_object,
};
use serde_json::{Value, json};

/// Who is connected: the `user` connect param.
struct User(String);

struct CompatSocket {
    routes: Routes,
}

#[async_trait]
impl Socket for CompatSocket {
    async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
        match params.get("user").map(String::as_str) {
            Some("intruder") => Err(ConnectError::new("user intruder is banned")),
            Some(user) => Ok(Assigns::new(User(user.to_owned()))),
            None => Ok(Assigns::none()),
        }
    }

    fn id(&self, assigns: &Assigns) -> Option<String> {
        assigns
            .get::<User>()
            .map(|u| format!("user_socket:{}", u.0))
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

/// A channel that does whatever the client asks, to test each protocol path.
struct Room {
    presence: Presence,
    tracked: Option<channels::presence::Tracked>,
}

fn object(value: Value) -> OutPayload {
    OutPayload::Json(to_object(&value))
}

#[async_trait]
impl Channel for Room {
    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        match params {
            Payload::Json(params) if params.get("reject").is_some() => {
                Err(object(json!({"reason": "unauthorized"})))
            }
            Payload::Json(params) if params.get("crash_join").is_some() => {
                panic!("join crashed on request")
            }
            _ => Ok(object(json!({"joined": topic}))),
        }
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        let topic = ctx.topic().to_owned();
        ctx.push("welcome", object(json!({"topic": topic})));
        Ok(())
    }

    async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
        match (event, payload) {
            ("echo", Payload::Json(value)) => Reply::ok(object(json!({"echo": value}))).into(),
            ("echo", Payload::Binary(bytes)) => Reply::ok(OutPayload::Binary(bytes)).into(),
            ("push_binary", Payload::Json(_)) => {
                ctx.push(
                    "binary",
                    OutPayload::Binary(bytes::Bytes::from_static(&[1, 2, 3, 255])),
                );
                Reply::ok(OutPayload::empty()).into()
            }
            ("fail", _) => Reply::error_reason("failed on request").into(),
            ("shout", Payload::Json(value)) => {
                ctx.broadcast("shout", object(value));
                Reply::ok(OutPayload::empty()).into()
            }
            ("shout_others", Payload::Json(value)) => {
                ctx.broadcast_from("shout", object(value));
                Reply::ok(OutPayload::empty()).into()
            }
            ("crash", _) => panic!("handler crashed on request"),
            ("ignore", _) => Outcome::NoReply,
            ("stop", _) => Outcome::Stop(StopReason::Normal, Some(Reply::ok(OutPayload::empty()))),
            ("later", _) => {
                if let Some(reply) = ctx.reply_ref() {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        reply.reply(Reply::ok(object(json!({"later": true}))));
                    });
                }
                Outcome::NoReply
            }
            ("track", Payload::Json(meta)) => {
                let key = ctx
                    .assigns()
                    .get::<User>()
                    .map_or_else(|| "anonymous".to_owned(), |u| u.0.clone());
                let topic = ctx.topic().to_owned();
                match self.presence.track(&topic, &key, meta) {
                    Ok(tracked) => {
                        self.tracked = Some(tracked);
                        let state = self.presence.list(&topic);
                        ctx.push("presence_state", state);
                        Reply::ok(OutPayload::empty()).into()
                    }
                    Err(error) => Reply::error_reason(&error.to_string()).into(),
                }
            }
            ("update", Payload::Json(meta)) => match &self.tracked {
                Some(tracked) => match self.presence.update(tracked, meta) {
                    Ok(()) => Reply::ok(OutPayload::empty()).into(),
                    Err(error) => Reply::error_reason(&error.to_string()).into(),
                },
                None => Reply::error_reason("not tracked").into(),
            },
            ("untrack", _) => {
                self.tracked = None;
                Reply::ok(OutPayload::empty()).into()
            }
            _ => Reply::error_reason("unknown event").into(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let pubsub = pubsub::PubSub::new("compat");
    let config = EndpointConfig {
        longpoll_window: Duration::from_millis(
            std::env::var("LONGPOLL_WINDOW_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000),
        ),
        write_timeout: Duration::from_secs(2),
        max_frame_size: 64 * 1024,
        ..EndpointConfig::default()
    };
    let endpoint = Endpoint::new(pubsub.clone(), config);
    let presence = Presence::start(
        endpoint.clone(),
        "compat_presence",
        tracker::Options::default(),
    )?;
    let routes = Routes::new().route("room:*", move |_topic| {
        Box::new(Room {
            presence: presence.clone(),
            tracked: None,
        }) as Box<dyn Channel>
    });
    let socket = Arc::new(CompatSocket { routes });
    let app = Router::new()
        .route("/disconnect/{id}", post(disconnect))
        .route("/broadcast/{topic}/{event}", post(broadcast))
        .with_state(endpoint.clone())
        .nest(
            "/socket",
            socket_router(endpoint, socket, Transports::all()),
        );
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn disconnect(State(endpoint): State<Endpoint>, Path(id): Path<String>) -> &'static str {
    endpoint.disconnect(&id);
    "ok"
}

async fn broadcast(
    State(endpoint): State<Endpoint>,
    Path((topic, event)): Path<(String, String)>,
    body: String,
) -> &'static str {
    match JsonObject::from_json(body) {
        Ok(payload) => {
            endpoint.broadcast(&topic, &event, &OutPayload::Json(payload));
            "ok"
        }
        Err(_) => "not a JSON object",
    }
}
