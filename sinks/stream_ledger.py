"""The one writer of a streaming ledger, Beam-free: the Beam stream's CutBatches and the Flink
job's writer both call `cut_batch` once per cut. A cut applies the settlement transition
(settlement.transition.settle_cut) to the ledger on disk, writes the files exactly as `meterroot
batch` does (sinks.batch_outputs) and commits the ledger last (sinks.run_commit.commit_run).

A cut written twice is the same cut: a writer restored from a checkpoint taken before batch B was
committed cuts B again; `cut_batch(..., batch=B)` then recomputes B from the ledger as it stood
before B, checks it against the committed root and writes nothing.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from settlement.dedup import KEY, key_hashes
from settlement.errors import InvariantBroken
from settlement.events import EVENT_SCHEMA, SETTLED_EVENT_SCHEMA
from settlement.ledger import LedgerHead, check_continuation
from settlement.manifest import CATEGORIES
from settlement.stream_records import FileRead, Pane, Quarantined, merge_digests
from settlement.tariff import Tariff
from settlement.token_ids import TokenIds
from settlement.transition import Chain, Ledger, settle_cut
from sinks import atomic
from sinks.batch_outputs import concat_quarantine, staging_dir, write_batch_files, write_settled_events
from sinks import layout
from sinks.ledger_store import LedgerStore

WRITER_KEY = "ledger"
"""The one key of the writer: one output directory has one ledger and one writer."""
RUN_FILE = layout.RUN_FILE
LATE_DIR = layout.late_dir(Path("")).name
RESOLVED = ("accepted", "duplicates", "quarantined")
"""What a cut makes of each record it settles (with too_late, every record read ends in one)."""
STREAM_CATEGORIES = CATEGORIES + ("too_late",)


@dataclass(frozen=True)
class LedgerTarget:
    """Where and for whom the stream settles."""

    out: str
    """The output directory (its ledger/ continues across runs, batch and stream alike)."""
    tariff: Tariff
    """The tariff every batch is priced with."""
    chain_id: int
    """Chain id the leaves name."""
    registry: str
    """Registry address (EIP-55) the leaves name."""
    run_id: str
    """Names this run in run.json, so the driver knows the file is this run's."""
    probes: tuple[str, ...] = ()
    """Globs of probe records (SPEC §14), read again at every cut: what is new settles with it."""
    token_ids: TokenIds | None = None
    """The consumer -> Counter NFT id mapping the source validates with (`bad_token_id`); its
    digest is recorded in each manifest and run.json."""


@dataclass(frozen=True)
class CutOutcome:
    """What one cut did."""

    batch: int | None
    """The batch appended, or None when nothing new was settled (all duplicates or quarantined)."""
    counts: dict
    """{source: {accepted, duplicates, quarantined}} of the records the cut resolved."""
    epochs: tuple[int, ...]
    """Epochs of the panes cut."""
    message: str


# ----------------------------------------------------------------------------------- the cut

