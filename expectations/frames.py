"""The tables each suite expects on, one set per batch.

Great Expectations checks one dataframe at a time; the rules that span files (lines against
events, the manifest against the lines, the tree against the lines) are computed here as
columns (`lines_total`, `event_quantity`, `expected_cumulative`, ...) so that the suites expect on
them and the outcome shows in GX results and Data Docs like any other expectation.

Money and quantities stay exact: Parquet DECIMAL(38,0) becomes Python int (object columns),
never float.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from settlement.addresses import to_checksum_address

from expectations.outputs import read_manifest, read_tree
from expectations.prefilter import SqlTable
from settlement.errors import InvalidInput
from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, build_tree, hash_leaf,
                               settlement_leaf_hashes)
from settlement.tariff import Tariff

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
EVENT_ADDRESS_COLUMNS = ("provider", "consumer", "contract")
EVENT_REQUIRED = ("provider", "event_id", "node_id", "consumer", "contract", "unit", "quantity",
                  "timestamp_ms", "epoch")
LINE_REQUIRED = ("quantity", "amount_wei", "protocol_fee_wei", "provider_wei")
LINE_KEY = ("batch", "epoch", "consumer", "contract", "provider", "unit")


@dataclass(frozen=True)
class BatchFrames:
    """Everything the suites of one batch validate."""
    batch: int
    """The batch number (its folder under OUT/batches/)."""
    manifest: dict
    """OUT/batches/<B>/manifest.json as read."""
    tariff: Tariff
    """The tariff the batch is checked against."""
    events: SqlTable
    """Accepted events of the batch, with checksum, epoch and tariff check columns."""
    lines: SqlTable
    """Settlement lines full-outer-joined with the event quantity of each line key."""
    batch_row: pd.DataFrame
    """One row: the manifest's figures beside the same figures recomputed from the files."""
    input_counts: pd.DataFrame
    """One row per manifest input plus one for the manifest's counts: read vs its parts."""
    payables: pd.DataFrame
    """Tree leaves full-outer-joined with the cumulative amounts the lines imply."""


def exact_int(value):
    """int for Decimal/int/digit strings; anything else (None, garbage) is returned as is, so a
    mismatch shows the raw value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value)
    return value


def _exact(series: pd.Series) -> pd.Series:
    return pd.Series([exact_int(v) for v in series], index=series.index, dtype=object)


def _decimal_ints(column) -> np.ndarray:
    """Python ints (None for nulls) of a DECIMAL(38,0) column, as an object array: through
    int64 in one C loop where every value fits, else through text (never through float)."""
    if column.null_count == 0:
        try:
            return pc.cast(column, pa.int64()).to_numpy().astype(object)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return np.array([None if x is None else int(x) for x in pc.cast(column, pa.string()).to_pylist()],
                    dtype=object)


def sql_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """Run SQL into pandas exactly: integers with nulls stay Python ints, decimals become ints."""
    try:
        table = con.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot read the output files: {exc}") from None
    return arrow_frame(table)


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table in pandas as sql_frame makes it."""
    decimals = [f.name for f in table.schema if pa.types.is_decimal(f.type)]
    frame = table.drop_columns(decimals).to_pandas(integer_object_nulls=True)
    for name in decimals:
        frame[name] = pd.Series(_decimal_ints(table.column(name)), index=frame.index, dtype=object)
    return frame[table.schema.names]


def checksum_or_none(text):
    """The EIP-55 form of a 0x+40-hex text, None for anything else."""
    if not isinstance(text, str) or not _HEX40.fullmatch(text):
        return None
    return to_checksum_address(text.lower())


def _missing_fields_sql(columns, prefix: str = "") -> str:
    """SQL: the names of `columns` that are null in a row, comma-joined; NULL when all are there."""
    cases = ", ".join(f"CASE WHEN {prefix}{c} IS NULL THEN '{c}' END" for c in columns)
    return f"nullif(concat_ws(',', {cases}), '')"


