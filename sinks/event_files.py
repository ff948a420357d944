"""Writing usage events as the files node operators deliver: JSONL, CSV or Parquet."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from settlement.errors import UsageError

FORMATS = ("jsonl", "csv", "parquet")


def write_events(table: pa.Table, path: Path, fmt: str) -> None:
    """Write `table` (SPEC §1 columns) to `path` in `fmt`, via a temp file and a rename."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        pq.write_table(table, tmp, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(table, tmp)
    else:
        con = duckdb.connect()
        con.register("events", table)
        # DuckDB writes newline-delimited JSON; absent token ids are left out, not null.
        con.execute(f"COPY (SELECT * EXCLUDE (token_id), token_id FROM events) TO '{tmp}' "
                    "(FORMAT JSON)")
        con.close()
    tmp.replace(path)