class SettledKeys:
    """Hashes of the (provider, event_id) of every event a ledger has settled, kept in step with
    its head by reading only the batches added since the last look: a cut finds which of its
    keys may have been settled before without scanning the whole history, by a binary search
    per event in a sorted array (8 bytes a settled event), not a join against every settled key.
    A hash that matches is only a candidate: the settled copies of the candidates are read from
    the ledger and compared by their exact key (settlement.dedup.resolve). A cache of files on
    disk, not state: a new writer rebuilds it from the ledger."""

    def __init__(self, out: str):
        self.out = Path(out)
        self._reset()

    def _reset(self) -> None:
        self.batch = 0
        self.root = None
        self.hashes = np.empty(0, dtype=np.uint64)

    def through(self, head: LedgerHead | None) -> np.ndarray:
        """The sorted key hashes of the batches through `head`."""
        settled = head.batch if head else 0
        if settled < self.batch or (self.batch and head.roots.get(self.batch) != self.root):
            self._reset()  # the ledger was replaced under us: read it again
        added = [pq.read_table(path, columns=list(KEY), partitioning=None)
                 for batch in range(self.batch + 1, settled + 1)
                 for path in sorted(layout.events_dir(self.out, batch).glob("*.parquet"))]
        if added:
            new = np.sort(key_hashes(pa.concat_tables([t.cast(KEY_SCHEMA) for t in added])))
            self.hashes = np.insert(self.hashes, np.searchsorted(self.hashes, new), new)
        self.batch = settled
        self.root = head.roots.get(settled) if head else None
        return self.hashes

    def candidates(self, head: LedgerHead | None, events: pa.Table) -> pa.Table:
        """The keys of `events` whose hash a settled key has (all settled keys among them)."""
        settled = self.through(head)
        keys = events.select(list(KEY))
        if not len(settled) or not keys.num_rows:
            return keys.slice(0, 0)
        hashes = key_hashes(keys)
        at = np.minimum(np.searchsorted(settled, hashes), len(settled) - 1)
        return keys.filter(pa.array(settled[at] == hashes))


KEY_SCHEMA = pa.schema([("provider", pa.string()), ("event_id", pa.string())])


def settled_copies(store: LedgerStore, head: LedgerHead | None, events: pa.Table,
                   known: SettledKeys, before: int | None = None) -> pa.Table | None:
    """The settled events (SETTLED_EVENT_SCHEMA) with a (provider, event_id) of `events`, of the
    batches before `before` (default: all); None when there is none (the common case, answered
    from `known` without reading events)."""
    if not events.num_rows:
        return None
    seen = known.candidates(head, events)
    if not seen.num_rows:
        return None
    last = head.batch if before is None else before - 1
    files = [str(path) for b in range(1, last + 1)
             for path in sorted(layout.events_dir(store.out, b).glob("*.parquet"))]
    if not files:
        return None
    dataset = ds.dataset(files, format="parquet", schema=SETTLED_EVENT_SCHEMA)
    return dataset.to_table(filter=ds.field("event_id").isin(pc.unique(seen.column("event_id"))))


def ledger_before(store: LedgerStore, head: LedgerHead | None, batch: int, events: pa.Table,
                  known: SettledKeys) -> Ledger:
    """The ledger as it stood before `batch` (batch - 1 = HEAD for a new cut), as much as a cut of
    `events` reads."""
    settled = batch - 1
    return Ledger(batch=settled, settled=settled_copies(store, head, events, known, before=batch),
                  quantities=store._snapshot("settled_quantities", settled),
                  cumulative=store._snapshot("cumulative", settled))


def _count(table: pa.Table, category: str, counts: dict) -> None:
    if not table.num_rows:
        return
    grouped = table.group_by(["source"]).aggregate([([], "count_all")])
    for source, n in zip(grouped.column("source").to_pylist(), grouped.column("count_all").to_pylist()):
        counts.setdefault(source, dict.fromkeys(RESOLVED, 0))[category] += n


