"""StreamBatches: the one writer of a streaming ledger — epoch panes in, settlement batches out.

A batch is cut each time an epoch's on-time pane fires (SPEC §9); it carries that pane, every
late pane fired since the previous batch and the records quarantined since. The cut is the same
settlement as a batch run: dedup against the ledger's settled events (settlement.dedup), price
against its settled quantities (settlement.pricing), build the tree (settlement.batch), write
the files exactly as `meterroot batch` does (sinks.batch_outputs) and commit the ledger last
(sinks.run_commit.commit_run). So `chain commit`, `validate` and `query` read streaming output
unchanged, and a stream killed at any point restarts from the last committed batch.

One writer: everything is keyed to a single key of a stateful DoFn in the global window, whose
state (panes waiting for a cut, the run's accounting) lives in the runner's state backend. Cuts
wait on an event-time timer at the pane's timestamp, so panes that fire together are cut in
epoch order. When the input ends (watermark at the end of time) everything left is cut.

Data past the allowed lateness never reaches a window: `WriteLateEvents` writes it to
OUT/late/<file>-<digest>.jsonl, one file per input file, as usage events a later
`meterroot batch --input 'OUT/late/*.jsonl'` settles.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from apache_beam.coders import PickleCoder
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (BagStateSpec, ReadModifyWriteStateSpec, TimerSpec,
                                              on_timer)
from apache_beam.utils.timestamp import Duration

from settlement.batch import settle_batch
from settlement.dedup import KEY, resolve
from settlement.events import EVENT_SCHEMA, SETTLED_EVENT_SCHEMA
from settlement.ledger import LedgerHead, check_continuation
from settlement.manifest import CATEGORIES
from settlement.pricing import aggregate_usage, price_usage
from settlement.tariff import Tariff
from sinks import atomic
from sinks.batch_outputs import (concat_quarantine, settled_events_table, staging_dir,
                                 write_batch_files)
from sinks.ledger_store import LedgerStore, batch_dir
from transforms.watch_source import FileRead, Quarantined, TooLate
from transforms.windowing import EpochPanes, EpochWindowing, Pane, merge_digests, sorted_events

WRITER_KEY = "ledger"
"""The one key of the writer: one output directory has one ledger and one writer."""
RUN_FILE = "run.json"
LATE_DIR = "late"
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
    """(provider, event_id) of every event a ledger has settled, kept in step with its head by
    reading only the batches added since the last look: a cut finds which of its keys were
    settled before without scanning the whole history. A cache of files on disk, not state:
    a new writer rebuilds it from the ledger."""

    def __init__(self, out: str):
        self.out = Path(out)
        self._reset()

    def _reset(self) -> None:
        self.batch = 0
        self.root = None
        self.keys = pa.table({"provider": pa.array([], pa.string()), "event_id": pa.array([], pa.string())})

    def through(self, head: LedgerHead | None) -> pa.Table:
        settled = head.batch if head else 0
        if settled < self.batch or (self.batch and head.roots.get(self.batch) != self.root):
            self._reset()  # the ledger was replaced under us: read it again
        added = [pq.read_table(path, columns=list(KEY), partitioning=None)
                 for batch in range(self.batch + 1, settled + 1)
                 for path in sorted(batch_dir(self.out, "events", batch).glob("*.parquet"))]
        if added:
            self.keys = pa.concat_tables([self.keys, *(t.cast(self.keys.schema) for t in added)])
        self.batch = settled
        self.root = head.roots.get(settled) if head else None
        return self.keys


def settled_copies(store: LedgerStore, head: LedgerHead | None, events: pa.Table,
                   known: SettledKeys) -> pa.Table | None:
    """The settled events (SETTLED_EVENT_SCHEMA) with a (provider, event_id) of `events`; None
    when there is none (the common case, answered from `known` without reading events)."""
    if not events.num_rows:
        return None
    seen = known.through(head).join(events.select(list(KEY)), keys=list(KEY), join_type="left semi")
    if not seen.num_rows:
        return None
    dataset = ds.dataset(store.settled_event_files(head), format="parquet", schema=SETTLED_EVENT_SCHEMA)
    return dataset.to_table(filter=ds.field("event_id").isin(pc.unique(seen.column("event_id"))))


def _count(table: pa.Table, category: str, counts: dict) -> None:
    if not table.num_rows:
        return
    grouped = table.group_by(["source"]).aggregate([([], "count_all")])
    for source, n in zip(grouped.column("source").to_pylist(), grouped.column("count_all").to_pylist()):
        counts.setdefault(source, dict.fromkeys(RESOLVED, 0))[category] += n


def cut_batch(target: LedgerTarget, panes: list[Pane], quarantined: list[Quarantined],
              known: SettledKeys | None = None) -> CutOutcome:
    """Settle `panes` and `quarantined` as the next batch of the ledger, ledger head last."""
    from sinks.run_commit import commit_run  # the batch job's commit path, shared

    out, tariff = Path(target.out), target.tariff
    store = LedgerStore(out)
    head = store.head()
    check_continuation(head, tariff.epoch_seconds, target.chain_id, target.registry, str(store.root))
    store.discard_unfinished(head)
    shutil.rmtree(staging_dir(out), ignore_errors=True)
    batch = (head.batch if head else 0) + 1

    events = sorted_events([p.events for p in panes]) if panes else EVENT_SCHEMA.empty_table()
    known = known or SettledKeys(target.out)
    resolved = resolve(events, settled_copies(store, head, events, known)) if events.num_rows else None
    accepted = resolved.accepted if resolved else EVENT_SCHEMA.empty_table()
    quarantine = concat_quarantine([q.table for q in quarantined]
                                   + ([resolved.quarantined] if resolved else []))
    counts: dict = {}
    _count(accepted, "accepted", counts)
    if resolved:
        _count(resolved.duplicates, "duplicates", counts)
    _count(quarantine, "quarantined", counts)

    if accepted.num_rows:
        prior_quantities = store.settled_quantities(head)
        lines = price_usage(aggregate_usage(accepted), prior_quantities, tariff, batch)
        settled = settle_batch(lines, batch, target.chain_id, target.registry, tariff.treasury,
                               prior_quantities, store.cumulative(head))
        atomic.write_parquet(batch_dir(out, "events", batch) / "part-0000.parquet",
                             settled_events_table(accepted, batch))
        write_batch_files(settled, out)
    staged = [[source, category, n] for source, per in sorted(counts.items())
              for category, n in [("read", sum(per.values())), *per.items()]]
    digests = dict(merge_digests(*(p.digests for p in panes), *(q.digests for q in quarantined)))
    atomic.write_json(staging_dir(out) / "counts.json", staged)
    atomic.write_json(staging_dir(out) / "digests.json", digests)
    atomic.write_parquet(staging_dir(out) / "quarantine.parquet", quarantine)
    result = commit_run(out, sorted(counts), tariff, head, batch, target.chain_id, target.registry, store)
    return CutOutcome(batch=result.batch, counts=counts,
                      epochs=tuple(sorted({p.epoch for p in panes})), message=result.run["message"])


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
        late_files = sorted(f"{LATE_DIR}/{late_file_name(f.path, f.sha256)}"
                            for f in self.files.values() if f.too_late)
        unreadable = [{"path": f.path, "error": f.error} for _, f in sorted(self.files.items()) if f.error]
        message = (f"stream {'ended' if finished else 'running'}: {len(self.batches)} batches appended"
                   f" ({', '.join(map(str, self.batches)) or 'none'}), {totals['too_late']} events past the "
                   f"allowed lateness in {LATE_DIR}/")
        return {"mode": "stream", "run_id": target.run_id, "finished": finished, **totals,
                "batch": self.batches[-1] if self.batches else None, "batches": list(self.batches),
                "cuts": self.cuts, "inputs": inputs, "late_files": late_files, "unreadable": unreadable,
                "message": message, "tariff_hash": target.tariff.hash}


def write_run(target: LedgerTarget, tally: StreamTally, finished: bool) -> None:
    atomic.write_json(Path(target.out) / RUN_FILE, tally.run_json(target, finished))


# ----------------------------------------------------------------------------------- the writer

class CutBatches(beam.DoFn):
    """(WRITER_KEY, Pane | Quarantined | FileRead) -> batches on disk; emits each CutOutcome."""

    PANES = BagStateSpec("panes", PickleCoder())
    QUARANTINED = BagStateSpec("quarantined", PickleCoder())
    TALLY = ReadModifyWriteStateSpec("tally", PickleCoder())
    NEXT_CUT = ReadModifyWriteStateSpec("next_cut", PickleCoder())
    CUT = TimerSpec("cut", TimeDomain.WATERMARK)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def __init__(self, target: LedgerTarget, windowing: EpochWindowing):
        self.target = target
        self.windowing = windowing

    def setup(self):
        self.known = SettledKeys(self.target.out)

    def process(self, keyed, panes=beam.DoFn.StateParam(PANES),
                quarantined=beam.DoFn.StateParam(QUARANTINED), tally=beam.DoFn.StateParam(TALLY),
                next_cut=beam.DoFn.StateParam(NEXT_CUT), cut=beam.DoFn.TimerParam(CUT),
                end=beam.DoFn.TimerParam(END)):
        _, item = keyed
        end.set(window.GlobalWindow().max_timestamp())
        if isinstance(item, Pane):
            panes.add(item)
            if item.on_time:
                due = self.windowing.cut_time(item.epoch)
                scheduled = next_cut.read()
                if scheduled is None or due < scheduled:
                    cut.set(due)
                    next_cut.write(due)
        elif isinstance(item, Quarantined):
            quarantined.add(item)
        elif isinstance(item, FileRead):
            current = tally.read() or StreamTally()
            current.files[item.path] = item
            tally.write(current)
        else:
            raise TypeError(f"the stream writer got a {type(item).__name__}")

    @on_timer(CUT)
    def on_cut(self, fired=beam.DoFn.TimestampParam, panes=beam.DoFn.StateParam(PANES),
               quarantined=beam.DoFn.StateParam(QUARANTINED), tally=beam.DoFn.StateParam(TALLY),
               next_cut=beam.DoFn.StateParam(NEXT_CUT), cut=beam.DoFn.TimerParam(CUT)):
        waiting = list(panes.read())
        late = [p for p in waiting if not p.on_time]
        on_time = [p for p in waiting if p.on_time]
        # A runner may keep timers to the millisecond; cut times are whole seconds apart.
        due_by = fired + Duration(micros=1000)
        due = [p for p in on_time if self.windowing.cut_time(p.epoch) < due_by]
        later = [p for p in on_time if self.windowing.cut_time(p.epoch) >= due_by]
        yield from self._cut(due, late, quarantined, tally, finished=False)
        panes.clear()
        for pane in later + ([] if due else late):  # late panes wait for an on-time one
            panes.add(pane)
        if later:
            upcoming = min(self.windowing.cut_time(p.epoch) for p in later)
            cut.set(upcoming)
            next_cut.write(upcoming)
        else:
            next_cut.clear()

    @on_timer(END)
    def on_end(self, panes=beam.DoFn.StateParam(PANES), quarantined=beam.DoFn.StateParam(QUARANTINED),
               tally=beam.DoFn.StateParam(TALLY), next_cut=beam.DoFn.StateParam(NEXT_CUT)):
        waiting = list(panes.read())
        on_time = [p for p in waiting if p.on_time]
        late = [p for p in waiting if not p.on_time]
        yield from self._cut(on_time, late, quarantined, tally, finished=True)
        panes.clear()
        next_cut.clear()

    def _cut(self, due: list[Pane], late: list[Pane], quarantined, tally, finished: bool):
        """One batch per due on-time pane, in epoch order; late panes and quarantined records
        ride on the first. With `finished`, what is left without an on-time pane is cut too."""
        held = list(quarantined.read())
        current = tally.read() or StreamTally()
        groups = [[pane] for pane in sorted(due, key=lambda p: p.epoch)]
        if groups:
            groups[0] = late + groups[0]
        elif finished and (late or held):
            groups = [late]
        for number, group in enumerate(groups):
            outcome = cut_batch(self.target, group, held if number == 0 else [], self.known)
            current.add_cut(outcome)
            write_run(self.target, current, finished=False)
            yield outcome
        if groups:
            quarantined.clear()
        if finished:
            write_run(self.target, current, finished=True)
        tally.write(current)


# ----------------------------------------------------------------------------- late events

def late_file_name(path: str, sha256: str) -> str:
    """OUT/late/ name of the too-late events of input `path`: fixed by the input, so a rerun
    rewrites the same file."""
    stem = PurePosixPath(path.replace("\\", "/")).name.split(".")[0] or "usage"
    return f"{stem}-{sha256[:12]}.jsonl"


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


class WriteLateEvents(beam.DoFn):
    """TooLate -> OUT/late/<file>-<digest>.jsonl, written atomically."""

    def __init__(self, out: str):
        self.out = out

    def process(self, late: TooLate):
        target = Path(self.out) / LATE_DIR / late_file_name(late.path, late.sha256)
        atomic.write_bytes(target, late_event_lines(late.events))
        yield str(target)


# -------------------------------------------------------------------------------- the wiring

class StreamBatches(beam.PTransform):
    """ReadUsageStream's outputs -> epoch panes -> batches (and OUT/late/ files).
    Returns the CutOutcome of every cut."""

    def __init__(self, target: LedgerTarget, windowing: EpochWindowing):
        super().__init__()
        self.target = target
        self.windowing = windowing

    def expand(self, read):
        panes = read["events"] | "EpochPanes" >> EpochPanes(self.windowing)
        read["too_late"] | "WriteLateEvents" >> beam.ParDo(WriteLateEvents(self.target.out))
        to_writer = [
            panes | "PanesToWriter" >> beam.WindowInto(window.GlobalWindows()),
            read["quarantined"] | "QuarantinedToWriter" >> beam.WindowInto(window.GlobalWindows()),
            read["files"] | "FilesToWriter" >> beam.WindowInto(window.GlobalWindows()),
        ]
        return (to_writer
                | "WriterInput" >> beam.Flatten()
                | "OneWriter" >> beam.Map(lambda item: (WRITER_KEY, item))
                | "CutBatches" >> beam.ParDo(CutBatches(self.target, self.windowing)))
