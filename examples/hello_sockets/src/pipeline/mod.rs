//! The push pipeline (chapter 6, the book's GenStage chapter): a bounded producer, a consumer
//! pool with `max_demand` 10 and `min_demand` 5, and one worker per item that broadcasts it to
//! the user's channel.
//!
//! - [`Producer::push`] queues `{user_id, data}`; a worker broadcasts `push` with `data` to
//!   `user:<id>` after a second (the book's worker sleeps, so that the groups of ten show).
//! - [`Producer::push_timed`] stamps the item with the enqueue time; a worker broadcasts
//!   `push_timed {data, at}` at once, and the user's [`AuthChannel`](crate::auth_socket::AuthChannel)
//!   records `now - at` as the histogram `pipeline.push_delivered`.
//! - Workers are timed as `pipeline.worker.process_time`.
//! - A full buffer (10,000 items) refuses the item with [`Full`], counted as
//!   `pipeline.refused`.
//!
//! The buffer and the demand are pure ([`core`]); this module is the thin task around them.

pub mod core;

use std::sync::Arc;
use std::time::Duration;

use channels::codec::OutPayload;
use channels::server::{Endpoint, to_object};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub use self::core::Full;
use self::core::{Buffer, Demand};
use crate::statix::{Statix, unix_ms_now};

/// Items the producer holds at most.
pub const BUFFER_SIZE: usize = 10_000;
/// Workers running at most.
pub const MAX_DEMAND: usize = 10;
/// Demand is renewed once `MAX_DEMAND - MIN_DEMAND` workers have finished.
pub const MIN_DEMAND: usize = 5;
/// How long an untimed item's worker waits before broadcasting (the book's `Process.sleep(1000)`).
pub const UNTIMED_DELAY: Duration = Duration::from_secs(1);

/// One item of work.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Whose `user:<id>` topic receives it.
    pub user_id: String,
    /// What the client receives.
    pub data: Value,
    /// When it was enqueued (ms since the epoch), for timed items.
    pub enqueued_at: Option<i64>,
}

/// Where items enter the pipeline; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    buffer: Arc<Mutex<Buffer<Item>>>,
    wake: Arc<Notify>,
    statix: Statix,
}

impl Producer {
    /// Starts the consumer pool broadcasting through `endpoint`.
    pub fn start(endpoint: Endpoint, statix: Statix) -> Producer {
        let producer = Producer {
            buffer: Arc::new(Mutex::new(Buffer::new(BUFFER_SIZE))),
            wake: Arc::new(Notify::new()),
            statix: statix.clone(),
        };
        tokio::spawn(consume(producer.clone(), endpoint, statix));
        producer
    }

    /// Queues `data` for `user_id` (the book's `Producer.push/1`).
    pub fn push(&self, user_id: &str, data: Value) -> Result<(), Full> {
        self.enqueue(Item {
            user_id: user_id.to_owned(),
            data,
            enqueued_at: None,
        })
    }

    /// Queues `data` for `user_id` stamped with the time now (the book's `Producer.push_timed/1`).
    pub fn push_timed(&self, user_id: &str, data: Value) -> Result<(), Full> {
        self.enqueue(Item {
            user_id: user_id.to_owned(),
            data,
            enqueued_at: Some(unix_ms_now()),
        })
    }

    fn enqueue(&self, item: Item) -> Result<(), Full> {
        let pushed = self.buffer.lock().push(item);
        match pushed {
            Ok(()) => {
                self.wake.notify_one();
                Ok(())
            }
            Err((full, _)) => {
                self.statix.increment("pipeline.refused", &[]);
                Err(full)
            }
        }
    }
}

/// The consumer pool: takes what its demand allows, one worker per item.
async fn consume(producer: Producer, endpoint: Endpoint, statix: Statix) {
    let mut demand = Demand::new(MAX_DEMAND, MIN_DEMAND);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    loop {
        let items = producer.buffer.lock().take(demand.open());
        demand.received(items.len());
        for item in items {
            let endpoint = endpoint.clone();
            let statix = statix.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                statix
                    .measure("pipeline.worker.process_time", process(&endpoint, item))
                    .await;
                let _ = done.send(());
            });
        }
        tokio::select! {
            () = producer.wake.notified() => {}
            Some(()) = done_rx.recv() => demand.finished(),
        }
    }
}

/// A worker's job: broadcast the item to its user's topic.
async fn process(endpoint: &Endpoint, item: Item) {
    let topic = format!("user:{}", item.user_id);
    match item.enqueued_at {
        Some(at) => {
            let payload = to_object(&json!({ "data": item.data, "at": at }));
            endpoint.broadcast(&topic, "push_timed", &OutPayload::Json(payload));
        }
        None => {
            tokio::time::sleep(UNTIMED_DELAY).await;
            endpoint.broadcast(&topic, "push", &OutPayload::Json(to_object(&item.data)));
        }
    }
}
