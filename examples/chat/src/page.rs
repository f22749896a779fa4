//! The page: `/` asks for a name, `/?name=alice` signs a token for alice and embeds it in a chat
//! page that connects with the official `phoenix` JavaScript client, served at `/js/phoenix.mjs`.
//!
//! There are no passwords here: whoever picks a name gets a token for it. A real app signs the
//! token for the user its login established (Phoenix's `Phoenix.Token.sign(conn, "user socket",
//! user.id)` in a controller), the same way.

use axum::Router;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use channels::assets::PHOENIX_MIN_JS;
use channels::token::Signer;
use serde::Deserialize;

/// The longest user name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// The page's query string.
#[derive(Deserialize)]
struct PageQuery {
    name: Option<String>,
    room: Option<String>,
}

/// `/` and `/js/phoenix.mjs`.
pub fn routes(signer: Signer) -> Router {
    Router::new()
        .route(
            "/",
            get(move |Query(query): Query<PageQuery>| {
                let signer = signer.clone();
                async move { page(&signer, query) }
            }),
        )
        .route(
            "/js/phoenix.mjs",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], PHOENIX_MIN_JS) }),
        )
}

/// The chat page for a valid name, else the form asking for one.
fn page(signer: &Signer, query: PageQuery) -> Response {
    let Some(name) = query
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| valid_name(n))
    else {
        let error = match &query.name {
            Some(_) => "<p role=alert>A name is 1 to 32 letters, digits, spaces, - or _.</p>",
            None => "",
        };
        return Html(fill(FORM, &[("__ERROR__", error)])).into_response();
    };
    let room = query
        .room
        .as_deref()
        .filter(|r| valid_room(r))
        .unwrap_or("lobby");
    match signer.sign_string(name) {
        Ok(token) => Html(fill(
            CHAT,
            &[
                ("__NAME__", &escape(name)),
                ("__ROOM__", &escape(room)),
                ("__TOKEN__", &escape(&token)),
            ],
        ))
        .into_response(),
        Err(error) => {
            tracing::error!(%error, "token could not be signed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "token could not be signed",
            )
                .into_response()
        }
    }
}

/// 1 to [`MAX_NAME_CHARS`] letters, digits, spaces, `-` or `_`.
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
}

/// 1 to 32 ASCII letters, digits, `-` or `_`.
fn valid_room(room: &str) -> bool {
    (1..=32).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Replaces each placeholder of `template` by its value, in one pass (a value that looks like a
/// placeholder stays as it is).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    loop {
        let next = values
            .iter()
            .filter_map(|&(key, value)| rest.find(key).map(|at| (at, key, value)))
            .min_by_key(|&(at, _, _)| at);
        match next {
            Some((at, key, value)) => {
                out.push_str(&rest[..at]);
                out.push_str(value);
                rest = &rest[at + key.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// Escapes text for an HTML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chat</title></head>
<body>
<h1>Chat</h1>
__ERROR__
<form method="get" action="/">
  <label>Your name <input name="name" maxlength="32" required autofocus></label>
  <label>Room <input name="room" value="lobby" maxlength="32"></label>
  <button>Enter</button>
</form>
</body></html>"#;

const CHAT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chat: __ROOM__</title>
<meta name="user-token" content="__TOKEN__">
<meta name="room" content="__ROOM__">
</head>
<body>
<h1>Room __ROOM__, as __NAME__</h1>
<p id="status" aria-live="polite">connecting…</p>
<h2>Here now</h2>
<ul id="members"></ul>
<h2>Messages</h2>
<ol id="messages" aria-live="polite"></ol>
<form id="send">
  <label>Message <input id="body" maxlength="2000" required autocomplete="off"></label>
  <button>Send</button>
</form>
<script type="module">
import { Socket, Presence } from "/js/phoenix.mjs";

const meta = (key) => document.querySelector(`meta[name="${key}"]`).content;
const socket = new Socket("/socket", { params: { token: meta("user-token") } });
socket.connect();

const channel = socket.channel(`room:${meta("room")}`, {});
const status = document.getElementById("status");

const presence = new Presence(channel);
presence.onSync(() => {
  document.getElementById("members").replaceChildren(
    ...presence.list((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }),
  );
});

channel.on("new_msg", ({ user, body }) => {
  const item = document.createElement("li");
  item.textContent = `${user}: ${body}`;
  document.getElementById("messages").append(item);
});

channel
  .join()
  .receive("ok", () => (status.textContent = "connected"))
  .receive("error", ({ reason }) => (status.textContent = `could not join: ${reason}`));

document.getElementById("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("body");
  channel
    .push("new_msg", { body: input.value })
    .receive("ok", () => (input.value = ""))
    .receive("error", ({ reason }) => (status.textContent = reason));
});
</script>
</body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once_and_values_escaped() {
        let page = fill(
            "<h1>__ROOM__ as __NAME__</h1>",
            &[("__NAME__", "__ROOM__"), ("__ROOM__", &escape("a<b"))],
        );
        assert_eq!(page, "<h1>a&lt;b as __ROOM__</h1>");
    }

    #[test]
    fn names_and_rooms_are_checked() {
        assert!(valid_name("Ann-Marie O_2"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(MAX_NAME_CHARS + 1)));
        assert!(!valid_name("<script>"));
        assert!(valid_room("lobby-2"));
        assert!(!valid_room("a b"));
    }
}
