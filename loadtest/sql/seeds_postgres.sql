-- The seeds' design, as the PostgreSQL peer of the load test (issue 7): stock in a table, an
-- order placement as one PL/pgSQL procedure that locks the product row, checks the stock,
-- deducts it and inserts the order and its line; a trigger writes the inventory-log row.
-- Commits are durable (synchronous_commit = on, fsync = on: the defaults; the summary reports
-- both). Idempotent: every run executes it; each run's rows carry its own id prefix.

CREATE TABLE IF NOT EXISTS products (
    sku              text PRIMARY KEY,
    name             text    NOT NULL,
    unit_price_cents bigint  NOT NULL,
    stock            integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE IF NOT EXISTS orders (
    order_id    text PRIMARY KEY,
    customer_id text        NOT NULL,
    status      text        NOT NULL,
    total_cents bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS order_lines (
    order_id         text    NOT NULL REFERENCES orders,
    sku              text    NOT NULL REFERENCES products,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint  NOT NULL,
    PRIMARY KEY (order_id, sku)
);

CREATE TABLE IF NOT EXISTS inventory_log (
    id          bigserial PRIMARY KEY,
    sku         text        NOT NULL,
    delta       integer     NOT NULL,
    stock_after integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION log_stock_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inventory_log (sku, delta, stock_after) VALUES (NEW.sku, NEW.stock - OLD.stock, NEW.stock);
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER products_stock_log AFTER UPDATE OF stock ON products
    FOR EACH ROW WHEN (NEW.stock IS DISTINCT FROM OLD.stock) EXECUTE FUNCTION log_stock_change();

CREATE OR REPLACE PROCEDURE place_order(p_order_id text, p_customer_id text, p_sku text, p_quantity integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_stock integer;
    v_price bigint;
BEGIN
    SELECT stock, unit_price_cents INTO v_stock, v_price FROM products WHERE sku = p_sku FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown sku %', p_sku USING ERRCODE = 'no_data_found';
    END IF;
    IF v_stock < p_quantity THEN
        RAISE EXCEPTION 'insufficient stock for %: % available', p_sku, v_stock USING ERRCODE = 'raise_exception';
    END IF;
    UPDATE products SET stock = stock - p_quantity WHERE sku = p_sku;
    INSERT INTO orders (order_id, customer_id, status, total_cents)
        VALUES (p_order_id, p_customer_id, 'PAID', v_price * p_quantity);
    INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)
        VALUES (p_order_id, p_sku, p_quantity, v_price);
END $$;
