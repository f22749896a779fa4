//! One simulated shopper: connect, join `cart:<random id>` on a `/bench/<n>` page (and, when asked,
//! the `product:<id>` channels a product page joins), add one item, then stay (heartbeating,
//! optionally churning its cart) until told to stop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::borrow::Cow;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::ports::Ports;
use crate::report::{Event, Outcome, drop_cause};

/// How the store answered a cart operation.
enum CartAnswer {
    /// `ok`, after this round trip.
    Ok(Duration),
    /// An error reply with this reason, after this round trip.
    Declined(String, Duration),
}

/// What every shopper of a run is told.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server's socket address.
    pub server: SocketAddr,
    /// `host:port` of the server, as the upgrade request's `Host`.
    pub host: String,
    /// Item ids shoppers pick from.
    pub items: Vec<u32>,
    /// Add/remove operations per shopper per minute while holding (0 = none).
    pub churn_per_minute: f64,
    /// How long to wait for any one reply.
    pub reply_timeout: Duration,
    /// Products whose `product:<id>` channel each shopper joins, as a product page does; the
    /// arrival time of each `stock_change` on them is reported.
    pub products: Vec<u32>,
}

/// A 64-character cart id of the store's alphabet.
pub fn cart_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..64)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A V2 frame `[join_ref, ref, topic, event, payload]`; `payload` is a JSON object the caller
/// wrote (the bench's payloads are a few fixed shapes, not worth a JSON tree each).
fn frame(join_ref: Option<&str>, r: u64, topic: &str, event: &str, payload: &str) -> WsMessage {
    let r = r.to_string();
    // A tuple of strings always serializes.
    let mut text = serde_json::to_string(&(join_ref, r.as_str(), topic, event)).unwrap_or_default();
    text.pop(); // the closing `]`
    text.push(',');
    text.push_str(payload);
    text.push(']');
    WsMessage::Text(text.into())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Reports a `stock_change` push, if `text` is one and the shopper watches products.
fn note_stock_change(plan: &Plan, text: &str, events: &tokio::sync::mpsc::UnboundedSender<Event>) {
    if !plan.products.is_empty() && text.contains(r#","stock_change","#) {
        let _ = events.send(Event::StockChange(std::time::SystemTime::now()));
    }
}

/// A reply: its status, and the `reason` of its response when it has one.
struct Answer {
    status: String,
    reason: Option<String>,
}

/// A V2 frame with only what tells a reply to one of ours from a push decoded (the payload,
/// e.g. a whole cart, stays unparsed text).
#[derive(Deserialize)]
struct FrameHead<'a>(
    IgnoredAny,
    #[serde(borrow)] Option<Cow<'a, str>>,
    IgnoredAny,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] &'a RawValue,
);

/// The payload of a `phx_reply`.
#[derive(Deserialize)]
struct ReplyPayload<'a> {
    status: String,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

/// The fields of a reply's response the bench reports (others are skipped unparsed).
#[derive(Deserialize)]
struct Refusal {
    // Error replies are `{"reason": …}`, Phoenix's convention.
    #[serde(default)]
    reason: Option<serde_json::Value>,
}

/// The reply to ref `want` in the text frame `text`, if it is one.
fn reply_in(text: &str, want: &str) -> Option<Answer> {
    let FrameHead(_, r, _, event, payload) = serde_json::from_str(text).ok()?;
    if event != "phx_reply" || r.as_deref() != Some(want) {
        return None;
    }
    let payload: ReplyPayload = serde_json::from_str(payload.get()).ok()?;
    let reason = payload
        .response
        .filter(|response| response.get().starts_with('{'))
        .and_then(|response| serde_json::from_str::<Refusal>(response.get()).ok())
        .and_then(|refusal| refusal.reason)
        .and_then(|reason| reason.as_str().map(str::to_owned));
    Some(Answer {
        status: payload.status,
        reason,
    })
}

