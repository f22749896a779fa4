//! One simulated shopper: connect, join `cart:<random id>` on a `/bench/<n>` page (and, when asked,
//! the `product:<id>` channels a product page joins), add one item, then stay (heartbeating,
//! optionally churning its cart) until told to stop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use channels_protocol::codec::client::{self, Received};
use channels_protocol::codec::{FrameKind, Message, Payload, Serializer};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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
    /// `ws://host:port/product_socket/websocket?vsn=2.0.0`.
    pub url: String,
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

fn frame(
    join_ref: Option<&str>,
    r: u64,
    topic: &str,
    event: &str,
    payload: serde_json::Value,
) -> WsMessage {
    let message = Message {
        join_ref: join_ref.map(Into::into),
        ref_: Some(r.to_string().into()),
        topic: topic.to_owned(),
        event: event.to_owned(),
        payload: Payload::Json(payload),
    };
    match client::encode(Serializer::V2, &message) {
        Ok(frame) => WsMessage::Text(String::from_utf8_lossy(&frame.data).into_owned().into()),
        Err(_) => WsMessage::Text("[]".into()),
    }
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
        let data = match next {
            Some(Ok(WsMessage::Text(text))) => {
                note_stock_change(plan, &text, events);
                Bytes::from(text)
            }
            Some(Ok(WsMessage::Close(_))) | None => return Err(Outcome::Closed),
            Some(Ok(_)) => continue,
            Some(Err(_)) => return Err(Outcome::Closed),
        };
        if let Ok(Received::Reply(reply)) = client::decode(Serializer::V2, FrameKind::Text, data)
            && reply.ref_.as_deref() == Some(want.as_str())
        {
            let reason = match &reply.response {
                // The store answers `{"error": code}`; Phoenix's convention is `reason`.
                Payload::Json(response) => ["error", "reason"]
                    .iter()
                    .find_map(|key| response.get(*key).and_then(|r| r.as_str()))
                    .map(str::to_owned),
                Payload::Binary(_) => None,
            };
            return Ok(Answer {
                status: reply.status,
                reason,
            });
        }
    }
}

/// Joins `topic` with ref `r`: `Refused` unless the reply is `ok`.
async fn join(
    ws: &mut Ws,
    r: u64,
    topic: &str,
    params: serde_json::Value,
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

/// The size of each connection's read buffer. The store's frames are a few hundred bytes; the
/// library's default (128 KiB) made every read zero-fill 128 KiB (most of the bench's
/// instructions per shopper) and every connection map and unmap it (kernel time).
const READ_BUFFER: usize = 4 * 1024;

async fn open(plan: &Plan, source: IpAddr, ports: &Ports) -> Result<Ws, Outcome> {
    let stream = connect(plan, source, ports).await?;
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(plan.url.as_str(), stream, Some(config))
            .await
            .map_err(|_| Outcome::UpgradeRefused)?;
    Ok(ws)
}

/// Runs one shopper until `stop` turns true; every measurement goes to `events`.
pub async fn run(
    plan: Plan,
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
    match join(&mut ws, r, &topic, json!({"page": page}), &plan, &events).await {
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
        if let Err(outcome) = join(&mut ws, r, &topic, json!({}), &plan, &events).await {
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
                json!({"item_id": item.to_string()}),
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
                if let Err(error) = ws.send(frame(None, r, "phoenix", "heartbeat", json!({}))).await {
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
