//! The book's sockets: `/socket` with a `ping` channel, `/auth_socket` accepting only signed
//! tokens, and `/tracked_socket` whose `tracked` channel puts its user in a Presence.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::extract::Query;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use channels::assets::PHOENIX_JS;
use channels::codec::{OutPayload, Payload};
use channels::presence::{PRESENCE_STATE, Presence, Tracked};
use channels::server::transport::{Transports, socket_router};
use channels::server::{
    Assigns, Channel, ConnectError, ConnectInfo, Context, Endpoint, EndpointConfig, Outcome,
    Params, Reply, Routes, Socket, StopReason, to_object,
};
use channels::token::{MaxAge, Signer};
use serde_json::json;

/// Salt of the auth socket's tokens, as in the book.
const TOKEN_SALT: &str = "salt identifier";

/// The user a connection belongs to.
struct UserId(String);

/// A socket that accepts everyone and serves `ping` and `tracked`.
struct OpenSocket {
    routes: Routes,
}

#[async_trait]
impl Socket for OpenSocket {
    async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
        Ok(match params.get("user_id") {
            Some(id) => Assigns::new(UserId(id.clone())),
            None => Assigns::none(),
        })
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

/// A socket that needs a token signed with [`TOKEN_SALT`] (at most a day old).
struct AuthSocket {
    signer: Signer,
    routes: Routes,
}

#[async_trait]
impl Socket for AuthSocket {
    async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
        let token = params.get("token").map(String::as_str);
        match self
            .signer
            .verify_string(token, Some(MaxAge::Seconds(86_400)))
        {
            Ok(user_id) => Ok(Assigns::new(UserId(user_id))),
            Err(error) => Err(ConnectError::new(format!("auth_socket token: {error}"))),
        }
    }

    fn id(&self, assigns: &Assigns) -> Option<String> {
        assigns
            .get::<UserId>()
            .map(|u| format!("auth_socket:{}", u.0))
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

/// Answers `ping` with `pong`.
struct PingChannel;

#[async_trait]
impl Channel for PingChannel {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        _ctx: &mut Context<'_>,
    ) -> Outcome {
        match event {
            "ping" => Reply::ok_json(&json!({"ping": "pong"})).into(),
            _ => Reply::error_reason("unknown event").into(),
        }
    }
}

/// `user:<id>`: only the socket's own user may join.
struct UserChannel;

#[async_trait]
impl Channel for UserChannel {
    async fn join(
        &mut self,
        topic: &str,
        _: Payload,
        ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let own = ctx
            .assigns()
            .get::<UserId>()
            .map(|u| format!("user:{}", u.0));
        if own.as_deref() == Some(topic) {
            Ok(OutPayload::empty())
        } else {
            Err(OutPayload::Json(to_object(
                &json!({"reason": "unauthorized"}),
            )))
        }
    }

    async fn handle_in(&mut self, _: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        Outcome::NoReply
    }
}

/// `tracked`: tracks its user after joining and pushes the presence list.
struct TrackedChannel {
    presence: Presence,
    tracked: Option<Tracked>,
}

#[async_trait]
impl Channel for TrackedChannel {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        if ctx.assigns().get::<UserId>().is_some() {
            Ok(OutPayload::empty())
        } else {
            Err(OutPayload::Json(to_object(
                &json!({"reason": "user_id required"}),
            )))
        }
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        let user_id = ctx
            .assigns()
            .get::<UserId>()
            .map(|u| u.0.clone())
            .unwrap_or_default();
        let online_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let topic = ctx.topic().to_owned();
        let meta = json!({"online_at": online_at.to_string(), "user_id": user_id});
        match self.presence.track(&topic, &user_id, meta) {
            Ok(tracked) => self.tracked = Some(tracked),
            Err(error) => return Err(StopReason::Error(error.to_string())),
        }
        ctx.push(PRESENCE_STATE, self.presence.list(&topic));
        Ok(())
    }

    async fn handle_in(&mut self, _: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        Outcome::NoReply
    }
}

const TRACKED_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Tracked users</title></head>
<body>
<h1>Online users</h1>
<ul id="users"></ul>
<script type="module">
import { Socket, Presence } from "/js/phoenix.mjs";
const userId = new URLSearchParams(location.search).get("user_id");
const socket = new Socket("/tracked_socket", { params: { user_id: userId } });
socket.connect();
const channel = socket.channel("tracked", {});
const presence = new Presence(channel);
presence.onSync(() => {
  const list = document.getElementById("users");
  list.replaceChildren(...presence.list((id) => {
    const item = document.createElement("li");
    item.textContent = id;
    return item;
  }));
});
channel.join();
</script>
</body></html>"#;

#[derive(serde::Deserialize)]
struct TokenQuery {
    user_id: String,
}

/// Serves the sockets and pages on `port`.
pub async fn serve(port: u16, secret_key_base: &str) -> anyhow::Result<()> {
    let pubsub = pubsub::PubSub::new("hello_sockets");
    let endpoint = Endpoint::new(pubsub, EndpointConfig::default());
    let presence = Presence::start(
        endpoint.clone(),
        "user_tracker",
        tracker::Options::default(),
    )?;
    let signer = Signer::new(secret_key_base, TOKEN_SALT)?;

    let open = Arc::new(OpenSocket {
        routes: Routes::new()
            .route("ping", |_| Box::new(PingChannel) as Box<dyn Channel>)
            .route("tracked", move |_| {
                Box::new(TrackedChannel {
                    presence: presence.clone(),
                    tracked: None,
                }) as Box<dyn Channel>
            }),
    });
    let auth = Arc::new(AuthSocket {
        signer: signer.clone(),
        routes: Routes::new()
            .route("ping", |_| Box::new(PingChannel) as Box<dyn Channel>)
            .route("user:*", |_| Box::new(UserChannel) as Box<dyn Channel>),
    });
    let app = Router::new()
        .route("/tracked", get(|| async { Html(TRACKED_PAGE) }))
        .route(
            "/js/phoenix.mjs",
            get(|| async { ([("content-type", "text/javascript")], PHOENIX_JS) }),
        )
        .route(
            "/token",
            get(move |Query(q): Query<TokenQuery>| {
                let signer = signer.clone();
                async move {
                    match signer.sign_string(&q.user_id) {
                        Ok(token) => token.into_response(),
                        Err(error) => error.to_string().into_response(),
                    }
                }
            }),
        )
        .nest(
            "/socket",
            socket_router(endpoint.clone(), open.clone(), Transports::all()),
        )
        .nest(
            "/tracked_socket",
            socket_router(endpoint.clone(), open, Transports::all()),
        )
        .nest(
            "/auth_socket",
            socket_router(endpoint, auth, Transports::all()),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!("open http://{addr}/tracked (sockets: /socket, /tracked_socket, /auth_socket)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
