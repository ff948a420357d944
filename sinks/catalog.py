"""OUT/catalog.duckdb: SQL views over every output of a batch run, for ad-hoc questions.

The views read the Parquet and JSON files where they lie, through ABSOLUTE paths, so the catalog
opens in the plain `duckdb` CLI or Python from any working directory without meterroot. It is
rebuilt by every run (`build_catalog`): a source with no file yet becomes an empty view with the
documented column types, and a moved output directory needs a rebuild.

Views
  events            accepted events (OUT/events/batch=<B>/*.parquet; `batch` from the folder)
  quarantine        quarantined records with their reason (batch NULL: a run that appended none)
  settlement_lines  one row per (batch, epoch, consumer, contract, provider, unit)
  batches           one row per OUT/batches/<B>/manifest.json, counts flattened
  ledger            cumulative owed per (consumer, payee) at the ledger HEAD
  payables          every leaf of every tree.json: batch, consumer, payee, cumulative_wei and the
                    batch's own amount_wei for the pair (its cumulative minus the pair's previous);
                    read from the leaves.parquet written beside each tree.json (the dump of a
                    100k-leaf tree is one JSON object of tens of MB, slow to parse on every query),
                    or from the dumps themselves in an output written before leaves.parquet existed
  validations       OUT/quality/<B>/validation.json: batch, success, validated_at
  availability      availability per (batch, provider, epoch) from probes (SPEC §14)

Every view shows only batches up to the ledger HEAD (read through sinks.ledger_store.LedgerStore):
the files of a later batch belong to a run that has not committed.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from settlement.errors import InvalidInput, LedgerMismatch
from sinks.atomic import crash_point
from sinks.availability_files import AVAILABILITY_COLUMNS
from sinks.ledger_store import LedgerStore

CATALOG_FILE = "catalog.duckdb"

# Column types of each Parquet source, as SPEC §7 writes them; used verbatim for empty views.
EVENT_COLUMNS = (
    ("batch", "BIGINT"), ("provider", "VARCHAR"), ("event_id", "VARCHAR"), ("node_id", "VARCHAR"),
    ("consumer", "VARCHAR"), ("contract", "VARCHAR"), ("unit", "VARCHAR"), ("quantity", "BIGINT"),
    ("timestamp_ms", "BIGINT"), ("epoch", "BIGINT"), ("token_id", "DECIMAL(38,0)"), ("source", "VARCHAR"),
)
QUARANTINE_COLUMNS = (
    ("batch", "BIGINT"), ("reason", "VARCHAR"), ("detail", "VARCHAR"), ("source", "VARCHAR"),
    ("record", "VARCHAR"),
)
LINE_COLUMNS = (
    ("batch", "BIGINT"), ("epoch", "BIGINT"), ("consumer", "VARCHAR"), ("contract", "VARCHAR"),
    ("provider", "VARCHAR"), ("unit", "VARCHAR"), ("quantity", "DECIMAL(38,0)"),
    ("amount_wei", "DECIMAL(38,0)"), ("protocol_fee_wei", "DECIMAL(38,0)"),
    ("provider_wei", "DECIMAL(38,0)"),
)
LEDGER_COLUMNS = (("consumer", "VARCHAR"), ("payee", "VARCHAR"), ("cumulative_wei", "DECIMAL(38,0)"))

# What read_json parses out of each manifest / tree dump / validation record (others ignored).
MANIFEST_JSON_COLUMNS = (
    ("batch", "BIGINT"), ("root", "VARCHAR"), ("leaf_count", "BIGINT"), ("total", "VARCHAR"),
    ("protocol_fee_total", "VARCHAR"), ("epochs", "BIGINT[]"), ("tariff_hash", "VARCHAR"),
    ("tariff_version", "VARCHAR"), ("chain_id", "VARCHAR"), ("registry", "VARCHAR"),
    ("counts", "STRUCT(read BIGINT, accepted BIGINT, duplicates BIGINT, quarantined BIGINT)"),
    ("inputs", "STRUCT(path VARCHAR, sha256 VARCHAR, read BIGINT, accepted BIGINT, "
               "duplicates BIGINT, quarantined BIGINT)[]"),
    ("code_version", "VARCHAR"), ("created_by", "VARCHAR"), ("filename", "VARCHAR"),
)
TREE_JSON_COLUMNS = (("values", "STRUCT(value VARCHAR[], \"treeIndex\" BIGINT)[]"), ("filename", "VARCHAR"))
VALIDATION_JSON_COLUMNS = (
    ("batch", "BIGINT"), ("success", "BOOLEAN"), ("validated_at", "VARCHAR"), ("data_docs", "VARCHAR"),
    ("filename", "VARCHAR"),
)
# DuckDB refuses a JSON object larger than `maximum_object_size` (default 16 MB) and allocates
# buffers of that size, so the cap follows the largest file (a 1M-leaf tree dump is ~400 MB).
MIN_JSON_OBJECT_BYTES = 16 * 2**20

BATCHES_SQL = """
SELECT batch, root, leaf_count,
       CAST(total AS DECIMAL(38,0)) AS total,
       CAST(protocol_fee_total AS DECIMAL(38,0)) AS protocol_fee_total,
       epochs, tariff_hash, tariff_version,
       CAST(chain_id AS BIGINT) AS chain_id, registry,
       counts.read AS "read", counts.accepted AS accepted, counts.duplicates AS duplicates,
       counts.quarantined AS quarantined,
       inputs, code_version, created_by, filename AS manifest_path
