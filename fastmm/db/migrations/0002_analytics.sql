-- Analytics over the shipped records (fastmm report --db draws from these). Money in 1e-8 PYUSD
-- (*_e8) as in the tables; bps and ms are numeric. Sides: 1 buy, 2 sell.

-- Every TrueX fill with the fair mid the quoter had marked at or before it (the journal's "mark"
-- records, at most once a second) and its distance from that mid in ticks ("level_ticks": the ladder
-- quotes level n about n * level_spacing_ticks plus the half spread from the mid).
CREATE VIEW fills_marked AS
SELECT e.instance, e.seq, e.t_ns, ns_ts(e.t_ns) AS t, e.exec_id, e.cl_ord_id, e.side, e.price_e8, e.qty_lots,
       e.qty_lots * i.lot_e8 AS qty_e8, e.fee_e8, e.liquidity, m.fair_mid_e8 AS mid_e8,
       CASE WHEN e.side = 1 THEN 1 ELSE -1 END AS sign,
       round(abs(m.fair_mid_e8 - e.price_e8)::numeric / i.tick_e8)::bigint AS level_ticks
FROM executions e
JOIN instances i USING (instance)
LEFT JOIN LATERAL (SELECT fair_mid_e8 FROM marks k WHERE k.instance = e.instance AND k.t_ns <= e.t_ns
                   ORDER BY k.t_ns DESC LIMIT 1) m ON true
WHERE e.venue = 'truex';

-- PnL per instance and hour / day from the quoter's PnL snapshots: the last snapshot in the bucket and
-- the change since the last snapshot of the bucket before.
CREATE VIEW pnl_snapshots_total AS
SELECT instance, t_ns, ns_ts(t_ns) AS t, position_lots, realized_e8, unrealized_e8, fees_e8,
       realized_e8 + unrealized_e8 - fees_e8 AS total_e8
FROM pnl_snapshots;

CREATE VIEW pnl_hourly AS
SELECT instance, bucket, total_e8, position_lots, snapshots,
       total_e8 - coalesce(lag(total_e8) OVER (PARTITION BY instance ORDER BY bucket), 0) AS change_e8
FROM (SELECT instance, date_trunc('hour', t) AS bucket,
             (array_agg(total_e8 ORDER BY t_ns DESC))[1] AS total_e8,
             (array_agg(position_lots ORDER BY t_ns DESC))[1] AS position_lots, count(*) AS snapshots
      FROM pnl_snapshots_total GROUP BY 1, 2) b;

CREATE VIEW pnl_daily AS
SELECT instance, bucket, total_e8, position_lots, snapshots,
       total_e8 - coalesce(lag(total_e8) OVER (PARTITION BY instance ORDER BY bucket), 0) AS change_e8
FROM (SELECT instance, date_trunc('day', t) AS bucket,
             (array_agg(total_e8 ORDER BY t_ns DESC))[1] AS total_e8,
             (array_agg(position_lots ORDER BY t_ns DESC))[1] AS position_lots, count(*) AS snapshots
      FROM pnl_snapshots_total GROUP BY 1, 2) b;

-- Spread capture (against the mid at the fill) and markouts (against the mid 1 s, 5 s and 60 s later)
-- per fill, in 1e-8 PYUSD for the fill's size and in bps of its price.
CREATE VIEW fill_markouts AS
SELECT f.*,
       round(f.sign * (f.mid_e8 - f.price_e8) * f.qty_e8 / 1e8)::bigint AS capture_e8,
       f.sign * (f.mid_e8 - f.price_e8) * 1e4 / f.price_e8 AS capture_bps,
       round(f.sign * (m1.mid - f.price_e8) * f.qty_e8 / 1e8)::bigint AS markout_1s_e8,
       round(f.sign * (m5.mid - f.price_e8) * f.qty_e8 / 1e8)::bigint AS markout_5s_e8,
       round(f.sign * (m60.mid - f.price_e8) * f.qty_e8 / 1e8)::bigint AS markout_60s_e8,
       f.sign * (m1.mid - f.price_e8) * 1e4 / f.price_e8 AS markout_1s_bps,
       f.sign * (m5.mid - f.price_e8) * 1e4 / f.price_e8 AS markout_5s_bps,
       f.sign * (m60.mid - f.price_e8) * 1e4 / f.price_e8 AS markout_60s_bps
