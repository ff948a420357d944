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