def _load_checksums(con, batch: int) -> None:
    """TEMP TABLE eip55_forms: the EIP-55 form (NULL when not an address) of every distinct
    provider, consumer and contract of the batch's events, computed once per value."""
    distinct = con.sql(" UNION ".join(f"SELECT DISTINCT {c} AS address FROM events WHERE batch = $batch"
                                      for c in EVENT_ADDRESS_COLUMNS), params={"batch": batch}).fetchall()
    addresses = [a for (a,) in distinct if a is not None]
    forms = pa.table({"address": pa.array(addresses, pa.string()),
                      "eip55": pa.array([checksum_or_none(a) for a in addresses], pa.string())})
    con.register("eip55_source", forms)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE eip55_forms AS SELECT * FROM eip55_source")
    finally:
        con.unregister("eip55_source")


def _load_priced_pairs(con, tariff: Tariff) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE tariff_prices (contract VARCHAR, unit VARCHAR)")
    con.executemany("INSERT INTO tariff_prices VALUES (?, ?)", [(r.contract, r.unit) for r in tariff.prices])


def _checked(con, what: str, load) -> None:
    try:
        load()
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot read the output files ({what}): {exc}") from None


def events_table(con, batch: int, tariff: Tariff) -> SqlTable:
    _load_priced_pairs(con, tariff)
    _checked(con, "events", lambda: _load_checksums(con, batch))
    forms = "".join(f" LEFT JOIN eip55_forms AS {c}_form ON {c}_form.address = these.{c}"
                    for c in EVENT_ADDRESS_COLUMNS)
    return SqlTable(f"""
        WITH these AS (SELECT * FROM events WHERE batch = $batch),
             earlier AS (SELECT provider, event_id, min(batch) AS settled_in_batch
                         FROM events WHERE batch < $batch GROUP BY provider, event_id)
        SELECT these.*, earlier.settled_in_batch,
               {_missing_fields_sql(EVENT_REQUIRED, "these.")} AS missing_fields,
               these.timestamp_ms // $epoch_ms AS timestamp_epoch,
               EXISTS (SELECT 1 FROM tariff_prices t
                       WHERE t.unit = these.unit AND t.contract IN (these.contract, '*')) AS priced_by_tariff,
               {", ".join(f"{c}_form.eip55 AS {c}_eip55" for c in EVENT_ADDRESS_COLUMNS)}
        FROM these LEFT JOIN earlier USING (provider, event_id){forms}""",
        "provider, event_id", {"batch": batch, "epoch_ms": 1000 * tariff.epoch_seconds})


def lines_table(con, batch: int, tariff: Tariff) -> SqlTable:
    # expected fee = amount * bps // 10000 (floor: the provider keeps the fraction, SPEC §4 step 3),
    # written as (a // 10000) * bps + (a % 10000) * bps // 10000 so no product leaves 128 bits
    return SqlTable(f"""
        WITH lines AS (SELECT * FROM settlement_lines WHERE batch = $batch),
             used AS (SELECT epoch, consumer, contract, provider, unit,
                             CAST(sum(quantity) AS DECIMAL(38,0)) AS event_quantity
                      FROM events WHERE batch = $batch
                      GROUP BY epoch, consumer, contract, provider, unit),
             joined AS (
                SELECT $batch AS batch,
                       coalesce(lines.epoch, used.epoch) AS epoch,
                       coalesce(lines.consumer, used.consumer) AS consumer,
                       coalesce(lines.contract, used.contract) AS contract,
                       coalesce(lines.provider, used.provider) AS provider,
                       coalesce(lines.unit, used.unit) AS unit,
                       lines.batch AS line_batch, lines.quantity, used.event_quantity,
                       lines.amount_wei, lines.protocol_fee_wei, lines.provider_wei,
                       CAST(lines.amount_wei AS HUGEINT) AS amount
                FROM lines FULL OUTER JOIN used
                  ON lines.epoch = used.epoch AND lines.consumer = used.consumer
                 AND lines.contract = used.contract AND lines.provider = used.provider
                 AND lines.unit = used.unit)
        SELECT * EXCLUDE (amount),
               {_missing_fields_sql(LINE_REQUIRED)} AS missing_fields,
               amount - CAST(protocol_fee_wei AS HUGEINT) - CAST(provider_wei AS HUGEINT) AS split_difference_wei,
               (amount // 10000) * $bps + ((amount % 10000) * $bps) // 10000 AS expected_protocol_fee_wei,
               concat_ws('/', epoch, consumer, contract, provider, unit) AS line
        FROM joined""", "ALL", {"batch": batch, "bps": tariff.protocol_fee_bps})


