-- Trading records shipped from each instance's journals (fastmm.db.shipper). One row per journal record
-- in journal_records (the record itself), and one in the typed table of its kind (fastmm.db.rows).
-- Times are the journal's wall-clock nanoseconds (t_ns); t is the same as a timestamp for SQL.

CREATE TABLE instances (
    instance    text PRIMARY KEY,
    symbol      text NOT NULL,
    base_asset  text NOT NULL,
    tick_e8     bigint NOT NULL,      -- price tick, 1e-8 PYUSD
    lot_e8      bigint NOT NULL,      -- quantity lot, 1e-8 of the base asset
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The last journal sequence number shipped per instance and journal stream, written in the same
-- transaction as the rows it covers: a shipper killed at any point resumes after it.
CREATE TABLE ship_cursor (
    instance    text NOT NULL,
    stream      text NOT NULL,        -- quoter | hedger | supervisor (one journal file each)
    seq         bigint NOT NULL,
    shipped_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, stream)
);

CREATE TABLE journal_records (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, body jsonb NOT NULL,
    PRIMARY KEY (instance, stream, seq)
);

CREATE TABLE orders (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, cl_ord_id text, orig_cl_ord_id text, side smallint, price_ticks bigint,
    qty_lots bigint,
    PRIMARY KEY (instance, stream, seq)
);
CREATE INDEX orders_cl ON orders (instance, cl_ord_id);

CREATE TABLE order_events (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, cl_ord_id text, orig_cl_ord_id text, order_id text, price_ticks bigint,
    qty_lots bigint, reason text, text text,
    PRIMARY KEY (instance, stream, seq)
);

-- Executions: TrueX fills and the quoter's bookings of Kraken hedge fills. Each (venue, exec id) once
-- per instance, as the engine's recovery books it: a journalled repeat stays in journal_records only.
-- (Per instance: two engines on separate venue accounts or simulators may see the same exec ids.)
CREATE TABLE executions (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, venue text NOT NULL, exec_id text NOT NULL, cl_ord_id text, side smallint,
    px_ticks bigint, price_e8 bigint, qty_lots bigint, leaves_lots bigint, liquidity smallint,
    fee_e8 bigint,
    PRIMARY KEY (instance, stream, seq),
    UNIQUE (instance, venue, exec_id)
);
CREATE INDEX executions_t ON executions (instance, t_ns);

CREATE TABLE hedges (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, cl_ord_id text, hedge_id text, txid text, side smallint, volume_e8 bigint,
    price_e8 bigint, lots bigint, vol_exec_e8 bigint, fee_e8 bigint, status text, detail text,
    PRIMARY KEY (instance, stream, seq)
);

CREATE TABLE marks (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, fair_mid_e8 bigint,
    PRIMARY KEY (instance, stream, seq)
);
CREATE INDEX marks_t ON marks (instance, t_ns);

CREATE TABLE pnl_snapshots (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, position_lots bigint, realized_e8 bigint, unrealized_e8 bigint, fees_e8 bigint,
    fair_mid_e8 bigint,
    PRIMARY KEY (instance, stream, seq)
);
CREATE INDEX pnl_t ON pnl_snapshots (instance, t_ns);

-- Phases, FIX session events, risk events, recovery summaries and notes.
CREATE TABLE events (
    instance text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, t_ns bigint NOT NULL,
    kind text NOT NULL, source text, phase text, previous text, command text, detail text,
    PRIMARY KEY (instance, stream, seq)
);

CREATE FUNCTION ns_ts(bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_timestamp($1 / 1e9) $$;
