"""Spike for `meterroot stream`: epoch windows in event time, on the local runner, Prism and Flink.

One scenario, replayed in arrival order, exercises every kind of pane: the on-time pane fires
when the watermark passes the window end, each late element within the allowed lateness fires
a late pane carrying only itself (discarding), and an element later than that is too late.

Beam drops too-late data at the GroupByKey, and no Python DoFn can read the watermark to catch it
before. So the source that owns the watermark routes it: `ReplayEvents` is a splittable DoFn
whose watermark estimator it sets itself, and it sends an event to `too_late` when the event's
window closed (end + allowed lateness) before the source's watermark. The downstream watermark
never runs ahead of the source's, so an event the source passes on is never dropped downstream.
(A stateful DoFn with an event-time timer per epoch and key, the other way tried, only learns
that a window closed when its own timer fires: the first event of a key that comes too late
passes it and is then dropped, silently, on the DirectRunner and on Prism alike.)
"""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions
from apache_beam.testing import test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger, window
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming

from pipelines.flink_runner import (
    FlinkJobServerMissing,
    PrismMissing,
    find_flink_job_server_jar,
    find_prism_binary,
    flink_pipeline_args,
    flink_version_of,
)
from settlement.errors import UsageError

EPOCH_SECONDS = 60
ALLOWED_LATENESS_SECONDS = 60
# Pause after each watermark step of a replay so that the runner carries the new watermark
# downstream (and fires the panes it closes) before the next events arrive.
WATERMARK_SETTLE_SECONDS = 0.3

# Arrival order: ("event", consumer, quantity, event time in seconds) or ("watermark", seconds).
SCENARIO = (
    ("event", "a", 1, 10),
    ("event", "a", 2, 20),
    ("event", "b", 5, 70),
    ("watermark", 61),  # closes epoch 0: on-time pane a=3
    ("event", "a", 10, 30),  # late for epoch 0, within lateness: late pane a=10
    ("watermark", 100),
    ("event", "a", 100, 40),  # late again: late pane a=100 (a delta, not 110)
    ("watermark", 125),  # closes epoch 1 (b=5) and ends epoch 0's lateness (119.999999)
    ("event", "a", 1000, 50),  # too late for epoch 0
    ("event", "b", 7, 75),  # late for epoch 1, within lateness
    ("event", "c", 9, 15),  # too late, the first event of its key: a per-key timer misses it
)

# (consumer, window start, timing, pane index, quantity)
EXPECTED_PANES = [
    ("a", 0, "ON_TIME", 0, 3),
    ("a", 0, "LATE", 1, 10),
    ("a", 0, "LATE", 2, 100),
    ("b", 60, "ON_TIME", 0, 5),
    ("b", 60, "LATE", 1, 7),
]
# (consumer, quantity, event time in seconds)
EXPECTED_TOO_LATE = [("a", 1000, 50), ("c", 9, 15)]


def window_closes_at(event_seconds: int) -> Timestamp:
    """The last watermark at which the event's epoch window still accepts it."""
    window_end = Timestamp(seconds=(event_seconds // EPOCH_SECONDS + 1) * EPOCH_SECONDS)
    return window_end - Duration(micros=1) + Duration(seconds=ALLOWED_LATENESS_SECONDS)


class _ScriptRestrictions(RestrictionProvider):
    """A replay's restriction: the offsets of the steps still to replay."""

    def initial_restriction(self, script):
        return OffsetRange(0, len(script))

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, script, restriction):
        return restriction.size()

    def split(self, script, restriction):
        yield restriction  # one replay is one ordered stream

    def truncate(self, script, restriction):
        return None  # on drain, the rest of the replay is not read


class ReplayEvents(beam.DoFn):
    """Replays a scenario as an unbounded source that owns its watermark.

    Emits (consumer, quantity) stamped with the event time; events whose window closed before
    the current watermark go to the `too_late` output as (consumer, quantity, event seconds).
    """

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        script,
        tracker=beam.DoFn.RestrictionParam(_ScriptRestrictions()),
        watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ):
        position = tracker.current_restriction().start
        while tracker.try_claim(position):
            kind, *step = script[position]
            position += 1
            if kind == "watermark":
                watermark.set_watermark(Timestamp(seconds=step[0]))
                tracker.defer_remainder(Duration(seconds=WATERMARK_SETTLE_SECONDS))
                return
            consumer, quantity, event_seconds = step
            current = watermark.current_watermark()
            if current is not None and window_closes_at(event_seconds) < current:
                yield beam.pvalue.TaggedOutput("too_late", (consumer, quantity, event_seconds))
            else:
                yield window.TimestampedValue((consumer, quantity), event_seconds)


