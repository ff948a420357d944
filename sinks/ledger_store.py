"""The ledger on disk (SPEC §7, §10): OUT/ledger/HEAD.json names the last settled batch and the
size and sha256 of every file the ledger relies on; it is written last, the commit point, so a
run killed at any point leaves the previous complete state. Paths come from sinks.layout.

Before a run uses the ledger it checks every recorded file against HEAD (LedgerStore.verify): a
settled event part deleted, truncated or edited would otherwise make its events look new and be
paid twice. A damaged ledger is refused (LedgerDamaged, exit 1) naming the file.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from settlement.errors import LedgerMismatch
from settlement.ledger import FileDigest, LedgerDamaged, LedgerHead
from sinks import layout
from sinks.layout import batch_dir  # noqa: F401  (kept for callers of the old name)

OUTPUT_TREES = layout.OUTPUT_TREES
HASH_CHUNK = 1 << 22


def file_digest(path: Path) -> FileDigest:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(size, digest.hexdigest())


def _restore_hint(name: str, expected: FileDigest) -> str:
    return (f"restore OUT/{name} from a backup (HEAD.json records {expected.size} bytes, sha256 "
            f"{expected.sha256}); if no copy exists, start a new --output directory and settle every "
            "input again")


class LedgerStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.root = layout.ledger_dir(self.out)

    def head(self) -> LedgerHead | None:
        return layout.read_head(self.out)

    # ---------------------------------------------------------------- checking the ledger

    def damage(self, head: LedgerHead | None, hash_files: bool = True, batch: int | None = None) -> list[str]:
        """Why each damaged file of the ledger is damaged (empty when every file is as HEAD
        records it). hash_files=False checks sizes only; `batch`: only that batch's files."""
        if head is None or not head.files:
            return []
        problems = []
        names = sorted(head.files)
        if batch is not None:
            names = [n for n in names if layout.batch_of_file(n) == batch]

        def check(name: str) -> str | None:
            expected = head.files[name]
            path = layout.resolve(self.out, name)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return f"{path} is missing; {_restore_hint(name, expected)}"
            except OSError as exc:
                return f"{path} cannot be read ({exc}); {_restore_hint(name, expected)}"
            if size != expected.size:
                return (f"{path} is {size} bytes, not the {expected.size} bytes it was committed with "
                        f"(truncated or changed); {_restore_hint(name, expected)}")
            if hash_files:
                try:
                    actual = file_digest(path)
                except OSError as exc:
                    return f"{path} cannot be read ({exc}); {_restore_hint(name, expected)}"
                if actual.sha256 != expected.sha256:
                    return (f"{path} was changed after it was committed (sha256 {actual.sha256}, "
                            f"not {expected.sha256}); {_restore_hint(name, expected)}")
            return None

        # hashlib releases the GIL on large reads: two files at a time
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
            problems.extend(p for p in pool.map(check, names) if p)
        problems.extend(self._unrecorded(head, batch))
        return problems

    def _unrecorded(self, head: LedgerHead, only: int | None = None) -> list[str]:
        """Settled-event or batch files of committed batches that HEAD does not record: a part
        slipped in after the commit would change what the batch holds."""
        found = []
        for tree in layout.OUTPUT_TREES:
            base = self.out / tree
            if not base.is_dir():
                continue
            for child in base.iterdir():
                number = layout.batch_number_of(child.name)
                if number is None or number > head.batch or not child.is_dir() or only not in (None, number):
                    continue
                for path in child.iterdir():
                    if path.name.startswith("."):
                        continue  # an atomic writer's temp file
                    if layout.relative(self.out, path) not in head.files:
                        found.append(f"{path} is not part of committed batch {number} (HEAD.json does "
                                     "not record it): remove it, or restore the output directory from "
                                     "a backup")
        return found

    def verify(self, head: LedgerHead | None) -> None:
        """Refuse (LedgerDamaged) a ledger whose files are missing, truncated or changed."""
        problems = self.damage(head)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s); `meterroot verify --output {self.out}` lists them)" \
                if len(problems) > 1 else ""
            raise LedgerDamaged(f"the ledger of {self.out} is damaged: {problems[0]}{more}")

    # ---------------------------------------------------------------- what a run continues from

    def _snapshot(self, name: str, batch: int) -> pa.Table | None:
        if batch == 0:
            return None
        path = layout.snapshot_path(self.out, name, batch)
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise LedgerDamaged(f"ledger file {path} is missing or corrupt ({exc}); the ledger cannot "
                                "be continued: restore OUT/ledger from a backup") from None

    def settled_quantities(self, head: LedgerHead | None) -> pa.Table | None:
        return self._snapshot("settled_quantities", head.batch) if head else None

    def cumulative(self, head: LedgerHead | None) -> pa.Table | None:
        return self._snapshot("cumulative", head.batch) if head else None

    def settled_event_files(self, head: LedgerHead | None) -> list[str]:
        """The settled event parts of batches 1..HEAD: those HEAD records (a ledger written
        before HEAD recorded files: those on disk)."""
        if head is None:
            return []
        if head.files:
            return [str(layout.resolve(self.out, name)) for name in sorted(head.files)
                    if name.startswith("events/") and name.endswith(".parquet")
                    and (layout.batch_of_file(name) or 0) <= head.batch]
        files = []
        for b in range(1, head.batch + 1):
            files.extend(str(p) for p in sorted(layout.events_dir(self.out, b).glob("*.parquet")))
        return files

    def discard_unfinished(self, head: LedgerHead | None) -> list[Path]:
        """Remove outputs of batches beyond HEAD: the remains of a run killed before its commit."""
        settled = head.batch if head else 0
        removed = []
        for tree in layout.OUTPUT_TREES:
            base = self.out / tree
            if not base.is_dir():
                continue
            for child in base.iterdir():
                number = layout.batch_number_of(child.name)
                if number is not None and number > settled:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
                    removed.append(child)
        for name in layout.LEDGER_SNAPSHOTS:
            folder = self.root / name
            if not folder.is_dir():
                continue
            for child in folder.glob("batch=*.parquet"):
                number = layout.batch_number_of(child.name)
                if number is not None and number > settled:
                    child.unlink()
        return removed

    def discard_temp_files(self) -> list[Path]:
        """Remove the temp files of writes a killed run did not rename into place
        (`.<name>.<random>.tmp` beside their target, sinks/atomic.py; a catalog's or a data
        docs site's `.<name>.<pid>.tmp`): only the holder of OUT's lock writes these trees, so
        at the start of a run holding the lock every one is a dead run's. Left alone they are
        litter that no uninterrupted run leaves (and a data docs folder can be hundreds of
        files). Called once, at the start: not at a stream's cuts, where the stream's own
        follower may be writing a validation record or a catalog beside them."""
        removed = []
        roots = [self.out, self.root, self.out / "quality", *(self.out / tree for tree in layout.OUTPUT_TREES)]
        for base in roots:
            if not base.is_dir():
                continue
            found = base.glob(".*.tmp*") if base == self.out else base.rglob(".*.tmp*")  # not OUT/chain/
            for path in sorted(found):
                if not _is_temp_name(path.name) or not path.exists():
                    continue
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # ---------------------------------------------------------------- the commit point

    def batch_files(self, batch: int) -> list[Path]:
        """Every file of `batch` the next HEAD records: its settled events, lines, quarantine,
        tree, manifest and ledger snapshots (those the run wrote)."""
        paths = sorted(layout.events_dir(self.out, batch).glob("part-*.parquet"))
        for path in (layout.lines_path(self.out, batch), layout.quarantine_path(self.out, batch),
                     layout.tree_path(self.out, batch), layout.leaves_path(self.out, batch),
                     layout.manifest_path(self.out, batch),
                     layout.quantities_path(self.out, batch), layout.cumulative_path(self.out, batch),
                     layout.probes_path(self.out, batch), layout.probe_quarantine_path(self.out, batch),
                     layout.availability_path(self.out, batch)):
            if path.exists():
                paths.append(path)
        return paths

    def commit(self, head: LedgerHead, previous: LedgerHead | None, tariff_json: dict) -> LedgerHead:
        """Record the digests of `head.batch`'s files, then write HEAD.json: the commit point.
        Returns the head as written."""
        layout.write_json(layout.tariff_path(self.out), tariff_json)
        files = dict(previous.files) if previous else {}
        if previous is not None and not previous.files:  # a ledger from before digests: record it now
            for b in range(1, previous.batch + 1):
                for path in self.batch_files(b):
                    files[layout.relative(self.out, path)] = file_digest(path)
        new = self.batch_files(head.batch) + [layout.tariff_path(self.out)]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="digest") as pool:
            for path, digest in zip(new, pool.map(file_digest, new)):
                files[layout.relative(self.out, path)] = digest
        head = replace(head, files=files)
        layout.write_json(layout.head_path(self.out), head.to_json())
        return head


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
    # HEAD records digests: keep those of the batches kept (and the ledger-wide files)
    previous = replace(previous, files={name: d for name, d in previous.files.items()
                                        if (layout.batch_of_file(name) or 0) <= batch})
    layout.write_json(layout.head_path(out), previous.to_json())
    store.discard_unfinished(previous)  # every per-batch tree of OUT (sinks.layout.OUTPUT_TREES)
    return previous


def _tariff_hash_of(out: Path, batch: int, head: LedgerHead) -> str:
    """The tariff hash of `batch`'s manifest (its own tariff), or the head's when it has none."""
    manifest = layout.manifest_path(out, batch)
    if batch == 0 or not manifest.exists():
        return head.tariff_hash if batch else ""
    return json.loads(manifest.read_text()).get("tariff_hash", head.tariff_hash)


def _is_temp_name(name: str) -> bool:
    """`.x.tmp`, `.x.<suffix>.tmp`, and DuckDB's `.x.<pid>.tmp.wal` beside its temp catalog."""
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".tmp.wal"))
