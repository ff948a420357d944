"""Epoch windows and batch cuts on the DirectRunner, driven by TestStream watermarks.

The events go through the real decoding and validation; TestStream stands in for the feed's
watermark, so each test says exactly when an epoch closes and which data comes late.
"""
from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from settlement.tariff import load_tariff
from settlement.validation import validate
from transforms.decoding import JsonLinesDecoder
from transforms.stream_batches import LedgerTarget, StreamBatches
from transforms.watch_source import FILES, QUARANTINED, TOO_LATE, FileRead, split_by_epoch
from transforms.windowing import EpochEvents, EpochPanes, EpochWindowing

from tests.streaming.scenario import (CHAIN_ID, CONSUMER_X, PROVIDER_A, REGISTRY, event,
                                      lines_by_batch, manifest, run_json, write_tariff)

DIRECT = ["--runner=DirectRunner", "--streaming"]
WINDOWING = EpochWindowing(epoch_seconds=60, allowed_lateness_seconds=60)
TAGS = ("events", QUARANTINED, TOO_LATE, FILES)


@pytest.fixture
def tariff_path(tmp_path):
    return write_tariff(tmp_path)


def epoch_parts(tariff, source: str, events: list[dict]) -> list:
    """Events as the feed emits them: validated, split by epoch, stamped with event time."""
    raw = JsonLinesDecoder().decode(pa.array([json.dumps(e) for e in events]), source, 1)
    validated = validate(raw, tariff)
    return [window.TimestampedValue(EpochEvents(epoch, part, ((source, "0" * 64),)),
                                    Timestamp(micros=max(part.column("timestamp_ms").to_pylist()) * 1000))
            for epoch, part in split_by_epoch(validated.events)]


class Script:
    """A TestStream with the feed's four outputs, advanced together."""

    def __init__(self, tariff):
        self.tariff = tariff
        self.stream = test_stream.TestStream(output_tags=set(TAGS))

    def file(self, source: str, events: list[dict]) -> "Script":
        self.stream = self.stream.add_elements(epoch_parts(self.tariff, source, events), tag="events")
        self.stream = self.stream.add_elements([FileRead(source, "0" * 64, len(events), 0)], tag=FILES)
        return self

    def watermark(self, seconds: int) -> "Script":
        for tag in TAGS:
            self.stream = self.stream.advance_watermark_to(seconds, tag=tag)
        return self

    def end(self) -> test_stream.TestStream:
        return self.stream.advance_watermark_to_infinity()


def describe(pane):
    return pane.epoch, pane.timing, pane.index, sum(pane.events.column("quantity").to_pylist())


def test_epoch_fires_on_time_then_once_per_late_element_with_deltas_only(tariff_path):
    tariff = load_tariff(tariff_path)
    script = (Script(tariff)
              .file("f1", [event("a", 10, 3), event("b", 20, 4)])
              .watermark(61)                                   # epoch 0 closes: on time 3 + 4
              .file("f2", [event("c", 30, 5)])                 # late for epoch 0, within lateness
              .file("f3", [event("d", 40, 6), event("e", 70, 1)])  # late again: a delta of 6
              .watermark(125)                                  # epoch 1 closes; epoch 0's lateness ends
              .end())
    with beam.Pipeline(options=PipelineOptions(DIRECT)) as p:
        panes = (p | script)["events"] | EpochPanes(WINDOWING) | beam.Map(describe)
        assert_that(panes, equal_to([(0, "ON_TIME", 0, 7), (0, "LATE", 1, 5), (0, "LATE", 2, 6),
                                     (1, "ON_TIME", 0, 1)]))


def test_late_pane_rides_on_the_next_batch_priced_after_the_settled_quantity(tmp_path, tariff_path):
    tariff = load_tariff(tariff_path)
    out = tmp_path / "out"
    script = (Script(tariff)
              .file("f1", [event("a", 10, 4), event("b", 20, 4)])
              .watermark(61)                       # batch 1: epoch 0, 8 requests
              .file("f2", [event("c", 30, 5)])     # late for epoch 0: waits for the next batch
              .file("f3", [event("d", 70, 1)])
              .watermark(121)                      # batch 2: epoch 1 on time + epoch 0's late pane
              .end())
    target = LedgerTarget(str(out), tariff, CHAIN_ID, REGISTRY, run_id="test")
    with beam.Pipeline(options=PipelineOptions(DIRECT)) as p:
        p | script | StreamBatches(target, WINDOWING)

    # Epoch 0: 8 requests at 100 wei; 5 late ones continue the tiers at 9..13: 2 x 100 + 3 x 10.
    assert lines_by_batch(out) == {
        1: [(0, CONSUMER_X, PROVIDER_A, 8, 800)],
        2: [(0, CONSUMER_X, PROVIDER_A, 5, 230), (1, CONSUMER_X, PROVIDER_A, 1, 100)],
    }
    assert [manifest(out, b)["epochs"] for b in (1, 2)] == [[0], [0, 1]]
    assert manifest(out, 2)["total"] == "330"
    run = run_json(out)
    assert (run["read"], run["accepted"], run["batches"], run["pending"]) == (4, 4, [1, 2], 0)


def test_epochs_closed_together_are_cut_in_epoch_order(tmp_path, tariff_path):
    tariff = load_tariff(tariff_path)
    out = tmp_path / "out"
    script = (Script(tariff)
              .file("f1", [event("c", 130, 1), event("a", 10, 1), event("b", 70, 1)])
              .end())
    target = LedgerTarget(str(out), tariff, CHAIN_ID, REGISTRY, run_id="test")
    with beam.Pipeline(options=PipelineOptions(DIRECT)) as p:
        p | script | StreamBatches(target, WINDOWING)
    assert [manifest(out, b)["epochs"] for b in (1, 2, 3)] == [[0], [1], [2]]


def test_data_is_too_late_once_the_watermark_reaches_the_end_of_lateness():
    closes = WINDOWING.closes_at(0)  # epoch 0 ends at 60 s and takes late data for 60 s more
    assert closes == Timestamp(micros=120_000_000 - 1)
    assert not WINDOWING.too_late(0, None)
    assert not WINDOWING.too_late(0, Timestamp(micros=119_999_000))
    assert WINDOWING.too_late(0, Timestamp(seconds=120))
    assert not WINDOWING.too_late(1, Timestamp(seconds=120))


def test_a_watermark_step_fires_panes_when_it_crosses_an_epoch_end_or_a_lateness_end():
    assert WINDOWING.fires_between(None, Timestamp(seconds=5))
    assert not WINDOWING.fires_between(Timestamp(seconds=5), Timestamp(seconds=59))
    assert WINDOWING.fires_between(Timestamp(seconds=59), Timestamp(seconds=60))
    late = EpochWindowing(epoch_seconds=60, allowed_lateness_seconds=30)
    assert late.fires_between(Timestamp(seconds=61), Timestamp(seconds=91))  # epoch 0 stops taking data
    assert not late.fires_between(Timestamp(seconds=91), Timestamp(seconds=119))