class DescribePane(beam.DoFn):
    """(consumer, sum) of one pane -> (consumer, window start, timing, pane index, sum)."""

    def process(self, summed, pane_window=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        consumer, quantity = summed
        timing = PaneInfoTiming.to_string(pane.timing)
        yield consumer, int(pane_window.start), timing, pane.index, quantity


class EpochPaneSums(beam.PTransform):
    """Quantity per consumer and epoch: an on-time pane, then one delta pane per late firing."""

    def expand(self, events):
        return (
            events
            | "WindowByEpoch"
            >> beam.WindowInto(
                window.FixedWindows(EPOCH_SECONDS),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=ALLOWED_LATENESS_SECONDS),
            )
            | "SumPerConsumer" >> beam.CombinePerKey(sum)
            | "DescribePane" >> beam.ParDo(DescribePane())
        )


def scenario_stream(script) -> test_stream.TestStream:
    stream = test_stream.TestStream()
    for kind, *step in script:
        if kind == "watermark":
            stream = stream.advance_watermark_to(step[0])
        else:
            consumer, quantity, event_seconds = step
            stream = stream.add_elements(
                [window.TimestampedValue((consumer, quantity), event_seconds)]
            )
    return stream.advance_watermark_to_infinity()


def run_teststream(pipeline_args):
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
        panes = pipeline | "Replay" >> scenario_stream(SCENARIO) | "Sum" >> EpochPaneSums()
        assert_that(panes, equal_to(EXPECTED_PANES))


def run_replay(pipeline_args):
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
        replayed = (
            pipeline
            | "Scenario" >> beam.Create([SCENARIO])
            | "Replay" >> beam.ParDo(ReplayEvents()).with_outputs("too_late", main="events")
        )
        panes = replayed.events | "Sum" >> EpochPaneSums()
        assert_that(panes, equal_to(EXPECTED_PANES), label="Panes")
        assert_that(replayed.too_late, equal_to(EXPECTED_TOO_LATE), label="TooLate")


def test_teststream_on_direct_runner_fires_on_time_and_late_deltas_and_drops_too_late():
    run_teststream(["--runner=DirectRunner", "--streaming"])


def test_teststream_on_prism_gives_the_same_panes(prism_args):
    run_teststream(prism_args)


def test_replay_on_prism_routes_too_late_events_and_gives_the_same_panes(prism_args):
    run_replay(prism_args)


@pytest.mark.slow
def test_replay_on_embedded_flink_routes_too_late_events_and_gives_the_same_panes(flink_args):
    run_replay(flink_args)


def test_missing_flink_job_server_names_make_flink(tmp_path):
    with pytest.raises(FlinkJobServerMissing, match="make flink") as raised:
        find_flink_job_server_jar(cache_dir=tmp_path, beam_version="2.77.0")
    assert isinstance(raised.value, UsageError)


def test_newest_cached_flink_of_the_beam_version_is_chosen(tmp_path):
    (tmp_path / "flink").mkdir()
    for name in (
        "beam-runners-flink-1.19-job-server-2.77.0.jar",
        "beam-runners-flink-1.20-job-server-2.77.0.jar",
        "beam-runners-flink-2.0-job-server-2.76.0.jar",
    ):
        (tmp_path / "flink" / name).touch()
    jar = find_flink_job_server_jar(cache_dir=tmp_path, beam_version="2.77.0")
    assert jar.name == "beam-runners-flink-1.20-job-server-2.77.0.jar"


def test_flink_args_run_embedded_flink_with_loopback_workers(tmp_path):
    jar = tmp_path / "beam-runners-flink-1.20-job-server-2.77.0.jar"
    args = flink_pipeline_args(jar, parallelism=2, checkpointing_interval_ms=5000)
    assert args == [
        "--runner=FlinkRunner",
        "--flink_master=[local]",
        "--flink_version=1.20",
        f"--flink_job_server_jar={jar}",
        "--environment_type=LOOPBACK",
        "--parallelism=2",
        "--streaming",
        "--checkpointing_interval=5000",
        "--shutdown_sources_after_idle_ms=5000",
    ]
    flink = PipelineOptions(args).view_as(FlinkRunnerOptions)
    assert (flink.flink_master, flink.flink_version, flink.parallelism) == ("[local]", "1.20", 2)


def test_jar_not_named_like_a_job_server_is_refused(tmp_path):
    with pytest.raises(UsageError, match="make flink"):
        flink_version_of(tmp_path / "flink.jar")


def test_missing_prism_names_make_prism(tmp_path):
    with pytest.raises(PrismMissing, match="make prism"):
        find_prism_binary(cache_dir=tmp_path, beam_version="2.77.0")
