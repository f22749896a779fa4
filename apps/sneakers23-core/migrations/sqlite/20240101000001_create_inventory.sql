-- Inventory schema (spec §3.1) for SQLite.
-- item_availabilities.item_id is UNIQUE (spec §19.5): exactly one availability row per item.

CREATE TABLE products (
    id             INTEGER PRIMARY KEY,
    sku            TEXT    NOT NULL UNIQUE,
    "order"        INTEGER NOT NULL,
    brand          TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    color          TEXT    NOT NULL,
    price_usd      INTEGER NOT NULL,
    main_image_url TEXT    NOT NULL,
    released       BOOLEAN NOT NULL DEFAULT FALSE,
    inserted_at    TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    sku         TEXT    NOT NULL UNIQUE,
    size        TEXT    NOT NULL,
    product_id  INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    inserted_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX items_product_id_index ON items (product_id);

CREATE TABLE item_availabilities (
    id              INTEGER PRIMARY KEY,
    item_id         INTEGER NOT NULL UNIQUE REFERENCES items (id) ON DELETE CASCADE,
    available_count INTEGER NOT NULL CHECK (available_count >= 0),
    inserted_at     TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at      TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
