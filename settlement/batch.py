"""A settlement batch (SPEC §2, §5): its lines, payables, Merkle tree and ledger snapshots."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from settlement.merkle import StandardMerkleTree
from settlement.payables import Payable, batch_tree, leaves_and_cumulative
from settlement.pricing import settled_quantities_after

ZERO_ROOT = "0x" + "00" * 32


@dataclass
class SettledBatch:
    batch: int
    """Batch number within the ledger (1, 2, …)."""
    lines: pa.Table
    """Settlement lines (pricing.LINE_SCHEMA), sorted by key."""
    payables: list[Payable]
    """One per leaf, in dump order."""
    tree: StandardMerkleTree | None
    """None when nothing is owed (all amounts zero)."""
    quantities_after: pa.Table
    """Ledger snapshot: settled quantity per pricing key through this batch."""
    cumulative_after: pa.Table
    """Ledger snapshot: cumulative wei per (consumer, payee) through this batch."""

    @property
    def root(self) -> str:
        return "0x" + self.tree.root.hex() if self.tree else ZERO_ROOT

    @property
    def total(self) -> int:
        return int(pc.sum(self.lines.column("amount_wei")).as_py() or 0)

    @property
    def protocol_fee_total(self) -> int:
        return int(pc.sum(self.lines.column("protocol_fee_wei")).as_py() or 0)

    @property
    def epochs(self) -> list[int]:
        return sorted(pc.unique(self.lines.column("epoch")).to_pylist())


def settle_batch(lines: pa.Table, batch: int, chain_id: int, registry: str, treasury: str,
                 prior_quantities: pa.Table | None, prior_cumulative: pa.Table | None) -> SettledBatch:
    leaves, cumulative = leaves_and_cumulative(lines, treasury, prior_cumulative)
    return SettledBatch(
        batch=batch,
        lines=lines,
        payables=leaves,
        tree=batch_tree(chain_id, registry, batch, leaves),
        quantities_after=settled_quantities_after(prior_quantities, lines),
        cumulative_after=cumulative,
    )