def cut_batch(target: LedgerTarget, panes: list[Pane], quarantined: list[Quarantined],
              known: SettledKeys | None = None, batch: int | None = None) -> CutOutcome:
    """Settle `panes` and `quarantined` as the next batch of the ledger, ledger head last.

    `batch`: the number the writer expects this cut to get (its checkpointed state). When the
    ledger already holds it, the cut is a replay after a restore: it is recomputed against the
    ledger before it, must give the committed root, and nothing is written."""
    from sinks.run_commit import commit_run  # the batch job's commit path, shared

    out, tariff = Path(target.out), target.tariff
    store = LedgerStore(out)
    head = store.head()
    check_continuation(head, tariff.epoch_seconds, target.chain_id, target.registry, str(store.root))
    settled = head.batch if head else 0
    known = known or SettledKeys(target.out)
    # in any order: the transition puts them in record order once (settlement.dedup.resolve)
    events = pa.concat_tables([p.events for p in panes]) if panes else EVENT_SCHEMA.empty_table()
    epochs = tuple(sorted({p.epoch for p in panes}))
    if batch is not None and batch <= settled:
        return _replayed_cut(target, store, head, batch, events, quarantined, known, epochs)
    store.discard_unfinished(head)
    shutil.rmtree(staging_dir(out), ignore_errors=True)

    chain = Chain(target.chain_id, target.registry)
    cut, _ = settle_cut(ledger_before(store, head, settled + 1, events, known), events, tariff, chain)
    quarantine = concat_quarantine([q.table for q in quarantined] + [cut.quarantined])
    counts = _cut_counts(cut, quarantine)
    if cut.settled is not None:
        write_settled_events(out, cut.batch, 0, cut.accepted)
        write_batch_files(cut.settled, out)
        if target.probes:  # probes ride on a cut as on a batch: settled once, later copies duplicates
            _settle_probes_of_cut(target, settled)
    staged = [[source, category, n] for source, per in sorted(counts.items())
              for category, n in [("read", sum(per.values())), *per.items()]]
    digests = dict(merge_digests(*(p.digests for p in panes), *(q.digests for q in quarantined)))
    atomic.write_json(staging_dir(out) / "counts.json", staged)
    atomic.write_json(staging_dir(out) / "digests.json", digests)
    atomic.write_parquet(staging_dir(out) / "quarantine.parquet", quarantine)
    result = commit_run(out, sorted(counts), tariff, head, settled + 1, target.chain_id,
                        target.registry, store, token_ids_hash=target.token_ids.hash if target.token_ids else None)
    return CutOutcome(batch=result.batch, counts=counts, epochs=epochs, message=result.run["message"])


def _settle_probes_of_cut(target: LedgerTarget, settled: int) -> None:
    from apache_beam.io.filesystems import FileSystems

    from sinks.availability_files import settle_probes
    paths = sorted({m.path for pattern in target.probes for m in FileSystems.match([pattern])[0].metadata_list})
    if paths:
        settle_probes(Path(target.out), paths, target.tariff.epoch_seconds, settled, settled + 1,
                      staging_dir(Path(target.out)))


def _cut_counts(cut, quarantine: pa.Table) -> dict:
    counts: dict = {}
    _count(cut.accepted, "accepted", counts)
    _count(cut.duplicates, "duplicates", counts)
    _count(quarantine, "quarantined", counts)
    return counts


def _replayed_cut(target: LedgerTarget, store: LedgerStore, head: LedgerHead, batch: int,
                  events: pa.Table, quarantined: list[Quarantined], known: SettledKeys,
                  epochs: tuple[int, ...]) -> CutOutcome:
    chain = Chain(target.chain_id, target.registry)
    cut, _ = settle_cut(ledger_before(store, head, batch, events, known), events, target.tariff, chain)
    if cut.settled is None or cut.settled.root != head.roots.get(batch):
        raise InvariantBroken(
            f"a restored stream cut batch {batch} again and got root "
            f"{cut.settled.root if cut.settled else None}, but the ledger committed "
            f"{head.roots.get(batch)}: the replay after the restore saw other data than the first "
            "run; the ledger is unchanged")
    quarantine = concat_quarantine([q.table for q in quarantined] + [cut.quarantined])
    return CutOutcome(batch=batch, counts=_cut_counts(cut, quarantine), epochs=epochs,
                      message=f"batch {batch} was committed before the restore: the same cut, "
                              "not written again")


# ------------------------------------------------------------------------------ the run's tally

