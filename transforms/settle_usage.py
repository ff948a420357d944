"""SettleUsage: the one core batch and streaming share — raw records in, a settled batch out."""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa

from settlement.tariff import Tariff
from settlement.token_ids import TokenIds
from transforms.deduped_events import DedupedEvents
from transforms.settlement_batches import SettlementBatches
from transforms.settlement_lines import SettlementLines
from transforms.validated_events import ValidatedEvents


@dataclass
class LedgerState:
    """What earlier batches left that this one continues from."""
    batch: int
    """Number of the batch being settled."""
    settled_files: list[str]
    """Parquet files of events settled before (for dedup across runs)."""
    quantities: pa.Table | None
    """Settled quantity per pricing key (where the tiers continue)."""
    cumulative: pa.Table | None
    """Cumulative wei per (consumer, payee) (what the leaves add to)."""


class SettleUsage(beam.PTransform):
    """raw record tables -> dict of PCollections:
    accepted (shard, events), quarantined (tables), counts ((source, category), n),
    batch (zero or one SettledBatch)."""

    def __init__(self, tariff: Tariff, state: LedgerState, chain_id: int, registry: str, shards: int = 8,
                 spill_dir: str | None = None, token_ids: TokenIds | None = None):
        super().__init__()
        self.spill_dir = spill_dir
        self.token_ids = token_ids
        self.tariff = tariff
        self.state = state
        self.chain_id = chain_id
        self.registry = registry
        self.shards = shards

    def expand(self, raw):
        validated = raw | "ValidatedEvents" >> ValidatedEvents(self.tariff, self.token_ids)
        deduped = validated.events | "DedupedEvents" >> DedupedEvents(
            self.state.settled_files, self.shards, self.spill_dir)
        lines = deduped.accepted | "SettlementLines" >> SettlementLines(
            self.tariff, self.state.batch, self.state.quantities, self.spill_dir)
        batch = lines | "SettlementBatches" >> SettlementBatches(
            self.state.batch, self.chain_id, self.registry, self.tariff.treasury,
            self.state.quantities, self.state.cumulative)
        quarantined = ((validated.quarantined, deduped.quarantined)
                       | "AllQuarantined" >> beam.Flatten())
        counts = ((validated.counts, deduped.counts) | "AllCounts" >> beam.Flatten())
        return {"accepted": deduped.accepted, "quarantined": quarantined, "counts": counts,
                "batch": batch}