FROM {source}
"""

PAYABLES_SQL = """
WITH leaves AS (
    SELECT CAST(leaf.value[3] AS BIGINT) AS batch,
           leaf.value[4] AS consumer,
           leaf.value[5] AS payee,
           CAST(leaf.value[6] AS DECIMAL(38,0)) AS cumulative_wei,
           CAST(leaf.value[1] AS BIGINT) AS chain_id,
           leaf.value[2] AS registry,
           leaf."treeIndex" AS tree_index
    FROM (SELECT unnest("values") AS leaf FROM {source})
)
SELECT batch, consumer, payee, cumulative_wei,
       -- the pair's previous leaf is its cumulative through its last earlier batch
       cumulative_wei - coalesce(lag(cumulative_wei) OVER (PARTITION BY consumer, payee ORDER BY batch), 0)
           AS amount_wei,
       chain_id, registry, tree_index
FROM leaves
"""

LEAF_PARQUET_SQL = """
SELECT batch, consumer, payee, cumulative_wei, amount_wei, chain_id, registry, tree_index FROM {source}
"""

VALIDATIONS_SQL = """
SELECT batch, success, validated_at, data_docs, filename AS validation_path FROM {source}
"""


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _empty_source(columns) -> str:
    """A typed relation with no rows: what a view reads while its files do not exist yet."""
    fields = ", ".join(f"CAST(NULL AS {sql_type}) AS \"{name}\"" for name, sql_type in columns)
    return f"(SELECT {fields} WHERE false)"


def _has_files(out_dir: Path, pattern: str) -> bool:
    return next(out_dir.glob(pattern), None) is not None


def _parquet_source(out_dir: Path, pattern: str, columns, partitioned: bool = False) -> str:
    if not _has_files(out_dir, pattern):
        return _empty_source(columns)
    path = sql_string(str(out_dir / pattern))
    # In batch=<B>/ folders the folder is authoritative: hive values override the file's column.
    hive = "true, hive_types={'batch': BIGINT}" if partitioned else "false"
    return f"read_parquet({path}, union_by_name=true, hive_partitioning={hive})"


def _json_source(out_dir: Path, pattern: str, columns) -> str:
    if not _has_files(out_dir, pattern):
        return _empty_source(columns)
    spec = ", ".join(f"{sql_string(name)}: {sql_string(sql_type)}"
                     for name, sql_type in columns if name != "filename")
    largest = max(path.stat().st_size for path in out_dir.glob(pattern))
    cap = max(MIN_JSON_OBJECT_BYTES, 2 * largest)
    return (f"read_json({sql_string(str(out_dir / pattern))}, format='auto', columns={{{spec}}}, "
            f"filename=true, maximum_object_size={cap})")


def _quarantine_select(out_dir: Path) -> str:
    """Quarantine of every batch, plus that of runs which appended no batch (batch NULL)."""
    select = "SELECT * FROM " + _parquet_source(
        out_dir, "quarantine/batch=*/*.parquet", QUARANTINE_COLUMNS, partitioned=True)
    if _has_files(out_dir, "quarantine/unbatched/*.parquet"):
        select += (" UNION ALL BY NAME SELECT CAST(NULL AS BIGINT) AS batch, COLUMNS(lambda c: c <> 'batch') FROM "
                   + _parquet_source(out_dir, "quarantine/unbatched/*.parquet", QUARANTINE_COLUMNS))
    return select


def _head_batch(out_dir: Path) -> int | None:
    try:
        head = LedgerStore(out_dir).head()
    except LedgerMismatch as exc:
        raise InvalidInput(f"{exc}; the catalog shows committed batches only") from None
    return head.batch if head is not None else None


def _payables_select(out_dir: Path) -> str:
    """Leaves from leaves.parquet where every tree has one, else from the tree dumps."""
    trees = sorted(out_dir.glob("batches/*/tree.json"))
    if trees and all((tree.parent / "leaves.parquet").exists() for tree in trees):
        return LEAF_PARQUET_SQL.format(source=_parquet_source(
            out_dir, "batches/*/leaves.parquet", ()))
    return PAYABLES_SQL.format(source=_json_source(out_dir, "batches/*/tree.json", TREE_JSON_COLUMNS))


def view_definitions(out_dir: Path) -> dict[str, str]:
    """name -> SELECT of every catalog view over `out_dir` (absolute paths)."""
    out_dir = Path(out_dir).resolve()
    head = _head_batch(out_dir)
    ledger_pattern = f"ledger/cumulative/batch={head}.parquet"
    views = {
        "events": "SELECT * FROM " + _parquet_source(
            out_dir, "events/batch=*/*.parquet", EVENT_COLUMNS, partitioned=True),
        "quarantine": _quarantine_select(out_dir),
        "settlement_lines": "SELECT * FROM " + _parquet_source(
            out_dir, "settlement_lines/batch=*/*.parquet", LINE_COLUMNS, partitioned=True),
        "batches": BATCHES_SQL.format(
            source=_json_source(out_dir, "batches/*/manifest.json", MANIFEST_JSON_COLUMNS)),
        "payables": _payables_select(out_dir),
        "availability": "SELECT * FROM " + _parquet_source(  # SPEC §14, sinks/availability_files.py
            out_dir, "availability/batch=*/*.parquet", AVAILABILITY_COLUMNS, partitioned=True),
    }
    # HEAD is the commit point: files of a later batch belong to a run that did not finish
    # (with no HEAD yet, nothing is committed)
    views = {name: f"SELECT * FROM ({select}) WHERE batch IS NULL OR batch <= {head or 0}"
             for name, select in views.items()}
    views["ledger"] = "SELECT * FROM " + (
        _parquet_source(out_dir, ledger_pattern, LEDGER_COLUMNS) if head is not None
        else _empty_source(LEDGER_COLUMNS))
    views["validations"] = VALIDATIONS_SQL.format(
        source=_json_source(out_dir, "quality/*/validation.json", VALIDATION_JSON_COLUMNS))
    return views


def create_views(con: duckdb.DuckDBPyConnection, out_dir: Path, probe: bool = False) -> None:
    """Define every catalog view on `con`. probe: read each view once, so that a corrupt source
    raises InvalidInput naming it now rather than at query time."""
    for name, select in view_definitions(out_dir).items():
        try:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {select}")
            if probe:  # binding a view reads no data
                con.execute(f"SELECT count(*) FROM {name}").fetchall()
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot define the catalog view {name!r} over {out_dir}: {exc}") from None


def check_output_dir(out_dir: Path) -> Path:
    """`out_dir` resolved, or InvalidInput when it is not a meterroot output directory."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InvalidInput(f"output directory {out_dir} does not exist; pass the --output of a "
                           "`meterroot batch` run")
    if not any((out_dir / part).exists() for part in ("batches", "ledger", "events", "run.json")):
        raise InvalidInput(f"{out_dir} is not a meterroot output directory (no batches/, ledger/, "
                           "events/ or run.json); pass the --output of a `meterroot batch` run")
    return out_dir.resolve()


def connect(out_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the catalog views over `out_dir` as it is now
    (nothing is written; used by `meterroot query`, `validate` and `reconcile`)."""
    out_dir = check_output_dir(out_dir)
    con = duckdb.connect(":memory:")
    create_views(con, out_dir)
    return con


def build_catalog(out_dir: Path) -> Path:
    """(Re)write OUT/catalog.duckdb atomically: built in a temp file, then renamed over."""
    out_dir = check_output_dir(out_dir)
    target = out_dir / CATALOG_FILE
    temp = out_dir / f".{CATALOG_FILE}.{os.getpid()}.tmp"
    temp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(temp))
        try:
            create_views(con, out_dir, probe=True)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        crash_point(target, "before")
        os.replace(temp, target)
        crash_point(target, "after")
    finally:
        temp.unlink(missing_ok=True)
        Path(str(temp) + ".wal").unlink(missing_ok=True)
    return target
