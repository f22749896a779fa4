-- Inventory schema (spec §3.1) for PostgreSQL.
-- item_availabilities.item_id is UNIQUE (spec §19.5): exactly one availability row per item.

CREATE TABLE products (
    id             BIGSERIAL PRIMARY KEY,
    sku            TEXT      NOT NULL UNIQUE,
    "order"        INTEGER   NOT NULL,
    brand          TEXT      NOT NULL,
    name           TEXT      NOT NULL,
    color          TEXT      NOT NULL,
    price_usd      INTEGER   NOT NULL,
    main_image_url TEXT      NOT NULL,
    released       BOOLEAN   NOT NULL DEFAULT FALSE,
    inserted_at    TIMESTAMP NOT NULL DEFAULT now(),
    updated_at     TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE items (
    id          BIGSERIAL PRIMARY KEY,
    sku         TEXT      NOT NULL UNIQUE,
    size        TEXT      NOT NULL,
    product_id  BIGINT    NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    inserted_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at  TIMESTAMP NOT NULL DEFAULT now()
);

CREATE INDEX items_product_id_index ON items (product_id);

CREATE TABLE item_availabilities (
    id              BIGSERIAL PRIMARY KEY,
    item_id         BIGINT    NOT NULL UNIQUE REFERENCES items (id) ON DELETE CASCADE,
    available_count INTEGER   NOT NULL CHECK (available_count >= 0),
    inserted_at     TIMESTAMP NOT NULL DEFAULT now(),
    updated_at      TIMESTAMP NOT NULL DEFAULT now()
);
