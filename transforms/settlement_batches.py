"""SettlementBatches: the batch's lines -> its payables, Merkle tree and ledger snapshots."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from settlement.batch import SettledBatch, settle_batch
from transforms import coders  # noqa: F401  (registers the SettledBatch coder)


class SettlementBatches(beam.PTransform):
    def __init__(self, batch: int, chain_id: int, registry: str, treasury: str,
                 prior_quantities: pa.Table | None, prior_cumulative: pa.Table | None):
        super().__init__()
        self.args = (batch, chain_id, registry, treasury, prior_quantities, prior_cumulative)

    def expand(self, lines):
        return (lines
                | "DropEmpty" >> beam.Filter(lambda table: table.num_rows > 0)
                | "BuildTree" >> beam.Map(lambda table: settle_batch(table, *self.args)).with_output_types(
                    SettledBatch))
