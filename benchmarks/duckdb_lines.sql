-- Settlement lines of one batch (SPEC §4) in DuckDB SQL alone: the benchmark's yardstick.
-- Parameters are spliced in by bench_batch.py: {reader} (read_json or read_parquet of the input
-- file), {epoch_ms}, {fee_bps}, and a `tiers`
-- table (unit, per, lo, hi, price_wei) registered from the tariff (contract "*" rules only).
WITH raw AS (
  SELECT * FROM {reader}
),
events AS (  -- one copy per (provider, event_id)
  SELECT DISTINCT ON (lower(provider), event_id) lower(provider) AS provider, event_id,
         lower(consumer) AS consumer, lower(contract) AS contract, unit, quantity,
         timestamp // {epoch_ms} AS epoch
  FROM raw
),
usage AS (
  SELECT epoch, consumer, contract, unit, provider, sum(quantity)::HUGEINT AS q
  FROM events GROUP BY ALL
),
keyed AS (
  SELECT epoch, consumer, contract, unit, sum(q)::HUGEINT AS total_q FROM usage GROUP BY ALL
),
charged AS (
  SELECT k.epoch, k.consumer, k.contract, k.unit, k.total_q,
         (sum(greatest(0, least(k.total_q, coalesce(t.hi, k.total_q)) - t.lo)::HUGEINT
              * t.price_wei::HUGEINT) // any_value(t.per))::HUGEINT AS charge
  FROM keyed k JOIN tiers t USING (unit)
  GROUP BY ALL
),
shares AS (
  SELECT u.*, c.charge, c.total_q,
         (c.charge * u.q) // c.total_q AS floor_share,
         (c.charge * u.q) % c.total_q AS remainder
  FROM usage u JOIN charged c USING (epoch, consumer, contract, unit)
),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY epoch, consumer, contract, unit
                               ORDER BY remainder DESC, provider) AS rank,
         charge - sum(floor_share) OVER (PARTITION BY epoch, consumer, contract, unit) AS leftover
  FROM shares
)
SELECT epoch, consumer, contract, provider, unit, q AS quantity,
       (floor_share + CASE WHEN rank <= leftover THEN 1 ELSE 0 END)::HUGEINT AS amount_wei,
       ((floor_share + CASE WHEN rank <= leftover THEN 1 ELSE 0 END) * {fee_bps} // 10000)::HUGEINT
         AS protocol_fee_wei
FROM ranked
