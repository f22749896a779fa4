//! Seed data (spec §4): the two shoes of the book, 13 sizes each, random availability.
//!
//! On fresh tables the ids are fixed: product 1 "Hop Man 3" with items 1–13 (sizes 6 … 12) and
//! product 2 "Breezy Boost 600" with items 14–26. Each item has, with probability 10 %, no stock
//! at all, otherwise a uniform count in 201…1200, so initial levels are only `out`, `medium` or
//! `high`. Both products start unreleased. A fixed RNG seed reproduces the same counts.
//!
//! ```
//! let catalog = sneakers23_core::seed::catalog(Some(42));
//! assert_eq!(catalog.len(), 2);
//! assert_eq!(catalog[0].items[0].sku, "SHU6001");
//! assert_eq!(catalog, sneakers23_core::seed::catalog(Some(42)));
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::db::{Db, DbError, InsertedProduct};
use crate::model::{NewItem, NewProduct};

/// The 13 sizes of every seeded product, ascending.
pub const SIZES: [&str; 13] = [
    "6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "11.5", "12",
];

/// Probability that a seeded item starts sold out.
pub const SOLD_OUT_PROBABILITY: f64 = 0.1;

/// Range of the initial count of an item that is not sold out.
pub const COUNT_RANGE: std::ops::RangeInclusive<i32> = 201..=1200;

/// The seed catalog. `rng_seed` makes the availability reproducible; `None` draws from the OS.
pub fn catalog(rng_seed: Option<u64>) -> Vec<NewProduct> {
    let mut rng = match rng_seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let mut product = |sku_base: u32,
                       order: i32,
                       brand: &str,
                       name: &str,
                       color: &str,
                       price_usd: i32,
                       image: &str| NewProduct {
        sku: format!("SHU{sku_base}"),
        order,
        brand: brand.into(),
        name: name.into(),
        color: color.into(),
        price_usd,
        main_image_url: image.into(),
        released: false,
        items: (1u32..)
            .zip(SIZES)
            .map(|(n, size)| NewItem {
                sku: format!("SHU{}", sku_base + n),
                size: size.into(),
                available_count: Some(random_count(&mut rng)),
            })
            .collect(),
    };
    vec![
        product(
            6000,
            0,
            "Snks 23",
            "Hop Man 3",
            "yellow/blue",
            120,
            "/images/hopman.png",
        ),
        product(
            6100,
            1,
            "Asler",
            "Breezy Boost 600",
            "momentum",
            140,
            "/images/breezy.png",
        ),
    ]
}

fn random_count(rng: &mut impl Rng) -> i32 {
    if rng.random_bool(SOLD_OUT_PROBABILITY) {
        0
    } else {
        rng.random_range(COUNT_RANGE)
    }
}

/// Inserts the seed catalog in one transaction. Refuses a database that already has products
/// ([`DbError::NotEmpty`]): run [`Db::reset`] first.
pub async fn seed(db: &Db, rng_seed: Option<u64>) -> Result<Vec<InsertedProduct>, DbError> {
    let products = db.count_products().await?;
    if products > 0 {
        return Err(DbError::NotEmpty { products });
    }
    db.insert_catalog(&catalog(rng_seed)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_matches_the_spec_table() {
        let c = catalog(Some(1));
        let summary: Vec<_> = c
            .iter()
            .map(|p| {
                (
                    p.sku.as_str(),
                    p.order,
                    p.brand.as_str(),
                    p.name.as_str(),
                    p.color.as_str(),
                    p.price_usd,
                    p.main_image_url.as_str(),
                    p.released,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "SHU6000",
                    0,
                    "Snks 23",
                    "Hop Man 3",
                    "yellow/blue",
                    120,
                    "/images/hopman.png",
                    false
                ),
                (
                    "SHU6100",
                    1,
                    "Asler",
                    "Breezy Boost 600",
                    "momentum",
                    140,
                    "/images/breezy.png",
                    false
                ),
            ]
        );
        let skus: Vec<_> = c[1].items.iter().map(|i| i.sku.as_str()).collect();
        assert_eq!(skus.first(), Some(&"SHU6101"));
        assert_eq!(skus.last(), Some(&"SHU6113"));
        for p in &c {
            let sizes: Vec<_> = p.items.iter().map(|i| i.size.as_str()).collect();
            assert_eq!(sizes, SIZES);
        }
    }

    #[test]
    fn counts_are_zero_or_in_range_and_roughly_ten_percent_zero() {
        let mut zeros = 0;
        let mut total = 0;
        for seed in 0..200 {
            for item in catalog(Some(seed)).iter().flat_map(|p| &p.items) {
                let count = item.available_count.unwrap_or(-1);
                assert!(count == 0 || COUNT_RANGE.contains(&count), "{count}");
                zeros += usize::from(count == 0);
                total += 1;
            }
        }
        // 5200 draws at p = 0.1: mean 520, standard deviation ≈ 22.
        assert!((420..=620).contains(&zeros), "{zeros} of {total} sold out");
    }

    #[test]
    fn a_seed_reproduces_the_counts() {
        assert_eq!(catalog(Some(7)), catalog(Some(7)));
        assert_ne!(catalog(Some(7)), catalog(Some(8)));
    }
}
