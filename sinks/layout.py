"""The one owner of the layout of an output directory (SPEC §7, §10): every path under OUT/, the
one reader of OUT/ledger/HEAD.json, and the one atomic writer (sinks.atomic, re-exported here).

  OUT/.meterroot.lock                           the exclusive writer lock (sinks.lock)
  OUT/.staging/<run>/                           one folder per run, never shared; removed at commit
  OUT/events/batch=<B>/part-*.parquet           settled events of batch B
  OUT/quarantine/batch=<B>/part-0.parquet       quarantined records read by the run of batch B
  OUT/quarantine/unbatched/run-*.parquet        those of a run that appended no batch
  OUT/settlement_lines/batch=<B>/part-0.parquet the lines of batch B
  OUT/batches/<B>/tree.json, manifest.json      the tree dump and manifest of batch B
  OUT/ledger/settled_quantities/batch=<B>.parquet
  OUT/ledger/cumulative/batch=<B>.parquet
  OUT/ledger/tariff.json                        canonical tariff of the last batch
  OUT/ledger/HEAD.json                          the commit point: last batch, and the size and
                                                sha256 of every file the ledger relies on
  OUT/probes/batch=<B>/part-0.parquet           probes settled with batch B (SPEC §14)
  OUT/probe_quarantine/batch=<B>/part-0.parquet probe records refused by the run of batch B
  OUT/availability/batch=<B>/part-0.parquet     availability per (provider, epoch) of batch B
  OUT/quality/<B>/validation.json               the validation record of batch B
  OUT/catalog.duckdb                            the DuckDB catalog
  OUT/run.json                                  the last run, written after HEAD

Paths recorded in HEAD.json are relative to OUT, with '/' separators, so an output directory can
be moved or copied whole.
"""
from __future__ import annotations

import json
from pathlib import Path

from settlement.errors import InvalidInput
from settlement.ledger import LedgerDamaged, LedgerHead
from sinks.atomic import dumps_json, write_bytes, write_compact_json, write_json, write_parquet  # noqa: F401

LOCK_FILE = ".meterroot.lock"
STAGING = ".staging"
LEDGER = "ledger"
HEAD_FILE = "HEAD.json"
RUN_FILE = "run.json"
CATALOG_FILE = "catalog.duckdb"
OUTPUT_TREES = ("events", "quarantine", "settlement_lines", "batches",
                "probes", "probe_quarantine", "availability")
"""Folders holding one sub-folder per batch (batches/<B>, the others batch=<B>)."""
LEDGER_SNAPSHOTS = ("settled_quantities", "cumulative")


def batch_dir(out: Path, tree: str, batch: int) -> Path:
    return Path(out) / tree / (str(batch) if tree == "batches" else f"batch={batch}")


def batch_number_of(name: str) -> int | None:
    """The batch a folder or file of OUT names (`7`, `batch=7`, `batch=7.parquet`), else None."""
    stem = name.removeprefix("batch=").removesuffix(".parquet")
    return int(stem) if stem.isdigit() and stem.isascii() else None


