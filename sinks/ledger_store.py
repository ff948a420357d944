"""The ledger on disk (SPEC §7): OUT/ledger/HEAD.json names the last settled batch and is
written last, so a run killed at any point leaves the previous complete state.

  OUT/ledger/HEAD.json                              LedgerHead
  OUT/ledger/settled_quantities/batch=<B>.parquet   quantity per pricing key through B
  OUT/ledger/cumulative/batch=<B>.parquet           cumulative wei per (consumer, payee) through B
  OUT/ledger/tariff.json                            canonical tariff of the last batch
  OUT/events/batch=<b>/*.parquet  (b <= HEAD.batch) the settled events with their content
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from settlement.errors import LedgerMismatch
from settlement.ledger import LedgerHead
from settlement.tariff import Tariff
from sinks import atomic

OUTPUT_TREES = ("events", "settlement_lines", "batches")


def batch_dir(out: Path, tree: str, batch: int) -> Path:
    return Path(out) / tree / (str(batch) if tree == "batches" else f"batch={batch}")


class LedgerStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.root = self.out / "ledger"

    def head(self) -> LedgerHead | None:
        path = self.root / "HEAD.json"
        if not path.exists():
            return None
        try:
            return LedgerHead.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerMismatch(f"ledger head {path} is unreadable ({exc}); restore it from a backup "
                                 "or start a new --output directory") from None

    def _snapshot(self, name: str, batch: int) -> pa.Table | None:
        if batch == 0:
            return None
        path = self.root / name / f"batch={batch}.parquet"
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise LedgerMismatch(f"ledger file {path} is missing or corrupt ({exc}); the ledger cannot "
                                 "be continued: restore OUT/ledger from a backup") from None

    def settled_quantities(self, head: LedgerHead | None) -> pa.Table | None:
        return self._snapshot("settled_quantities", head.batch) if head else None

    def cumulative(self, head: LedgerHead | None) -> pa.Table | None:
        return self._snapshot("cumulative", head.batch) if head else None

    def settled_event_files(self, head: LedgerHead | None) -> list[str]:
        if head is None:
            return []
        files = []
        for b in range(1, head.batch + 1):
            files.extend(str(p) for p in sorted(batch_dir(self.out, "events", b).glob("*.parquet")))
        return files

    def discard_unfinished(self, head: LedgerHead | None) -> list[Path]:
        """Remove outputs of batches beyond HEAD: the remains of a run killed before its commit."""
        settled = head.batch if head else 0
        removed = []
        for tree in OUTPUT_TREES:
            base = self.out / tree
            if not base.exists():
                continue
            for child in base.iterdir():
                name = child.name.removeprefix("batch=")
                if name.isdigit() and int(name) > settled:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
                    removed.append(child)
        for name in ("settled_quantities", "cumulative"):
            for child in (self.root / name).glob("batch=*.parquet"):
                number = child.stem.removeprefix("batch=")
                if number.isdigit() and int(number) > settled:
                    child.unlink()
        return removed

    def commit(self, head: LedgerHead, quantities: pa.Table, cumulative: pa.Table, tariff: Tariff) -> None:
        """Write the snapshots of `head.batch`, then HEAD.json: the commit point of the run."""
        atomic.write_parquet(self.root / "settled_quantities" / f"batch={head.batch}.parquet", quantities)
        atomic.write_parquet(self.root / "cumulative" / f"batch={head.batch}.parquet", cumulative)
        atomic.write_json(self.root / "tariff.json", tariff.canonical() | {"hash": tariff.hash})
        atomic.write_json(self.root / "HEAD.json", head.to_json())


def roll_back(out: Path, batch: int) -> LedgerHead | None:
    """Make `batch` the ledger's last batch again (after governance revoked the batches past it).

    HEAD is rewritten first (the commit point: from then on the later batches are the remains
    of unfinished runs), then their outputs and snapshots are removed. Their events are settled
    no more, so a batch run over them settles them again: copy them first (sinks.revoked_batches
    does) if their inputs are not kept. Returns the new head; None when there was nothing to undo.
    """
    store = LedgerStore(out)
    head = store.head()
    if head is None or batch >= head.batch:
        return None
    if batch < 0:
        raise LedgerMismatch(f"cannot roll the ledger of {out} back to batch {batch}")
    kept = {b: root for b, root in head.roots.items() if b <= batch}
    previous = replace(head, batch=batch, roots=kept, tariff_hash=_tariff_hash_of(Path(out), batch, head))
    if hasattr(previous, "files"):  # HEAD records digests: keep those of the batches kept
        previous = replace(previous, files={name: d for name, d in previous.files.items()
                                            if (_batch_of_name(name) or 0) <= batch})
    atomic.write_json(store.root / "HEAD.json", previous.to_json())
    store.discard_unfinished(previous)
    for child in (Path(out) / "quarantine").glob("batch=*"):
        number = child.name.removeprefix("batch=")
        if number.isdigit() and int(number) > batch:
            shutil.rmtree(child)
    return previous


def _tariff_hash_of(out: Path, batch: int, head: LedgerHead) -> str:
    """The tariff hash of `batch`'s manifest (its own tariff), or the head's when it has none."""
    manifest = batch_dir(out, "batches", batch) / "manifest.json"
    if batch == 0 or not manifest.exists():
        return head.tariff_hash if batch else ""
    return json.loads(manifest.read_text()).get("tariff_hash", head.tariff_hash)


def _batch_of_name(name: str) -> int | None:
    """The batch a file of OUT belongs to, from its path (batch=<B> or batches/<B>); None: none."""
    parts = Path(name).parts
    for i, part in enumerate(parts):
        stem = part.removesuffix(".parquet")
        if stem.startswith("batch=") and stem[6:].isdigit():
            return int(stem[6:])
        if part == "batches" and i + 1 < len(parts) and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None
