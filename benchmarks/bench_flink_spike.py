"""Portable streaming runners on this machine: job server start-up and windowed-sum throughput.

For each runner in the cache (Flink job server with an embedded Flink: `make flink`; Prism:
`make prism`) it prints
- the job server's start-up time (process start until its job service answers) and stop time;
- one tiny pipeline's round trip on the running job server (the fixed cost of every job);
- the sustained rate of an event-time windowed sum per consumer and epoch, in events/s, fed
  one element per event, and fed Arrow record batches summed per (consumer, epoch) in each
  batch before the shuffle. Sustained = (n2 - n1) / (t2 - t1) over two job sizes, so the
  fixed cost of a job drops out.

    python benchmarks/bench_flink_spike.py [--runners prism,flink] [--events 200000]
"""
from __future__ import annotations

import argparse
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window

from pipelines.flink_runner import (
    find_flink_job_server_jar,
    find_prism_binary,
    flink_pipeline_args,
    prism_pipeline_args,
    running_job_server,
)
from settlement.errors import UsageError

EPOCH_SECONDS = 3600
EPOCHS = 10
CONSUMERS = 100
SHARDS = 2  # one per core
BATCH_ROWS = 10_000


def quantities(first: int, count: int) -> np.ndarray:
    return np.arange(first, first + count, dtype=np.int64) % 7 + 1


def event_seconds(first: int, count: int) -> np.ndarray:
    return np.arange(first, first + count, dtype=np.int64) % (EPOCHS * EPOCH_SECONDS)


def expected_total(events: int) -> int:
    return int(quantities(0, events).sum())


def shard_ranges(events: int) -> list[tuple[int, int]]:
    """(first event, count) of each shard."""
    per_shard = -(-events // SHARDS)  # ceiling division
    return [(first, min(per_shard, events - first)) for first in range(0, events, per_shard)]


def one_element_per_event(shard):
    first, count = shard
    for index, quantity, seconds in zip(
        range(first, first + count), quantities(first, count), event_seconds(first, count)
    ):
        yield window.TimestampedValue((f"c{index % CONSUMERS}", int(quantity)), int(seconds))


def arrow_batches(shard):
    first, count = shard
    for start in range(first, first + count, BATCH_ROWS):
        rows = min(BATCH_ROWS, first + count - start)
        indices = np.arange(start, start + rows, dtype=np.int64)
        yield pa.record_batch(
            {
                "consumer": pc.binary_join_element_wise(
                    "c", pc.cast(pa.array(indices % CONSUMERS), pa.string()), ""
                ),
                "quantity": pa.array(quantities(start, rows)),
                "epoch": pa.array(event_seconds(start, rows) // EPOCH_SECONDS),
            }
        )


def sum_batch_per_epoch(batch: pa.RecordBatch):
    """Columnar pre-aggregation: one (consumer, quantity) per consumer and epoch of the batch."""
    sums = pa.Table.from_batches([batch]).group_by(["consumer", "epoch"]).aggregate(
        [("quantity", "sum")]
    )
    for consumer, epoch, quantity in zip(
        sums["consumer"].to_pylist(), sums["epoch"].to_pylist(), sums["quantity_sum"].to_pylist()
    ):
        yield window.TimestampedValue((consumer, quantity), epoch * EPOCH_SECONDS)


def windowed_sum(pipeline_args: list[str], events: int, arrow: bool) -> float:
    """Seconds to run one job that sums `events` per consumer and epoch and checks the total."""
    started = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
        shards = pipeline | "Shards" >> beam.Create(shard_ranges(events))
        if arrow:
            timestamped = (
                shards
                | "ArrowBatches" >> beam.FlatMap(arrow_batches)
                | "SumBatchPerEpoch" >> beam.FlatMap(sum_batch_per_epoch)
            )
        else:
            timestamped = shards | "Events" >> beam.FlatMap(one_element_per_event)
        total = (
            timestamped
            | "WindowByEpoch" >> beam.WindowInto(window.FixedWindows(EPOCH_SECONDS))
            | "SumPerConsumer" >> beam.CombinePerKey(sum)
            | "Global" >> beam.WindowInto(window.GlobalWindows())
            | "Sums" >> beam.Values()
            | "Total" >> beam.CombineGlobally(sum)
        )
        assert_that(total, equal_to([expected_total(events)]))
    return time.perf_counter() - started


def tiny_job(pipeline_args: list[str]) -> float:
    started = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
        assert_that(pipeline | beam.Create([1, 2, 3]) | beam.CombineGlobally(sum), equal_to([6]))
    return time.perf_counter() - started


def sustained_rate(pipeline_args: list[str], events: int, arrow: bool) -> tuple[float, float]:
    """(events/s sustained, seconds of the larger job)."""
    small = windowed_sum(pipeline_args, events // 4, arrow)
    large = windowed_sum(pipeline_args, events, arrow)
    return (events - events // 4) / max(large - small, 1e-9), large


def bench(name: str, server_args: list[str], job_args, events: int) -> None:
    started = time.perf_counter()
    with running_job_server(server_args) as endpoint:
        start_up = time.perf_counter() - started
        print(f"{name}: job server start-up {start_up:.2f} s")
        args = job_args(endpoint)
        tiny_job(args)  # warm: first job also starts the LOOPBACK worker pool
        print(f"{name}: tiny job round trip {tiny_job(args):.2f} s")
        for arrow, size in ((False, events), (True, events * 20)):
            rate, seconds = sustained_rate(args, size, arrow)
            feed = f"Arrow batches of {BATCH_ROWS}" if arrow else "one element per event"
            print(
                f"{name}: windowed sum, {feed}: {rate:,.0f} events/s sustained "
                f"({size:,} events in {seconds:.2f} s)"
            )
        stopping = time.perf_counter()
    print(f"{name}: job server stop {time.perf_counter() - stopping:.2f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default="prism,flink")
    parser.add_argument("--events", type=int, default=200_000, help="per-element job size")
    options = parser.parse_args(argv)
    for name in options.runners.split(","):
        try:
            if name == "flink":
                jar = find_flink_job_server_jar()
                bench(
                    "flink (embedded, parallelism 2)",
                    flink_pipeline_args(jar),
                    lambda endpoint: flink_pipeline_args(
                        jar, parallelism=SHARDS, job_endpoint=endpoint
                    ),
                    options.events,
                )
            elif name == "prism":
                binary = find_prism_binary()
                bench(
                    "prism",
                    prism_pipeline_args(binary),
                    lambda endpoint: prism_pipeline_args(binary, job_endpoint=endpoint),
                    options.events,
                )
            else:
                raise UsageError(f"unknown runner {name!r}: use prism or flink")
        except UsageError as unavailable:
            print(f"{name}: n/a: {unavailable}")


if __name__ == "__main__":
    main()