/// Waits for the reply to `r`, skipping pushes (but noting stock changes).
async fn reply_to(
    ws: &mut Ws,
    r: u64,
    plan: &Plan,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
) -> Result<Answer, Outcome> {
    let limit = plan.reply_timeout;
    let want = r.to_string();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| Outcome::Timeout)?;
        match next {
            Some(Ok(WsMessage::Text(text))) => {
                note_stock_change(plan, &text, events);
                if let Some(answer) = reply_in(&text, &want) {
                    return Ok(answer);
                }
            }
            Some(Ok(WsMessage::Close(_))) | None => return Err(Outcome::Closed),
            Some(Ok(_)) => {}
            Some(Err(_)) => return Err(Outcome::Closed),
        }
    }
}

/// Joins `topic` with ref `r`: `Refused` unless the reply is `ok`.
async fn join(
    ws: &mut Ws,
    r: u64,
    topic: &str,
    params: &str,
    plan: &Plan,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
) -> Result<(), Outcome> {
    ws.send(frame(None, r, topic, "phx_join", params))
        .await
        .map_err(|_| Outcome::Closed)?;
    match reply_to(ws, r, plan, events).await? {
        answer if answer.status == "ok" => Ok(()),
        _ => Err(Outcome::Refused),
    }
}

/// Tries this many local ports before giving up on a connection.
const PORT_TRIES: usize = 16;

/// Connects from `source`, on a port the bench picks (see [`crate::ports`]): binding to an
/// explicit port costs the kernel one lookup, where asking it for any free port makes it
/// search the range among the tens of thousands the bench already holds.
async fn connect(plan: &Plan, source: IpAddr, ports: &Ports) -> Result<TcpStream, Outcome> {
    let mut last = Outcome::NoPort;
    for _ in 0..PORT_TRIES {
        let socket = TcpSocket::new_v4().map_err(|_| Outcome::NoDescriptor)?;
        let _ = socket.set_reuseaddr(true);
        if socket
            .bind(SocketAddr::new(source, ports.next(source)))
            .is_err()
        {
            continue; // in use by another socket of this host: try the next port
        }
        match socket.connect(plan.server).await {
            Ok(stream) => return Ok(stream),
            // The 4-tuple is taken (e.g. by a connection in TIME_WAIT): try the next port.
            Err(error) if error.kind() == std::io::ErrorKind::AddrNotAvailable => {}
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(_) => {
                last = Outcome::ConnectRefused;
                break;
            }
        }
    }
    Err(last)
}

/// The size of each connection's read buffer, zero-filled before every read. The store's frames
/// are a few hundred bytes (424 at most with two product joins; a longer one takes several
/// reads); the library's default (128 KiB) made every read zero-fill 128 KiB (most of the
/// bench's instructions per shopper) and every connection map and unmap it (kernel time).
const READ_BUFFER: usize = 1024;

/// The path the shoppers' sockets connect to.
const SOCKET_PATH: &str = "/product_socket/websocket?vsn=2.0.0";

/// The longest upgrade response head read.
const MAX_UPGRADE_HEAD: usize = 8 * 1024;

/// Upgrades `stream` to a WebSocket: one request written, the response head read and checked
/// (status 101 and the `Sec-WebSocket-Accept` of our key), nothing else parsed or built.
async fn upgrade(plan: &Plan, mut stream: TcpStream) -> Result<Ws, Outcome> {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {SOCKET_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
        plan.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|_| Outcome::UpgradeRefused)?;
    let mut head = Vec::with_capacity(512);
    let end = loop {
        if head.len() >= MAX_UPGRADE_HEAD {
            return Err(Outcome::UpgradeRefused);
        }
        head.reserve(512);
        match stream.read_buf(&mut head).await {
            Ok(0) | Err(_) => return Err(Outcome::UpgradeRefused),
            Ok(_) => {}
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    if !accepted(&head[..end], &derive_accept_key(key.as_bytes())) {
        return Err(Outcome::UpgradeRefused);
    }
    let config = Some(WebSocketConfig::default().read_buffer_size(READ_BUFFER));
    let rest = head.split_off(end);
    Ok(if rest.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Client, config).await
    } else {
        WebSocketStream::from_partially_read(stream, rest, Role::Client, config).await
    })
}

