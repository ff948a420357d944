"""Every file meterroot writes appears whole or not at all: write a temp file beside it, fsync,
then rename over the target (atomic on POSIX file systems)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    _replace(Path(path), lambda handle: handle.write(data))


def dumps_json(data) -> bytes:
    """The one JSON spelling of every file meterroot writes: sorted keys, two-space indent."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def write_json(path: Path, data) -> None:
    write_bytes(path, dumps_json(data))


def write_compact_json(path: Path, data) -> None:
    """Large machine-read JSON (Merkle tree dumps): no indentation, same key order as given."""
    write_bytes(path, json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode() + b"\n")


def write_parquet(path: Path, table: pa.Table, dictionary=True) -> None:
    """Parquet without wall-clock metadata, so equal tables give equal bytes. `dictionary`: the
    columns worth dictionary-encoding (a list), or True for all."""
    _replace(Path(path), lambda handle: pq.write_table(
        table, handle, compression="zstd", write_statistics=True, store_schema=True,
        use_dictionary=dictionary))