def batch_of_file(name: str) -> int | None:
    """The batch a HEAD.json file name belongs to (`events/batch=3/part-0000.parquet`,
    `batches/3/tree.json`, `ledger/cumulative/batch=3.parquet`), None for ledger-wide files."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] in OUTPUT_TREES:
        return batch_number_of(parts[1])
    if len(parts) == 3 and parts[0] == LEDGER and parts[1] in LEDGER_SNAPSHOTS:
        return batch_number_of(parts[2])
    return None


def lock_path(out: Path) -> Path:
    return Path(out) / LOCK_FILE


def staging_root(out: Path) -> Path:
    return Path(out) / STAGING


def run_staging(out: Path, run_id: str) -> Path:
    return staging_root(out) / run_id


def ledger_dir(out: Path) -> Path:
    return Path(out) / LEDGER


def head_path(out: Path) -> Path:
    return ledger_dir(out) / HEAD_FILE


def snapshot_path(out: Path, name: str, batch: int) -> Path:
    return ledger_dir(out) / name / f"batch={batch}.parquet"


def quantities_path(out: Path, batch: int) -> Path:
    return snapshot_path(out, "settled_quantities", batch)


def cumulative_path(out: Path, batch: int) -> Path:
    return snapshot_path(out, "cumulative", batch)


def tariff_path(out: Path) -> Path:
    return ledger_dir(out) / "tariff.json"


def events_dir(out: Path, batch: int) -> Path:
    return batch_dir(out, "events", batch)


def lines_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "settlement_lines", batch) / "part-0.parquet"


def quarantine_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "quarantine", batch) / "part-0.parquet"


def unbatched_quarantine_dir(out: Path) -> Path:
    return Path(out) / "quarantine" / "unbatched"


def probes_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "probes", batch) / "part-0.parquet"


def probe_quarantine_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "probe_quarantine", batch) / "part-0.parquet"


def availability_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "availability", batch) / "part-0.parquet"


def manifest_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "batches", batch) / "manifest.json"


def tree_path(out: Path, batch: int) -> Path:
    return batch_dir(out, "batches", batch) / "tree.json"


def leaves_path(out: Path, batch: int) -> Path:
    """The leaves of tree.json as columns (what the catalog's payables view reads)."""
    return batch_dir(out, "batches", batch) / "leaves.parquet"


def quality_dir(out: Path, batch: int) -> Path:
    return Path(out) / "quality" / str(batch)


def validation_record_path(out: Path, batch: int) -> Path:
    return quality_dir(out, batch) / "validation.json"


def run_path(out: Path) -> Path:
    return Path(out) / RUN_FILE


def catalog_path(out: Path) -> Path:
    return Path(out) / CATALOG_FILE


def relative(out: Path, path: Path) -> str:
    """`path` as HEAD.json names it: relative to OUT, '/'-separated."""
    return Path(path).relative_to(Path(out)).as_posix()


def resolve(out: Path, name: str) -> Path:
    """The file a HEAD.json name stands for; a name that leaves OUT is a damaged ledger."""
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or not parts:
        raise LedgerDamaged(f"{head_path(out)} names the file {name!r} outside the output directory; "
                            "the ledger head was edited: restore OUT/ledger/HEAD.json from a backup")
    return Path(out).joinpath(*parts)


def read_head(out: Path) -> LedgerHead | None:
    """The ledger head of OUT, None when OUT has no ledger yet. The one parser of HEAD.json:
    a head that does not parse is a damaged ledger (exit 1, naming the file)."""
    path = head_path(out)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise LedgerDamaged(f"{path} is a directory, not the ledger head; restore OUT/ledger from a "
                            "backup or start a new --output directory") from None
    except OSError as exc:
        raise InvalidInput(f"ledger head {path} cannot be read ({exc}); check its permissions") from None
    try:
        return LedgerHead.from_json(json.loads(raw.decode("utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LedgerDamaged(f"ledger head {path} is unreadable ({exc}); restore OUT/ledger/HEAD.json "
                            "from a backup, or start a new --output directory") from None


def head_batch(out: Path) -> int:
    """The last committed batch of OUT (0 when it has no ledger): nothing above it is visible."""
    head = read_head(out)
    return head.batch if head else 0


def late_dir(out: Path) -> Path:
    """OUT/late/: events a stream got past the allowed lateness, for a later `meterroot batch`."""
    return Path(out) / "late"


WATCH_CONTROL = ".flink-watch"
"""OUT/.flink-watch/: how a --watch Flink job and its client tell each other to stop."""


def watch_idle_path(out: Path, run_id: str) -> Path:
    """Left by the job's folder watcher when the folder was idle for --stop-after-idle."""
    return Path(out) / WATCH_CONTROL / f"{run_id}.idle"


def watch_stop_path(out: Path, run_id: str) -> Path:
    """Left by `meterroot stream`'s driver when it is interrupted: the client drains the job."""
    return Path(out) / WATCH_CONTROL / f"{run_id}.stop"