/// Whether the response head `head` switches protocols with the accept key `expected`.
fn accepted(head: &[u8], expected: &str) -> bool {
    let Ok(head) = std::str::from_utf8(head) else {
        return false;
    };
    let mut lines = head.split("\r\n");
    let switching = lines.next().is_some_and(|status| {
        let mut parts = status.split(' ');
        parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) && parts.next() == Some("101")
    });
    switching
        && lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
            })
        })
}

async fn open(plan: &Plan, source: IpAddr, ports: &Ports) -> Result<Ws, Outcome> {
    let stream = connect(plan, source, ports).await?;
    let _ = stream.set_nodelay(true);
    upgrade(plan, stream).await
}

/// Runs one shopper until `stop` turns true; every measurement goes to `events`.
pub async fn run(
    plan: Arc<Plan>,
    source: IpAddr,
    ports: Arc<Ports>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let opened = open(&plan, source, &ports).await;
    drop(ports);
    let mut ws = match opened {
        Ok(ws) => ws,
        Err(outcome) => {
            let _ = events.send(Event::Connect(Err(outcome)));
            return;
        }
    };
    let _ = events.send(Event::Connect(Ok(started.elapsed())));

    let topic = format!("cart:{}", cart_id());
    let page = format!("/bench/{}", rand::rng().random_range(1..=4));
    let mut r = 1u64;
    let join_ref = r.to_string();
    let sent = Instant::now();
    let params = format!("{{\"page\":\"{page}\"}}");
    match join(&mut ws, r, &topic, &params, &plan, &events).await {
        Ok(()) => {
            let _ = events.send(Event::Join(Ok(sent.elapsed())));
        }
        Err(outcome) => {
            let _ = events.send(Event::Join(Err(outcome)));
            return;
        }
    }
    for product in &plan.products {
        r += 1;
        let topic = format!("product:{product}");
        if let Err(outcome) = join(&mut ws, r, &topic, "{}", &plan, &events).await {
            let _ = events.send(Event::Join(Err(outcome)));
            return;
        }
    }

    let mut cart: Vec<u32> = Vec::new();
    let add_or_remove = async |ws: &mut Ws, r: u64, cart: &mut Vec<u32>| {
        let remove = !cart.is_empty() && rand::rng().random_bool(0.5);
        let (event, item) = if remove {
            ("remove_item", cart[rand::rng().random_range(0..cart.len())])
        } else {
            let item = plan.items[rand::rng().random_range(0..plan.items.len())];
            ("add_item", item)
        };
        let sent = Instant::now();
        if ws
            .send(frame(
                Some(&join_ref),
                r,
                &topic,
                event,
                &format!("{{\"item_id\":\"{item}\"}}"),
            ))
            .await
            .is_err()
        {
            return Err(Outcome::Closed);
        }
        let answer = reply_to(ws, r, &plan, &events).await?;
        if answer.status == "ok" {
            if remove {
                cart.retain(|i| *i != item);
            } else {
                cart.push(item);
            }
            Ok(CartAnswer::Ok(sent.elapsed()))
        } else {
            Ok(CartAnswer::Declined(
                answer.reason.unwrap_or(answer.status),
                sent.elapsed(),
            ))
        }
    };
    let report = |result: Result<CartAnswer, Outcome>, first: bool| {
        let event = match result {
            Ok(CartAnswer::Ok(took)) if first => Event::Push(Ok(took)),
            Ok(CartAnswer::Ok(took)) => Event::Churn(Ok(took)),
            Ok(CartAnswer::Declined(reason, took)) => Event::Declined {
                first,
                reason,
                took,
            },
            Err(outcome) if first => Event::Push(Err(outcome)),
            Err(outcome) => Event::Churn(Err(outcome)),
        };
        let _ = events.send(event);
    };

    r += 1;
    let first = add_or_remove(&mut ws, r, &mut cart).await;
    report(first, true);

    let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
    heartbeat.tick().await;
    let churn = (plan.churn_per_minute > 0.0)
        .then(|| Duration::from_secs_f64(60.0 / plan.churn_per_minute));
    let mut next_churn = churn.map(|d| tokio::time::Instant::now() + d);
    loop {
        let churn_at =
            next_churn.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                r += 1;
                if let Err(error) = ws.send(frame(None, r, "phoenix", "heartbeat", "{}")).await {
                    let _ = events.send(Event::Dropped(drop_cause(Some(&Err(error)))));
                    return;
                }
            }
            _ = tokio::time::sleep_until(churn_at), if next_churn.is_some() => {
                r += 1;
                let result = add_or_remove(&mut ws, r, &mut cart).await;
                let closed = matches!(result, Err(Outcome::Closed));
                report(result, false);
                if closed {
                    let cause = "closed during a cart operation".to_owned();
                    let _ = events.send(Event::Dropped(cause));
                    return;
                }
                next_churn = churn.map(|d| tokio::time::Instant::now() + d);
            }
            message = ws.next() => match message {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                    let _ = events.send(Event::Dropped(drop_cause(message.as_ref())));
                    return;
                }
                Some(Ok(WsMessage::Text(text))) => note_stock_change(&plan, &text, &events),
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = ws.close(None).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use channels_protocol::codec::client::{self, Received};
    use channels_protocol::codec::{FrameKind, Payload, Serializer};

    #[test]
    fn frames_decode_as_the_protocol_codec_reads_them() {
        let WsMessage::Text(text) = frame(
            Some("1"),
            3,
            "cart:a+b/c\"",
            "add_item",
            "{\"item_id\":\"7\"}",
        ) else {
            panic!("a text frame");
        };
        let decoded = client::decode(
            Serializer::V2,
            FrameKind::Text,
            text.as_bytes().to_vec().into(),
        );
        let Ok(Received::Message(message)) = decoded else {
            panic!("{text}: {decoded:?}");
        };
        assert_eq!(message.join_ref.as_deref(), Some("1"));
        assert_eq!(message.ref_.as_deref(), Some("3"));
        assert_eq!(message.topic, "cart:a+b/c\"");
        assert_eq!(message.event, "add_item");
        assert_eq!(
            message.payload,
            Payload::Json(serde_json::json!({"item_id": "7"}))
        );
    }

    #[test]
    fn replies_are_told_from_pushes_and_other_refs() {
        let ok = r#"["1","2","cart:x","phx_reply",{"status":"ok","response":{"items":[1,2],"error":null}}]"#;
        let answer = reply_in(ok, "2").expect("the reply to 2");
        assert_eq!(answer.status, "ok");
        assert_eq!(answer.reason, None);
        assert!(reply_in(ok, "3").is_none(), "another ref");
        let refused = r#"["1","4","cart:x","phx_reply",{"status":"error","response":{"reason":"out_of_stock"}}]"#;
        let answer = reply_in(refused, "4").expect("the reply to 4");
        assert_eq!(answer.status, "error");
        assert_eq!(answer.reason.as_deref(), Some("out_of_stock"));
        let phoenix = r#"[null,"5","t","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#;
        assert_eq!(
            reply_in(phoenix, "5").and_then(|a| a.reason).as_deref(),
            Some("unmatched topic")
        );
        let odd = r#"[null,"6","t","phx_reply",{"status":"ok","response":"text"}]"#;
        assert_eq!(
            reply_in(odd, "6").map(|a| (a.status, a.reason)),
            Some(("ok".into(), None))
        );
        let push = r#"[null,null,"product:1","stock_change",{"status":"ok","ref":"2"}]"#;
        assert!(reply_in(push, "2").is_none());
        assert!(reply_in("not json", "2").is_none());
    }

    #[test]
    fn the_upgrade_is_accepted_only_with_101_and_our_accept_key() {
        // RFC 6455 §1.3's example key.
        let expected = derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(expected, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-accept: {expected}\r\n\r\n"
        );
        assert!(accepted(head.as_bytes(), &expected));
        assert!(!accepted(head.as_bytes(), "another key"));
        let refused = format!("HTTP/1.1 403 Forbidden\r\nsec-websocket-accept: {expected}\r\n\r\n");
        assert!(!accepted(refused.as_bytes(), &expected));
        assert!(!accepted(b"\xff\xfe", &expected));
    }
}
