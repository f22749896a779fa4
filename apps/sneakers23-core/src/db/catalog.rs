//! The catalogue: products, their items and the items' availabilities — inserted all at once by
//! the seed, loaded whole into the inventory cache, read one at a time, and released.

use crate::model::{Availability, Item, ItemId, NewProduct, Product, ProductId};

use super::error::DbError;
use super::records::InsertedProduct;
use super::{Db, on_pool};

type ProductRow = (i64, String, i32, String, String, String, i32, String, bool);

fn product_from_row(r: ProductRow) -> Product {
    let (id, sku, order, brand, name, color, price_usd, main_image_url, released) = r;
    Product {
        id,
        sku,
        order,
        brand,
        name,
        color,
        price_usd,
        main_image_url,
        released,
    }
}

const SELECT_PRODUCT: &str = "SELECT id, sku, \"order\", brand, name, color, price_usd, \
     main_image_url, released FROM products";

impl Db {
    /// Number of products stored.
    pub async fn count_products(&self) -> Result<i64, DbError> {
        on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM products")
            .fetch_one(pool)
            .await)
        .map_err(|e| DbError::from_sqlx("counting products".into(), e))
    }

    /// Inserts products with their items and availabilities in one transaction (all or
    /// nothing). Returns the ids assigned, in the order given.
    pub async fn insert_catalog(
        &self,
        products: &[NewProduct],
    ) -> Result<Vec<InsertedProduct>, DbError> {
        let err = |e| DbError::from_sqlx("inserting the catalog".into(), e);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(err)?;
            let mut inserted = Vec::with_capacity(products.len());
            for p in products {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO products \
                     (sku, \"order\", brand, name, color, price_usd, main_image_url, released) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(&p.sku)
                .bind(p.order)
                .bind(&p.brand)
                .bind(&p.name)
                .bind(&p.color)
                .bind(p.price_usd)
                .bind(&p.main_image_url)
                .bind(p.released)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| DbError::from_sqlx(format!("inserting product {}", p.sku), e))?;
                let mut item_ids = Vec::with_capacity(p.items.len());
                for item in &p.items {
                    let item_id: i64 = sqlx::query_scalar(
                        "INSERT INTO items (sku, size, product_id) VALUES ($1, $2, $3) \
                         RETURNING id",
                    )
                    .bind(&item.sku)
                    .bind(&item.size)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| DbError::from_sqlx(format!("inserting item {}", item.sku), e))?;
                    if let Some(count) = item.available_count {
                        sqlx::query(
                            "INSERT INTO item_availabilities (item_id, available_count) \
                             VALUES ($1, $2)",
                        )
                        .bind(item_id)
                        .bind(count)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            DbError::from_sqlx(
                                format!("inserting availability {count} of item {}", item.sku),
                                e,
                            )
                        })?;
                    }
                    item_ids.push(item_id);
                }
                inserted.push(InsertedProduct { id, item_ids });
            }
            tx.commit().await.map_err(err)?;
            Ok(inserted)
        })
    }

    /// All products, ordered by display order then id.
    pub async fn load_products(&self) -> Result<Vec<Product>, DbError> {
        let sql = format!("{SELECT_PRODUCT} ORDER BY \"order\", id");
        let rows: Vec<ProductRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)
                .map_err(|e| DbError::from_sqlx("loading products".into(), e))?;
        Ok(rows.into_iter().map(product_from_row).collect())
    }

    /// All items, ordered by id.
    pub async fn load_items(&self) -> Result<Vec<Item>, DbError> {
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, sku, size, product_id FROM items ORDER BY id",
        )
        .fetch_all(pool)
        .await)
        .map_err(|e| DbError::from_sqlx("loading items".into(), e))?;
        Ok(rows
            .into_iter()
            .map(|(id, sku, size, product_id)| Item {
                id,
                sku,
                size,
                product_id,
            })
            .collect())
    }

    /// All availability rows, ordered by item id.
    pub async fn load_availabilities(&self) -> Result<Vec<Availability>, DbError> {
        let rows: Vec<(i64, i32)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT item_id, available_count FROM item_availabilities ORDER BY item_id",
        )
        .fetch_all(pool)
        .await)
        .map_err(|e| DbError::from_sqlx("loading item availabilities".into(), e))?;
        Ok(rows
            .into_iter()
            .map(|(item_id, available_count)| Availability {
                item_id,
                available_count,
            })
            .collect())
    }

    /// One product, if it exists.
    pub async fn get_product(&self, product_id: ProductId) -> Result<Option<Product>, DbError> {
        let sql = format!("{SELECT_PRODUCT} WHERE id = $1");
        let row: Option<ProductRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(product_id)
            .fetch_optional(pool)
            .await)
        .map_err(|e| DbError::from_sqlx(format!("reading product {product_id}"), e))?;
        Ok(row.map(product_from_row))
    }

    /// The availability row of one item, if it has one.
    pub async fn get_availability(&self, item_id: ItemId) -> Result<Option<Availability>, DbError> {
        let count: Option<i32> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT available_count FROM item_availabilities WHERE item_id = $1",
        )
        .bind(item_id)
        .fetch_optional(pool)
        .await)
        .map_err(|e| {
            DbError::from_sqlx(format!("reading the availability of item {item_id}"), e)
        })?;
        Ok(count.map(|available_count| Availability {
            item_id,
            available_count,
        }))
    }

    /// Marks a product released (idempotent). Fails with [`DbError::ProductNotFound`] for an
    /// unknown id.
    pub async fn mark_product_released(&self, product_id: ProductId) -> Result<(), DbError> {
        let result = on_pool!(self, pool => sqlx::query(
            "UPDATE products SET released = TRUE, updated_at = CURRENT_TIMESTAMP WHERE id = $1",
        )
        .bind(product_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| DbError::from_sqlx(format!("releasing product {product_id}"), e));
        let result = self.note_write(result)?;
        if result == 0 {
            return Err(DbError::ProductNotFound { product_id });
        }
        Ok(())
    }
}
