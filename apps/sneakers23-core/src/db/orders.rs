//! Selling: one unit with one conditional statement, and a cart as an order named by its
//! idempotency key, all or nothing, with its commit confirmed when the answer is lost.

use std::time::{Duration, Instant};

use crate::model::ItemId;

use super::error::DbError;
use super::records::{Order, Purchase};
use super::{Db, Pool, on_pool};

fn encode_item_ids(item_ids: &[ItemId]) -> String {
    item_ids
        .iter()
        .map(ItemId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_item_ids(text: &str) -> Vec<ItemId> {
    text.split(',').filter_map(|id| id.parse().ok()).collect()
}

/// The statement that sells one unit of an item if one is left.
const SELL_ONE: &str = "UPDATE item_availabilities \
     SET available_count = available_count - 1, updated_at = CURRENT_TIMESTAMP \
     WHERE item_id = $1 AND available_count > 0";

impl Db {
    /// Sells one unit of an item with one conditional UPDATE: [`DbError::NotAvailable`] when
    /// the item is sold out or unknown.
    pub async fn sell_item(&self, item_id: ItemId) -> Result<(), DbError> {
        let changed = on_pool!(self, pool => sqlx::query(SELL_ONE)
            .bind(item_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| DbError::from_sqlx(format!("selling item {item_id}"), e));
        let changed = self.note_write(changed)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(DbError::NotAvailable { item_id })
        }
    }

    /// Sells one unit of every item in one transaction, as a new order with a fresh key. If
    /// any item cannot be sold, nothing is sold and [`DbError::PurchaseFailed`] names the
    /// first failing item. See [`Db::purchase_order`].
    pub async fn purchase(&self, item_ids: &[ItemId]) -> Result<(), DbError> {
        let key = format!("internal-{:032x}", rand::random::<u128>());
        self.purchase_order(&key, item_ids).await.map(drop)
    }

    /// Purchases a cart as order `key`: in one transaction, the order row (unique key) and
    /// one unit of every item.
    ///
    /// - An order with this key already exists (a replayed form): nothing is sold,
    ///   [`Purchase::Existing`].
    /// - Any item cannot be sold: nothing is written, [`DbError::PurchaseFailed`].
    /// - The statements do not finish within the transaction timeout: abandoned before the
    ///   commit, [`DbError::TimedOut`].
    /// - The COMMIT fails or does not answer: the outcome is unknown, so the order is looked
    ///   up on another connection: found ⇒ [`Purchase::New`], absent ⇒ the purchase did not
    ///   happen ([`DbError::Unavailable`]), lookup impossible ⇒ [`DbError::CommitUnknown`].
    pub async fn purchase_order(
        &self,
        key: &str,
        item_ids: &[ItemId],
    ) -> Result<Purchase, DbError> {
        let result = self.purchase_order_once(key, item_ids).await;
        self.note_write(result)
    }

    async fn purchase_order_once(
        &self,
        key: &str,
        item_ids: &[ItemId],
    ) -> Result<Purchase, DbError> {
        self.check_file()?;
        let bound = self.transaction_timeout;
        let timed_out = |action: &str| DbError::TimedOut {
            action: format!("{action} order {key}"),
            after: bound,
        };
        let err = |action: &str, e| DbError::from_sqlx(format!("{action} {item_ids:?}"), e);
        let encoded = encode_item_ids(item_ids);
        // The statements, up to (not including) the commit.
        macro_rules! write_order {
            ($tx:ident) => {{
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO orders (idempotency_key, item_ids) VALUES ($1, $2) \
                     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                )
                .bind(key)
                .bind(&encoded)
                .fetch_optional(&mut *$tx)
                .await
                .map_err(|e| err("recording the order of", e))?;
                let Some(id) = inserted else {
                    return Ok(None);
                };
                for &item_id in item_ids {
                    let changed = sqlx::query(SELL_ONE)
                        .bind(item_id)
                        .execute(&mut *$tx)
                        .await
                        .map_err(|e| err("selling the items of the cart", e))?
                        .rows_affected();
                    if changed != 1 {
                        return Err(DbError::PurchaseFailed {
                            item_ids: item_ids.to_vec(),
                            failed_item_id: item_id,
                        });
                    }
                }
                Ok(Some(id))
            }};
        }
        macro_rules! run {
            ($tx:ident) => {{
                let written: Result<Option<i64>, DbError> =
                    match tokio::time::timeout(bound, async { write_order!($tx) }).await {
                        Ok(written) => written,
                        Err(_) => Err(timed_out("writing")),
                    };
                match written {
                    Ok(Some(id)) => {
                        match tokio::time::timeout(bound, $tx.commit()).await {
                            Ok(Ok(())) => Ok(Purchase::New(Order {
                                id,
                                key: key.to_owned(),
                                item_ids: item_ids.to_vec(),
                            })),
                            Ok(Err(e)) => self.confirm_after_lost_commit(key, e.to_string()).await,
                            Err(_) => {
                                self.confirm_after_lost_commit(
                                    key,
                                    format!("no answer within {} ms", bound.as_millis()),
                                )
                                .await
                            }
                        }
                    }
                    Ok(None) => {
                        // Replayed: the existing order, written by an earlier request.
                        drop($tx);
                        match self.find_order(key).await? {
                            Some(order) => Ok(Purchase::Existing(order)),
                            None => Err(DbError::Query {
                                action: format!("reading back order {key}"),
                                cause: sqlx::Error::RowNotFound,
                            }),
                        }
                    }
                    Err(e) => {
                        // Dropping the transaction would roll back too; do it explicitly
                        // (bounded) so the connection goes back to the pool clean.
                        if let Ok(Err(rollback)) =
                            tokio::time::timeout(bound, $tx.rollback()).await
                        {
                            tracing::warn!(error = %rollback, ?item_ids, "rollback of a failed purchase");
                        }
                        Err(e)
                    }
                }
            }};
        }
        let begin = |e| err("starting the purchase of", e);
        match &self.pool {
            Pool::Sqlite(pool) => {
                // Take the write lock up front so concurrent purchases queue on the busy
                // timeout instead of failing to upgrade a read transaction.
                let mut tx = tokio::time::timeout(bound, pool.begin_with("BEGIN IMMEDIATE"))
                    .await
                    .map_err(|_| timed_out("starting"))?
                    .map_err(begin)?;
                run!(tx)
            }
            Pool::Postgres(pool) => {
                let mut tx = tokio::time::timeout(bound, pool.begin())
                    .await
                    .map_err(|_| timed_out("starting"))?
                    .map_err(begin)?;
                run!(tx)
            }
        }
    }

    /// The COMMIT of order `key` failed with `cause` or did not answer: looks the order up on
    /// another connection, a few times within the transaction timeout.
    async fn confirm_after_lost_commit(
        &self,
        key: &str,
        cause: String,
    ) -> Result<Purchase, DbError> {
        tracing::warn!(order = key, %cause, "a purchase's commit got no answer; looking the order up");
        let deadline = Instant::now() + self.transaction_timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.find_order(key)).await {
                Ok(Ok(Some(order))) => {
                    tracing::info!(order = key, id = order.id, "the lost commit had succeeded");
                    return Ok(Purchase::New(order));
                }
                Ok(Ok(None)) => {
                    return Err(DbError::Unavailable {
                        action: format!("committing order {key} (it was not written)"),
                        cause: sqlx::Error::Protocol(cause),
                    });
                }
                Ok(Err(_)) | Err(_) if Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Ok(Err(_)) | Err(_) => {
                    return Err(DbError::CommitUnknown {
                        key: key.to_owned(),
                        cause,
                    });
                }
            }
        }
    }

    /// The order with idempotency key `key`, if it exists.
    pub async fn find_order(&self, key: &str) -> Result<Option<Order>, DbError> {
        let row: Option<(i64, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, item_ids FROM orders WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(pool)
        .await)
        .map_err(|e| DbError::from_sqlx(format!("reading order {key}"), e))?;
        Ok(row.map(|(id, items)| Order {
            id,
            key: key.to_owned(),
            item_ids: decode_item_ids(&items),
        }))
    }

    /// [`Db::find_order`] bounded by the transaction timeout.
    pub async fn find_order_bounded(&self, key: &str) -> Result<Option<Order>, DbError> {
        tokio::time::timeout(self.transaction_timeout, self.find_order(key))
            .await
            .unwrap_or_else(|_| {
                Err(DbError::TimedOut {
                    action: format!("reading order {key}"),
                    after: self.transaction_timeout,
                })
            })
    }
}