@dataclass
class StreamTally:
    """The accounting of one stream run: what run.json says."""

    files: dict = field(default_factory=dict)
    """{path: FileRead} of every file the source read."""
    resolved: dict = field(default_factory=dict)
    """{path: {accepted, duplicates, quarantined}} over every cut."""
    batches: list = field(default_factory=list)
    """Batches appended by this run, in order."""
    cuts: int = 0
    """Cuts made (a cut that settles nothing new appends no batch)."""
    late_files: set = field(default_factory=set)
    """Names of the OUT/late/ files written, where the engine names them per block (Flink);
    empty: one file per input file, named by late_file_name."""

    def add_cut(self, outcome: CutOutcome) -> None:
        self.cuts += 1
        if outcome.batch is not None:
            self.batches.append(outcome.batch)
        for source, per in outcome.counts.items():
            mine = self.resolved.setdefault(source, dict.fromkeys(RESOLVED, 0))
            for category, n in per.items():
                mine[category] += n

    def inputs(self) -> list[dict]:
        rows = []
        for path in sorted(set(self.files) | set(self.resolved)):
            seen = self.files.get(path)
            resolved = self.resolved.get(path, dict.fromkeys(RESOLVED, 0))
            read = seen.read if seen else 0
            too_late = seen.too_late if seen else 0
            rows.append({"path": path, "sha256": seen.sha256 if seen else "", "read": read, **resolved,
                         "too_late": too_late,
                         "pending": read - too_late - sum(resolved.values())})
        return rows

    def run_json(self, target: LedgerTarget, finished: bool) -> dict:
        inputs = self.inputs()
        totals = {c: sum(row[c] for row in inputs) for c in STREAM_CATEGORIES + ("pending",)}
        late_files = sorted(f"{LATE_DIR}/{name}" for name in self.late_files) or sorted(
            f"{LATE_DIR}/{late_file_name(f.path, f.sha256)}" for f in self.files.values() if f.too_late)
        unreadable = [{"path": f.path, "error": f.error} for _, f in sorted(self.files.items()) if f.error]
        message = (f"stream {'ended' if finished else 'running'}: {len(self.batches)} batches appended"
                   f" ({', '.join(map(str, self.batches)) or 'none'}), {totals['too_late']} events past the "
                   f"allowed lateness in {LATE_DIR}/")
        return {"mode": "stream", "run_id": target.run_id, "finished": finished, **totals,
                "batch": self.batches[-1] if self.batches else None, "batches": list(self.batches),
                "cuts": self.cuts, "inputs": inputs, "late_files": late_files, "unreadable": unreadable,
                "message": message, "tariff_hash": target.tariff.hash,
                **({"token_ids_hash": target.token_ids.hash} if target.token_ids else {})}


def write_run(target: LedgerTarget, tally: StreamTally, finished: bool) -> None:
    atomic.write_json(layout.run_path(Path(target.out)), tally.run_json(target, finished))


def late_file_name(path: str, sha256: str) -> str:
    """OUT/late/ name of the too-late events of input `path`: fixed by the input, so a rerun
    rewrites the same file."""
    stem = PurePosixPath(path.replace("\\", "/")).name.split(".")[0] or "usage"
    return f"{stem}-{sha256[:12]}.jsonl"


def late_block_name(path: str, sha256: str, epoch: int, shard: int) -> str:
    """OUT/late/ name of one block of too-late events (an input file's events of one epoch and
    shard): fixed by the input, so a replay after a restore rewrites the same file."""
    return f"{late_file_name(path, sha256).removesuffix('.jsonl')}-e{epoch}-s{shard}.jsonl"


def late_event_lines(events: pa.Table) -> bytes:
    """Usage events (SPEC §1) as JSON lines, with where each came from."""
    lines = []
    for row in events.sort_by([("record_no", "ascending")]).to_pylist():
        record = {"event_id": row["event_id"], "provider": row["provider"], "node_id": row["node_id"],
                  "consumer": row["consumer"], "contract": row["contract"], "unit": row["unit"],
                  "quantity": row["quantity"], "timestamp": row["timestamp_ms"],
                  "source_file": row["source"], "source_record": row["record_no"]}
        if row["token_id"] is not None:
            record["token_id"] = int(row["token_id"])
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()