FROM fills_marked f
LEFT JOIN LATERAL (SELECT fair_mid_e8 AS mid FROM marks k WHERE k.instance = f.instance
                   AND k.t_ns <= f.t_ns + 1000000000 ORDER BY k.t_ns DESC LIMIT 1) m1 ON true
LEFT JOIN LATERAL (SELECT fair_mid_e8 AS mid FROM marks k WHERE k.instance = f.instance
                   AND k.t_ns <= f.t_ns + 5000000000 ORDER BY k.t_ns DESC LIMIT 1) m5 ON true
LEFT JOIN LATERAL (SELECT fair_mid_e8 AS mid FROM marks k WHERE k.instance = f.instance
                   AND k.t_ns <= f.t_ns + 60000000000 ORDER BY k.t_ns DESC LIMIT 1) m60 ON true;

CREATE VIEW markouts_by_level AS
SELECT instance, level_ticks, count(*) AS fills, sum(qty_lots) AS qty_lots, sum(capture_e8) AS capture_e8,
       avg(capture_bps) AS capture_bps, sum(markout_1s_e8) AS markout_1s_e8,
       sum(markout_5s_e8) AS markout_5s_e8, sum(markout_60s_e8) AS markout_60s_e8,
       avg(markout_1s_bps) AS markout_1s_bps, avg(markout_5s_bps) AS markout_5s_bps,
       avg(markout_60s_bps) AS markout_60s_bps
FROM fill_markouts GROUP BY instance, level_ticks;

-- Fill ratio per instance and hour: orders placed (new and replace), fills, lots quoted and filled.
CREATE VIEW fill_ratio AS
WITH o AS (SELECT instance, date_trunc('hour', ns_ts(t_ns)) AS bucket, count(*) AS orders,
                  sum(qty_lots) AS quoted_lots
           FROM orders WHERE kind IN ('order', 'replace') GROUP BY 1, 2),
     f AS (SELECT instance, date_trunc('hour', ns_ts(t_ns)) AS bucket, count(*) AS fills,
                  sum(qty_lots) AS filled_lots
           FROM executions WHERE venue = 'truex' GROUP BY 1, 2)
SELECT instance, bucket, coalesce(o.orders, 0) AS orders, coalesce(f.fills, 0) AS fills,
       coalesce(o.quoted_lots, 0) AS quoted_lots, coalesce(f.filled_lots, 0) AS filled_lots,
       f.fills::numeric / nullif(o.orders, 0) AS fill_ratio,
       f.filled_lots::numeric / nullif(o.quoted_lots, 0) AS qty_fill_ratio
FROM o FULL JOIN f USING (instance, bucket);

-- Order to fill: from the order (or replace) that carried the ClOrdID to each of its fills.
CREATE VIEW order_to_fill AS
SELECT e.instance, e.exec_id, e.cl_ord_id, o.kind AS order_kind, e.t_ns,
       (e.t_ns - o.t_ns) / 1e6 AS latency_ms
FROM executions e
JOIN orders o ON o.instance = e.instance AND o.cl_ord_id = e.cl_ord_id AND o.kind IN ('order', 'replace')
WHERE e.venue = 'truex';

CREATE VIEW order_to_fill_summary AS
SELECT instance, count(*) AS fills,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms,
       max(latency_ms) AS max_ms
FROM order_to_fill GROUP BY instance;

-- OHLC candles of the fair mid from the marks.
CREATE VIEW candles_1s AS
SELECT instance, to_timestamp(t_ns / 1000000000) AS bucket,
       (array_agg(fair_mid_e8 ORDER BY t_ns))[1] AS open_e8, max(fair_mid_e8) AS high_e8,
       min(fair_mid_e8) AS low_e8, (array_agg(fair_mid_e8 ORDER BY t_ns DESC))[1] AS close_e8,
       count(*) AS marks
FROM marks GROUP BY instance, t_ns / 1000000000;

CREATE VIEW candles_1m AS
SELECT instance, to_timestamp(t_ns / 60000000000 * 60) AS bucket,
       (array_agg(fair_mid_e8 ORDER BY t_ns))[1] AS open_e8, max(fair_mid_e8) AS high_e8,
       min(fair_mid_e8) AS low_e8, (array_agg(fair_mid_e8 ORDER BY t_ns DESC))[1] AS close_e8,
       count(*) AS marks
FROM marks GROUP BY instance, t_ns / 60000000000;
