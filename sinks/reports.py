"""Named reports over the catalog views, and exact rendering of query results.

Numbers print exactly: DuckDB returns HUGEINT as int and DECIMAL as Decimal; neither goes
through float on the way to a table, CSV or JSON.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import duckdb

from settlement.addresses import AddressError, normalize_address
from settlement.errors import InvalidInput, UsageError

REPORTS = ("consumer-bill", "provider-revenue", "quarantine-summary", "batch", "availability")
FORMATS = ("table", "csv", "json")

CONSUMER_BILL_SQL = """
SELECT CASE WHEN grouping(batch) = 1 THEN 'total'
            WHEN grouping(contract) = 1 THEN 'batch total' ELSE 'line' END AS level,
       batch, contract, unit,
       count(DISTINCT provider) AS providers,
       CAST(sum(quantity) AS DECIMAL(38,0)) AS quantity,
       CAST(sum(amount_wei) AS DECIMAL(38,0)) AS amount_wei,
       CAST(sum(protocol_fee_wei) AS DECIMAL(38,0)) AS protocol_fee_wei,
       CAST(sum(provider_wei) AS DECIMAL(38,0)) AS provider_wei
FROM settlement_lines
WHERE consumer = $consumer
GROUP BY GROUPING SETS ((batch, contract, unit), (batch), ())
HAVING count(*) > 0
ORDER BY batch NULLS LAST, contract NULLS LAST, unit NULLS LAST
"""

PROVIDER_REVENUE_SQL = """
SELECT provider,
       count(DISTINCT batch) AS batches,
       count(DISTINCT consumer) AS consumers,
       CAST(sum(quantity) AS DECIMAL(38,0)) AS quantity,
       CAST(sum(amount_wei) AS DECIMAL(38,0)) AS amount_wei,
       CAST(sum(protocol_fee_wei) AS DECIMAL(38,0)) AS protocol_fee_wei,
       CAST(sum(provider_wei) AS DECIMAL(38,0)) AS provider_wei
FROM settlement_lines
GROUP BY provider
ORDER BY provider_wei DESC, lower(provider)
"""

QUARANTINE_SUMMARY_SQL = """
SELECT batch, reason, count(*) AS records, count(DISTINCT source) AS sources,
       min(detail) AS example_detail
FROM quarantine
GROUP BY batch, reason
ORDER BY batch NULLS LAST, records DESC, reason
"""

BATCH_SQL = """
SELECT b.batch, b.root, b.leaf_count, b.total, b.protocol_fee_total, b.epochs,
       b."read", b.accepted, b.duplicates, b.quarantined,
       (SELECT count(*) FROM settlement_lines WHERE batch = $batch) AS lines,
       (SELECT count(DISTINCT consumer) FROM settlement_lines WHERE batch = $batch) AS consumers,
       (SELECT count(DISTINCT provider) FROM settlement_lines WHERE batch = $batch) AS providers,
       (SELECT CAST(coalesce(sum(amount_wei), 0) AS DECIMAL(38,0))
          FROM payables WHERE batch = $batch) AS payable_wei,
       b.tariff_version, b.tariff_hash,
       v.success AS validated, v.validated_at
FROM batches b LEFT JOIN validations v ON v.batch = b.batch
WHERE b.batch = $batch
"""

# The latest batch's figure of each (provider, epoch) counts: it covers every probe settled so far.
AVAILABILITY_LATEST_SQL = """
SELECT provider, epoch, availability_bps, probes, ok_probes, latency_p50_ms, latency_p99_ms,
       probers, batch
FROM availability
QUALIFY row_number() OVER (PARTITION BY provider, epoch ORDER BY batch DESC) = 1
"""
AVAILABILITY_SQL = AVAILABILITY_LATEST_SQL + "ORDER BY provider, epoch\n"


@dataclass(frozen=True)
class Query:
    sql: str
    params: dict


def report_query(name: str, *, consumer: str | None = None, batch: int | None = None,
                 known_batches: list[int] | None = None) -> Query:
    """The SQL of a named report; UsageError for an unknown name or a missing argument."""
    if name == "consumer-bill":
        if consumer is None:
            raise UsageError("--report consumer-bill needs --consumer ADDRESS")
        try:
            return Query(CONSUMER_BILL_SQL, {"consumer": normalize_address(consumer)})
        except AddressError as exc:
            raise UsageError(f"--consumer: {exc}") from None
    if name == "provider-revenue":
        return Query(PROVIDER_REVENUE_SQL, {})
    if name == "quarantine-summary":
        return Query(QUARANTINE_SUMMARY_SQL, {})
    if name == "batch":
        if batch is None:
            raise UsageError("--report batch needs a batch number: --report batch B")
        if known_batches is not None and batch not in known_batches:
            have = f"batches {known_batches[0]}..{known_batches[-1]}" if known_batches else "no batch yet"
            raise UsageError(f"batch {batch} does not exist in this output ({have})")
        return Query(BATCH_SQL, {"batch": batch})
    if name == "availability":
        return Query(AVAILABILITY_SQL, {})
    raise UsageError(f"unknown report {name!r}; choose one of {', '.join(REPORTS)}")


@dataclass(frozen=True)
class Result:
    columns: list
    rows: list


def run_query(con: duckdb.DuckDBPyConnection, query: Query) -> Result:
    """Run SQL on the catalog; a DuckDB error becomes a UsageError quoting it."""
    try:
        cursor = con.execute(query.sql, query.params or None)
        if cursor.description is None:
            return Result([], [])
        columns = [d[0] for d in cursor.description]
        return Result(columns, cursor.fetchall())
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {exc}") from None


def write_parquet(con: duckdb.DuckDBPyConnection, query: Query, target: Path) -> int:
    """Write the result of `query` to `target` atomically; returns the row count."""
    target = Path(target)
    if not target.parent.is_dir():
        raise InvalidInput(f"--to {target}: folder {target.parent} does not exist")
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        relation = con.sql(query.sql, params=query.params or None)
        if relation is None:
            raise UsageError("--to needs a query that returns rows (a SELECT)")
        relation.write_parquet(str(temp))
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{temp.as_posix()}')").fetchone()[0]
        os.replace(temp, target)
        return rows
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def plain(value):
    """A JSON-ready value with no precision lost: integral decimals as ints, other decimals as
    strings, bytes as 0x hex, times in ISO 8601."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def text(value) -> str:
    """A cell as text, exactly."""
    if value is None:
        return "NULL"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(plain(value))
    value = plain(value)
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)


def render(result: Result, fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{c: plain(v) for c, v in zip(result.columns, row)} for row in result.rows],
                          indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow(["" if v is None else text(v) for v in row])
        return buffer.getvalue()
    if fmt == "table":
        return render_table(result)
    raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_table(result: Result) -> str:
    cells = [[text(v) for v in row] for row in result.rows]
    numeric = [all(isinstance(row[i], (int, float, Decimal)) and not isinstance(row[i], bool)
                   for row in result.rows if row[i] is not None) for i in range(len(result.columns))]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(result.columns)]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(result.columns), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    out.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return "\n".join(out) + "\n"
