"""Epoch windows in event time (SPEC §9): an epoch is a FixedWindows(epoch_seconds) window; it
fires once when the watermark passes its end (the on-time pane) and again for every late
element within the allowed lateness (late panes, discarding: each carries only its delta).

Beam drops data later than the allowed lateness at the GroupByKey, silently, and no DoFn
downstream of a source can read the watermark to catch it first. So the source that owns the
watermark routes it (`EpochWindowing.too_late`), with the same arithmetic the runner uses, one
microsecond on the safe side: what the source passes on is never dropped downstream.
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming

from settlement.errors import InvariantBroken
from settlement.stream_records import LATE, ON_TIME, Pane, merge_digests, sorted_events  # noqa: F401 (re-exported)

MICROS = 1_000_000


@dataclass(frozen=True)
class EpochWindowing:
    """The windowing of a stream: epoch length and allowed lateness, both in whole seconds."""

    epoch_seconds: int
    """Length of an epoch (the tariff's epoch_seconds): the window size."""
    allowed_lateness_seconds: int
    """How long after its end an epoch still takes late data into late panes."""

    def epoch_start(self, epoch: int) -> Timestamp:
        return Timestamp(micros=epoch * self.epoch_seconds * MICROS)

    def window_end(self, epoch: int) -> Timestamp:
        return Timestamp(micros=(epoch + 1) * self.epoch_seconds * MICROS)

    def cut_time(self, epoch: int) -> Timestamp:
        """When the epoch's batch is due: the last millisecond of its window, at or before its
        panes' timestamp (Beam's end of window less 1 µs; Prism counts in milliseconds)."""
        return self.window_end(epoch) - Duration(micros=1000)

    def closes_at(self, epoch: int) -> Timestamp:
        """The last watermark at which the epoch's window still takes data."""
        return self.window_end(epoch) - Duration(micros=1) + Duration(seconds=self.allowed_lateness_seconds)

    def too_late(self, epoch: int, watermark: Timestamp | None) -> bool:
        """Whether data of `epoch` arriving at `watermark` is past the allowed lateness.
        Beam drops it when closes_at < watermark; equality is routed too, to be safe."""
        return watermark is not None and self.closes_at(epoch) <= watermark

    def fires_between(self, old: Timestamp | None, new: Timestamp) -> bool:
        """Whether moving the watermark from `old` to `new` fires an on-time pane or ends an
        epoch's lateness: then the runner has panes to fire before more data should come."""
        if old is None:
            return True
        size = self.epoch_seconds * MICROS
        lateness = self.allowed_lateness_seconds * MICROS
        return (new.micros // size > old.micros // size
                or (new.micros - lateness) // size > (old.micros - lateness) // size)

    def window_into(self) -> beam.WindowInto:
        return beam.WindowInto(
            window.FixedWindows(self.epoch_seconds),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=Duration(seconds=self.allowed_lateness_seconds),
        )


@dataclass(frozen=True)
class EpochEvents:
    """Accepted events of one epoch from one read, stamped with an event time inside the epoch."""

    epoch: int
    """The epoch every event of `events` falls in."""
    events: pa.Table
    """Validated, normalised events (settlement.events.EVENT_SCHEMA)."""
    digests: tuple[tuple[str, str], ...]
    """(path, sha256) of the files the events were read from."""


class _DescribePane(beam.DoFn):
    """(epoch, [EpochEvents]) of one firing -> Pane."""

    def __init__(self, windowing: EpochWindowing):
        self.windowing = windowing

    def process(self, grouped, pane_window=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        epoch, parts = grouped
        parts = list(parts)
        if pane_window.start != self.windowing.epoch_start(epoch):
            raise InvariantBroken(f"events of epoch {epoch} fired in the window {pane_window}")
        timing = PaneInfoTiming.to_string(pane.timing)
        yield Pane(epoch=epoch, timing=ON_TIME if timing == ON_TIME else LATE, index=pane.index,
                   events=sorted_events([part.events for part in parts]),
                   digests=merge_digests(*(part.digests for part in parts)))


class EpochPanes(beam.PTransform):
    """Timestamped EpochEvents -> Pane per firing of each epoch: on time, then late deltas."""

    def __init__(self, windowing: EpochWindowing):
        super().__init__()
        self.windowing = windowing

    def expand(self, epoch_events):
        return (epoch_events
                | "WindowByEpoch" >> self.windowing.window_into()
                | "KeyByEpoch" >> beam.Map(lambda part: (part.epoch, part))
                | "GroupFiring" >> beam.GroupByKey()
                | "DescribePane" >> beam.ParDo(_DescribePane(self.windowing)))