EMPTY_TREE_ROOT = "0x" + "00" * 32


def _tree_facts(tree: dict | None) -> tuple[int, str | None, str | None]:
    """(leaf count, root as dumped, root recomputed from the leaf values) of a tree dump. A batch
    without tree.json is the empty tree: no leaves, the zero root (a batch whose total is zero)."""
    if tree is None:
        return 0, EMPTY_TREE_ROOT, EMPTY_TREE_ROOT
    values = [entry.get("value") if isinstance(entry, dict) else None for entry in tree["values"]]
    nodes = tree.get("tree") or [None]
    try:
        prefixes = {(int(v[0]), v[1], int(v[2])) for v in values}
        if len(prefixes) == 1:
            (chain_id, registry, batch), = prefixes
            hashes = settlement_leaf_hashes(chain_id, registry, batch,
                                            ((v[3], v[4], int(v[5])) for v in values))
        else:
            hashes = [hash_leaf(SETTLEMENT_LEAF_ENCODING, v) for v in values]
        recomputed = "0x" + build_tree(sorted(hashes))[0].hex() if hashes else None
    except (TypeError, ValueError, IndexError, OverflowError) as exc:
        recomputed = f"unhashable leaf values: {exc}"
    return len(values), nodes[0], recomputed


def _text(value) -> str | None:
    return None if value is None else str(value)


def batch_row_frame(con, batch: int, manifest: dict, tree: dict | None, tariff: Tariff) -> pd.DataFrame:
    sums = sql_frame(con, """
        SELECT (SELECT CAST(coalesce(sum(amount_wei), 0) AS DECIMAL(38,0))
                  FROM settlement_lines WHERE batch = $batch) AS lines_total,
               (SELECT CAST(coalesce(sum(protocol_fee_wei), 0) AS DECIMAL(38,0))
                  FROM settlement_lines WHERE batch = $batch) AS lines_protocol_fee_total,
               (SELECT string_agg(DISTINCT CAST(epoch AS VARCHAR), ',' ORDER BY CAST(epoch AS VARCHAR))
                  FROM settlement_lines WHERE batch = $batch) AS lines_epochs,
               (SELECT count(*) FROM events WHERE batch = $batch) AS event_rows,
               (SELECT count(*) FROM quarantine WHERE batch = $batch) AS quarantine_rows
        """, {"batch": batch}).iloc[0]
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    inputs = [i for i in manifest.get("inputs") or [] if isinstance(i, dict)]
    read, accepted, duplicates, quarantined = (
        exact_int(counts.get(k)) for k in ("read", "accepted", "duplicates", "quarantined"))
    leaf_count, tree_root, recomputed_root = _tree_facts(tree)
    epochs = manifest.get("epochs")
    row = {
        "batch": batch,
        "manifest_batch": exact_int(manifest.get("batch")),
        "manifest_total": exact_int(manifest.get("total")),
        "lines_total": sums["lines_total"],
        "manifest_protocol_fee_total": exact_int(manifest.get("protocol_fee_total")),
        "lines_protocol_fee_total": sums["lines_protocol_fee_total"],
        "manifest_epochs": ",".join(sorted(str(e) for e in epochs)) if isinstance(epochs, list) else _text(epochs),
        "lines_epochs": sums["lines_epochs"],
        "manifest_leaf_count": exact_int(manifest.get("leaf_count")),
        "tree_leaf_count": leaf_count,
        "manifest_root": _text(manifest.get("root")),
        "tree_root": tree_root,
        "recomputed_root": recomputed_root,
        "manifest_tariff_hash": _text(manifest.get("tariff_hash")),
        "tariff_hash": tariff.hash,
        "read": read, "accepted": accepted, "duplicates": duplicates, "quarantined": quarantined,
        "event_rows": int(sums["event_rows"]),
        "quarantine_rows": int(sums["quarantine_rows"]),
        "quarantine_share": (quarantined / read if isinstance(read, int) and read > 0 and
                             isinstance(quarantined, int) else None),
    }
    for part in ("read", "accepted", "duplicates", "quarantined"):
        values = [exact_int(i.get(part)) for i in inputs]
        row[f"inputs_{part}"] = sum(values) if all(isinstance(v, int) for v in values) else None
    return pd.DataFrame([row], dtype=object)


