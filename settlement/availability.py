"""Availability per (provider, epoch) (SPEC §14), in SQL over Arrow tables of probes.

  availability_bps = ok probes × 10000 // probes        (floor: a provider is never rounded up)
  latency_p50_ms, latency_p99_ms: nearest-rank percentiles of the latencies of the ok probes,
      the value at rank ceil(n × p / 100) of the n sorted latencies; null when no probe was ok
      (a failed probe's latency is how long the prober waited, not how fast the service is).

A batch reports the (provider, epoch) pairs its own probes touch, computed over every probe of
that pair settled so far (this batch's and earlier ones'), so a late probe revises its epoch's
figure in the batch that settles it, and the latest batch's row is the one that counts.
"""
from __future__ import annotations

import pyarrow as pa

from settlement import duck

AVAILABILITY_SCHEMA = pa.schema([
    ("batch", pa.int64()), ("provider", pa.string()), ("epoch", pa.int64()),
    ("probes", pa.int64()), ("ok_probes", pa.int64()), ("availability_bps", pa.int64()),
    ("latency_p50_ms", pa.int64()), ("latency_p99_ms", pa.int64()), ("probers", pa.int64()),
    ("first_probe_ms", pa.int64()), ("last_probe_ms", pa.int64()),
])
"""One row per (batch, provider, epoch) the batch's probes touch."""

BPS = 10_000

AVAILABILITY_SQL = """
WITH touched AS (SELECT DISTINCT provider, epoch FROM new_probes),
     probes AS (
         SELECT provider, epoch, prober, ok, latency_ms, timestamp_ms FROM new_probes
         UNION ALL
         SELECT s.provider, s.epoch, s.prober, s.ok, s.latency_ms, s.timestamp_ms
         FROM settled_probes s JOIN touched t USING (provider, epoch)),
     per_epoch AS (
         SELECT provider, epoch,
                count(*) AS probes,
                count(*) FILTER (WHERE ok) AS ok_probes,
                list_sort(list(latency_ms) FILTER (WHERE ok)) AS ok_latencies,
                count(DISTINCT prober) AS probers,
                min(timestamp_ms) AS first_probe_ms,
                max(timestamp_ms) AS last_probe_ms
         FROM probes GROUP BY provider, epoch)
SELECT CAST($batch AS BIGINT) AS batch, provider, CAST(epoch AS BIGINT) AS epoch,
       CAST(probes AS BIGINT) AS probes, CAST(ok_probes AS BIGINT) AS ok_probes,
       CAST(ok_probes * $bps // probes AS BIGINT) AS availability_bps,
       CAST(CASE WHEN ok_probes > 0 THEN ok_latencies[(ok_probes * 50 + 99) // 100] END AS BIGINT)
           AS latency_p50_ms,
       CAST(CASE WHEN ok_probes > 0 THEN ok_latencies[(ok_probes * 99 + 99) // 100] END AS BIGINT)
           AS latency_p99_ms,
       CAST(probers AS BIGINT) AS probers,
       CAST(first_probe_ms AS BIGINT) AS first_probe_ms, CAST(last_probe_ms AS BIGINT) AS last_probe_ms
FROM per_epoch
ORDER BY provider, epoch
"""

_PROBE_COLUMNS = ("provider", "epoch", "prober", "ok", "latency_ms", "timestamp_ms")


def availability_per_epoch(new_probes: pa.Table, settled_probes: pa.Table | None, batch: int) -> pa.Table:
    """AVAILABILITY_SCHEMA rows for the (provider, epoch) pairs of `new_probes`, over those and
    the `settled_probes` of earlier batches (both with at least _PROBE_COLUMNS)."""
    new = new_probes.select(list(_PROBE_COLUMNS))
    settled = (settled_probes.select(list(_PROBE_COLUMNS)) if settled_probes is not None
               else new.schema.empty_table())
    if new.num_rows == 0:
        return AVAILABILITY_SCHEMA.empty_table()
    table = duck.query(AVAILABILITY_SQL, {"new_probes": new, "settled_probes": settled},
                       params={"batch": batch, "bps": BPS})
    return table.cast(AVAILABILITY_SCHEMA)


def nearest_rank(sorted_values: list[int], percent: int) -> int | None:
    """The reference of the SQL above, for one sorted list: the value at rank ceil(n×p/100)."""
    if not sorted_values:
        return None
    return sorted_values[(len(sorted_values) * percent + 99) // 100 - 1]
