-- Orders: one row per purchase, written in the same transaction as the stock it takes.
-- idempotency_key comes from the checkout form, so a replayed POST finds the existing order.
CREATE TABLE orders (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    item_ids        TEXT    NOT NULL,
    inserted_at     TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- One row that /health rewrites to prove that writes still work.
CREATE TABLE health_probe (
    id         INTEGER PRIMARY KEY,
    checked_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO health_probe (id) VALUES (1);
