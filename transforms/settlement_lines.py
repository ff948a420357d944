"""SettlementLines: accepted events -> priced settlement lines of the batch (one table)."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from settlement.pricing import aggregate_usage, merge_usage, price_usage
from settlement.tariff import Tariff
from transforms import coders
from transforms.spill import spill, unspill
from transforms.threaded import ThreadedBlocks


class UsageCombineFn(beam.CombineFn):
    """Σ quantity per (epoch, consumer, contract, unit, provider) over Arrow tables."""

    COMPACT_EVERY = 8
    """Parts merged once this many are held (one per dedup shard by default, so a run merges
    once, on the runner's thread): every shard's usage spans nearly every pricing key, so
    unmerged parts hold one copy of the keys per shard."""

    def create_accumulator(self):
        return []

    def get_accumulator_coder(self):
        return beam.coders.ListCoder(coders.ArrowTableCoder())

    def add_input(self, parts, table):
        parts.append(table)
        return [merge_usage(parts)] if len(parts) >= self.COMPACT_EVERY else parts

    def merge_accumulators(self, accumulators):
        return [table for parts in accumulators for table in parts]

    def extract_output(self, parts):
        if len(parts) == 1:  # one aggregate or merge: its keys are unique already
            return parts[0]
        return merge_usage(parts)  # the empty case: an empty usage table, priced to no lines


def _aggregate_shard(element, spill_dir: str | None = None) -> list:
    _, events = element
    usage = aggregate_usage(events)
    return [spill(usage, spill_dir) if spill_dir else usage]


def merge_spilled(paths: list[str]) -> pa.Table:
    """The batch's usage from the spilled usage of its shards (an empty table when none)."""
    return merge_usage([unspill(path) for path in sorted(paths)])


class SettlementLines(beam.PTransform):
    """With `spill_dir`, each shard's usage travels to the merge as the path of an Arrow IPC file
    (transforms/spill.py): at high cardinality a batch's usage has as many rows as its events,
    and handing that table through the runner's combine (encode, data plane, grouping buffer,
    decode) was measured at ~12 s of a 46 s run at 2M events, with copies of it in memory."""

    def __init__(self, tariff: Tariff, batch: int, prior_quantities: pa.Table | None,
                 spill_dir: str | None = None):
        super().__init__()
        self.tariff = tariff
        self.batch = batch
        self.prior = prior_quantities
        self.spill_dir = spill_dir

    def expand(self, accepted):
        if self.spill_dir:
            usage = (accepted
                     | "AggregateUsage" >> beam.ParDo(ThreadedBlocks(_aggregate_shard, self.spill_dir))
                     .with_output_types(str)
                     | "CollectUsage" >> beam.combiners.ToList()
                     | "SumUsage" >> beam.Map(merge_spilled).with_output_types(pa.Table))
        else:
            usage = (accepted
                     | "AggregateUsage" >> beam.ParDo(ThreadedBlocks(_aggregate_shard)).with_output_types(pa.Table)
                     | "SumUsage" >> beam.CombineGlobally(UsageCombineFn()).without_defaults().with_output_types(
                         pa.Table))
        return usage | "Price" >> beam.Map(price_usage, self.prior, self.tariff, self.batch).with_output_types(
            pa.Table)