def input_counts_frame(manifest: dict) -> pd.DataFrame:
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    scopes = [("manifest counts", counts)] + [
        (f"input {i.get('path')}", i) for i in manifest.get("inputs") or [] if isinstance(i, dict)]
    rows = []
    for scope, figures in scopes:
        read, accepted, duplicates, quarantined = (
            exact_int(figures.get(k)) for k in ("read", "accepted", "duplicates", "quarantined"))
        parts = (read, accepted, duplicates, quarantined)
        whole = all(isinstance(v, int) for v in parts)
        rows.append({"scope": scope, "read": read, "accepted": accepted, "duplicates": duplicates,
                     "quarantined": quarantined, "smallest_count": min(parts) if whole else None,
                     "unaccounted": (read - accepted - duplicates - quarantined
                                     if whole else None)})
    return pd.DataFrame(rows, dtype=object)


def payables_frame(con, batch: int, tree: dict | None, tariff: Tariff) -> pd.DataFrame:
    expected = sql_frame(con, """
        WITH owed AS (
            SELECT batch, consumer, provider AS payee, provider_wei AS amount
            FROM settlement_lines WHERE batch <= $batch
            UNION ALL
            SELECT batch, consumer, $treasury AS payee, protocol_fee_wei AS amount
            FROM settlement_lines WHERE batch <= $batch
        ),
        pairs AS (
            SELECT consumer, payee,
                   CAST(coalesce(sum(amount) FILTER (WHERE batch = $batch), 0) AS DECIMAL(38,0)) AS batch_amount,
                   CAST(sum(amount) AS DECIMAL(38,0)) AS expected_cumulative
            FROM owed GROUP BY consumer, payee
        )
        SELECT * FROM pairs WHERE batch_amount > 0 ORDER BY consumer, payee
        """, {"batch": batch, "treasury": tariff.treasury})
    leaves = []
    for entry in (tree or {}).get("values", []):
        value = entry.get("value") if isinstance(entry, dict) else None
        value = value if isinstance(value, list) and len(value) == 6 else [None] * 6
        leaves.append({"consumer": value[3], "payee": value[4], "tree_cumulative": exact_int(value[5]),
                       "leaf_chain_id": exact_int(value[0]), "leaf_registry": value[1],
                       "leaf_batch": exact_int(value[2])})
    leaves = pd.DataFrame(leaves, columns=["consumer", "payee", "tree_cumulative", "leaf_chain_id",
                                           "leaf_registry", "leaf_batch"], dtype=object)
    frame = leaves.merge(expected, on=["consumer", "payee"], how="outer", sort=True)
    frame = frame.astype(object).where(frame.notna(), None)
    frame["pair"] = [f"{c}->{p}" for c, p in zip(frame["consumer"], frame["payee"])]
    return frame


def batch_frames(con, out_dir: Path, batch: int, tariff: Tariff) -> BatchFrames:
    manifest = read_manifest(out_dir, batch)
    tree = read_tree(out_dir, batch)
    return BatchFrames(
        batch=batch,
        manifest=manifest,
        tariff=tariff,
        events=events_table(con, batch, tariff),
        lines=lines_table(con, batch, tariff),
        batch_row=batch_row_frame(con, batch, manifest, tree, tariff),
        input_counts=input_counts_frame(manifest),
        payables=payables_frame(con, batch, tree, tariff),
    )
