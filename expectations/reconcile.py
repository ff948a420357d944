"""Recompute every settlement line from the accepted events and the tariff, in DuckDB SQL alone.

An independent path to the money of SPEC §4: no settlement/fees.py, no Beam; HUGEINT integer
arithmetic in SQL. Any line that differs by one wei, or exists on one side only, is reported.

Range. DuckDB's HUGEINT is a signed 128-bit integer and raises (never wraps) on overflow. The
products are arranged so that no intermediate exceeds the money itself by much:
    cost(x)  = Σ_t u_t × (price_t // per) + (Σ_t u_t × (price_t % per)) // per
    share_p  = a × q_p + (b × q_p) // Q,  remainder (b × q_p) % Q,  where charge = a × Q + b
    fee_p    = s1 × bps + (s0 × bps) // 10000,                      where share = s1 × 10000 + s0
(each equal to its textbook form: the parts split off are exact multiples). Supported: every
cost(P+Q) < 2^127 wei (~1.7e38; amounts are DECIMAL(38,0) anyway), (P+Q) × per < 2^127 and
Q² < 2^127 (Q, the quantity of one key in one batch, below ~1.3e19). Beyond that, DuckDB stops
with an overflow error, which `reconcile_output` reports (exit 1) rather than a wrong number.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from expectations.outputs import batch_numbers, read_manifest, recorded_tariff
from settlement.errors import MeterrootError, UsageError
from settlement.tariff import Tariff
from sinks.catalog import check_output_dir, connect

LINE_KEY = ("batch", "epoch", "consumer", "contract", "provider", "unit")

RECOMPUTE_SQL = """
WITH usage AS (                       -- q_p: each provider's quantity of a key in a batch
    SELECT batch, epoch, consumer, contract, unit, provider, CAST(sum(quantity) AS HUGEINT) AS q
    FROM events
    GROUP BY batch, epoch, consumer, contract, unit, provider
),
batch_keys AS (                       -- Q: the key's quantity in the batch over all providers
    SELECT batch, epoch, consumer, contract, unit, sum(q) AS big_q
    FROM usage
    GROUP BY batch, epoch, consumer, contract, unit
),
with_prior AS (                       -- P: the key's quantity settled by earlier batches
    SELECT *, coalesce(sum(big_q) OVER (
               PARTITION BY epoch, consumer, contract, unit ORDER BY batch
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS prior
    FROM batch_keys
),
ruled AS (                            -- an exact contract beats "*"
    SELECT k.*, r.rule_id, r.per
    FROM with_prior k JOIN rules r ON r.unit = k.unit AND r.contract IN (k.contract, '*')
    QUALIFY row_number() OVER (PARTITION BY k.batch, k.epoch, k.consumer, k.contract, k.unit
                               ORDER BY r.contract = '*') = 1
),
tier_units AS (                       -- units of P and of P + Q falling in each tier
    SELECT k.batch, k.epoch, k.consumer, k.contract, k.unit, k.big_q, k.per,
           t.price_wei // k.per AS price_whole, t.price_wei % k.per AS price_part,
           greatest(least(k.prior + k.big_q, coalesce(t.up_to, k.prior + k.big_q)) - t.lower_bound, 0)
               AS units_after,
           greatest(least(k.prior, coalesce(t.up_to, k.prior)) - t.lower_bound, 0) AS units_before
    FROM ruled k JOIN tiers t USING (rule_id)
),
charges AS (                          -- charge = cost(P + Q) - cost(P), cost floored per key
    SELECT batch, epoch, consumer, contract, unit, big_q,
           (sum(units_after * price_whole) + sum(units_after * price_part) // any_value(per))
         - (sum(units_before * price_whole) + sum(units_before * price_part) // any_value(per)) AS charge
    FROM tier_units
    GROUP BY batch, epoch, consumer, contract, unit, big_q
),
floors AS (                           -- share_p = charge × q_p // Q, remainder (charge × q_p) mod Q
    SELECT u.batch, u.epoch, u.consumer, u.contract, u.unit, u.provider, u.q, c.charge,
           (c.charge // c.big_q) * u.q + ((c.charge % c.big_q) * u.q) // c.big_q AS share_floor,
           ((c.charge % c.big_q) * u.q) % c.big_q AS remainder
    FROM usage u JOIN charges c USING (batch, epoch, consumer, contract, unit)
),
ranked AS (                           -- leftover wei: largest remainder first, then lowercase address
    SELECT *,
           charge - sum(share_floor) OVER key_window AS leftover,
           row_number() OVER (key_window ORDER BY remainder DESC, lower(provider) ASC) AS place
    FROM floors
    WINDOW key_window AS (PARTITION BY batch, epoch, consumer, contract, unit)
),
shares AS (
    SELECT *, share_floor + CASE WHEN place <= leftover THEN 1 ELSE 0 END AS share FROM ranked
)
SELECT batch, epoch, consumer, contract, provider, unit, q AS quantity, share AS amount_wei,
       -- fee = share × bps // 10000 (floor), split so the product stays small
       (share // 10000) * $bps + ((share % 10000) * $bps) // 10000 AS protocol_fee_wei,
       share - ((share // 10000) * $bps + ((share % 10000) * $bps) // 10000) AS provider_wei
FROM shares
"""

DIFFERENCES_SQL = """
WITH recorded AS (
    SELECT batch, epoch, consumer, contract, provider, unit,
           CAST(quantity AS HUGEINT) AS quantity, CAST(amount_wei AS HUGEINT) AS amount_wei,
           CAST(protocol_fee_wei AS HUGEINT) AS protocol_fee_wei, CAST(provider_wei AS HUGEINT) AS provider_wei
    FROM settlement_lines WHERE batch IN (SELECT batch FROM compared)
),
expected AS (SELECT * FROM recomputed WHERE batch IN (SELECT batch FROM compared))
SELECT coalesce(r.batch, e.batch) AS batch, coalesce(r.epoch, e.epoch) AS epoch,
       coalesce(r.consumer, e.consumer) AS consumer, coalesce(r.contract, e.contract) AS contract,
       coalesce(r.provider, e.provider) AS provider, coalesce(r.unit, e.unit) AS unit,
       CASE WHEN r.batch IS NULL THEN 'line missing from settlement_lines'
            WHEN e.batch IS NULL THEN 'no such line from the events and tariff'
            ELSE 'values differ' END AS problem,
       r.quantity AS recorded_quantity, e.quantity AS expected_quantity,
       r.amount_wei AS recorded_amount_wei, e.amount_wei AS expected_amount_wei,
       r.protocol_fee_wei AS recorded_protocol_fee_wei, e.protocol_fee_wei AS expected_protocol_fee_wei,
       r.provider_wei AS recorded_provider_wei, e.provider_wei AS expected_provider_wei
FROM recorded r FULL OUTER JOIN expected e
  ON r.batch = e.batch AND r.epoch = e.epoch AND r.consumer = e.consumer
 AND r.contract = e.contract AND r.provider = e.provider AND r.unit = e.unit
WHERE r.batch IS NULL OR e.batch IS NULL
   OR r.quantity IS DISTINCT FROM e.quantity OR r.amount_wei IS DISTINCT FROM e.amount_wei
   OR r.protocol_fee_wei IS DISTINCT FROM e.protocol_fee_wei OR r.provider_wei IS DISTINCT FROM e.provider_wei
ORDER BY ALL
"""


class ReconcileLimit(MeterrootError):
    """A figure exceeds what the 128-bit SQL path can hold: nothing could be compared."""


@dataclass(frozen=True)
class ReconcileReport:
    """What `reconcile_output` compared and found."""
    compared_batches: tuple
    """Batches whose lines were recomputed and compared."""
    skipped_batches: dict
    """batch -> the tariff hash its manifest names, for batches priced with another tariff."""
    lines_compared: int
    """Recorded lines of the compared batches."""
    differences: list
    """One dict per differing line: key, problem, recorded_* and expected_* values (ints)."""
    tariff_hash: str

    @property
    def success(self) -> bool:
        return not self.differences


def load_tariff_tables(con: duckdb.DuckDBPyConnection, tariff: Tariff) -> None:
    """rules(rule_id, contract, unit, per) and tiers(rule_id, lower_bound, up_to, price_wei)."""
    con.execute("CREATE OR REPLACE TEMP TABLE rules (rule_id INTEGER, contract VARCHAR, unit VARCHAR, per HUGEINT)")
    con.execute("CREATE OR REPLACE TEMP TABLE tiers (rule_id INTEGER, lower_bound HUGEINT, up_to HUGEINT, "
                "price_wei HUGEINT)")
    rules, tiers = [], []
    for rule_id, rule in enumerate(tariff.prices):
        rules.append((rule_id, rule.contract, rule.unit, str(rule.per)))
        lower = 0
        for tier in rule.tiers:
            tiers.append((rule_id, str(lower), None if tier.up_to is None else str(tier.up_to), str(tier.price_wei)))
            lower = tier.up_to if tier.up_to is not None else lower
    try:
        con.executemany("INSERT INTO rules VALUES (?, ?, ?, CAST(? AS HUGEINT))", rules)
        con.executemany("INSERT INTO tiers VALUES (?, CAST(? AS HUGEINT), CAST(? AS HUGEINT), "
                        "CAST(? AS HUGEINT))", tiers)
    except duckdb.ConversionException as exc:
        raise ReconcileLimit(f"a tariff figure exceeds the 128-bit range reconcile supports: {exc}") from None


def _as_rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def reconcile_output(out_dir: Path, tariff: Path | None = None) -> ReconcileReport:
    """Recompute every line of every batch priced with `tariff` (default: the recorded one) and
    compare with OUT/settlement_lines. Raises UsageError when no batch was priced with it."""
    out_dir = check_output_dir(out_dir)
    prices = recorded_tariff(out_dir, tariff)
    batches = batch_numbers(out_dir)
    if not batches:
        raise UsageError(f"{out_dir} has no batch to reconcile (no batches/<B>/manifest.json)")
    skipped = {}
    for batch in batches:
        named = read_manifest(out_dir, batch).get("tariff_hash")
        if named is not None and named != prices.hash:
            skipped[batch] = named
    compared = [b for b in batches if b not in skipped]
    if not compared:
        raise UsageError(f"no batch of {out_dir} was priced with tariff {prices.hash} "
                         f"(the manifests name {sorted(set(skipped.values()))}); pass --tariff with the "
                         "tariff the batches were priced with")
    con = connect(out_dir)
    try:
        load_tariff_tables(con, prices)
        con.execute("CREATE TEMP TABLE compared AS SELECT unnest($batches) AS batch", {"batches": compared})
        con.execute(f"CREATE TEMP TABLE recomputed AS {RECOMPUTE_SQL}", {"bps": prices.protocol_fee_bps})
        differences = _as_rows(con, DIFFERENCES_SQL)
        lines = con.execute("SELECT count(*) FROM settlement_lines WHERE batch IN (SELECT batch FROM compared)"
                            ).fetchone()[0]
    except duckdb.OutOfRangeException as exc:
        raise ReconcileLimit(f"a figure of {out_dir} exceeds the 128-bit range reconcile supports "
                             f"(cost(P+Q), (P+Q) x per and Q^2 must stay below 2^127): {exc}") from None
    except duckdb.Error as exc:
        raise UsageError(f"cannot read the outputs of {out_dir}: {exc}") from None
    finally:
        con.close()
    return ReconcileReport(tuple(compared), skipped, lines, differences, prices.hash)
