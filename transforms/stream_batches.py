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

from settlement.stream_records import FileRead, Pane, Quarantined, TooLate
from sinks import atomic
from sinks.stream_ledger import (LATE_DIR, RUN_FILE, WRITER_KEY, CutOutcome, LedgerTarget,  # noqa: F401
                                 SettledKeys, StreamTally, cut_batch, late_event_lines,
                                 late_file_name, write_run)
from transforms.windowing import EpochPanes, EpochWindowing

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
