"""The settlement transition: `settle_cut(ledger, events, tariff, chain) -> (cut, ledger')`.

One function, pure, in the style of execution-specs' `state_transition(chain, block)`: what a
ledger has settled, plus validated events, gives the next batch and the ledger after it. Every
engine applies it: the Beam batch evaluates the same steps in parallel (transforms/settle_usage.py,
proven equal by tests/unit/test_settle_cut.py), the Beam stream and the Flink job apply it once
per cut (sinks/stream_ledger.py). Engines differ only in where the ledger lives and how they
read and write it; the money is decided here.

Steps (SPEC §2, §4, §5): resolve the events against each other and the settled copies of their
keys (settlement.dedup), aggregate and price the accepted ones against the settled quantities
(settlement.pricing), allocate and build the cumulative tree (settlement.batch). Nothing accepted:
no batch, the ledger unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from settlement.batch import SettledBatch, settle_batch
from settlement.dedup import resolve
from settlement.events import EVENT_SCHEMA, QUARANTINE_SCHEMA, SETTLED_EVENT_SCHEMA
from settlement.pricing import aggregate_usage, price_usage
from settlement.tariff import Tariff


@dataclass(frozen=True)
class Chain:
    """Where the leaves are claimed."""

    chain_id: int
    """EVM chain id the leaves name."""
    registry: str
    """Registry address (EIP-55) the leaves name."""


@dataclass(frozen=True)
class Ledger:
    """What a ledger has settled, as much of it as one cut reads."""

    batch: int
    """The last settled batch (0: an empty ledger)."""
    settled: pa.Table | None
    """Settled events (SETTLED_EVENT_SCHEMA): at least those sharing a (provider, event_id)
    with the cut's events; the whole history is also fine."""
    quantities: pa.Table | None
    """Settled quantity per (epoch, consumer, contract, unit): where the tiers continue."""
    cumulative: pa.Table | None
    """Cumulative wei per (consumer, payee): what the leaves add to."""

    @classmethod
    def empty(cls) -> "Ledger":
        return cls(batch=0, settled=None, quantities=None, cumulative=None)


@dataclass(frozen=True)
class Cut:
    """What one application of the transition settled."""

    batch: int | None
    """The batch appended, or None when nothing new was accepted."""
    accepted: pa.Table
    """Events settled by this cut (EVENT_SCHEMA, record order)."""
    duplicates: pa.Table
    """(source, record_no) of exact copies dropped."""
    quarantined: pa.Table
    """Conflicting duplicates (QUARANTINE_SCHEMA, batch null)."""
    settled: SettledBatch | None
    """Lines, leaves, tree and ledger snapshots of the batch; None without a batch."""


def settled_events(accepted: pa.Table, batch: int) -> pa.Table:
    """Accepted events as the ledger keeps them: with the batch that settled them."""
    table = accepted.append_column("batch", pa.array([batch] * accepted.num_rows, pa.int64()))
    return table.select(SETTLED_EVENT_SCHEMA.names).cast(SETTLED_EVENT_SCHEMA)


def settle_cut(ledger: Ledger, events: pa.Table, tariff: Tariff, chain: Chain) -> tuple[Cut, Ledger]:
    """The next batch of `ledger` from validated `events` (EVENT_SCHEMA), and the ledger after it."""
    if events.num_rows:
        resolved = resolve(events.cast(EVENT_SCHEMA), ledger.settled)
        accepted, duplicates, conflicts = resolved.accepted, resolved.duplicates, resolved.quarantined
    else:
        accepted = EVENT_SCHEMA.empty_table()
        duplicates = pa.table({"source": pa.array([], pa.string()), "record_no": pa.array([], pa.int64())})
        conflicts = None
    if not accepted.num_rows:
        return Cut(None, accepted, duplicates, _or_empty_quarantine(conflicts), None), ledger
    batch = ledger.batch + 1
    lines = price_usage(aggregate_usage(accepted), ledger.quantities, tariff, batch)
    settled = settle_batch(lines, batch, chain.chain_id, chain.registry, tariff.treasury,
                           ledger.quantities, ledger.cumulative)
    now_settled = settled_events(accepted, batch)
    if ledger.settled is not None and ledger.settled.num_rows:
        now_settled = pa.concat_tables([ledger.settled.cast(SETTLED_EVENT_SCHEMA), now_settled])
    after = Ledger(batch=batch, settled=now_settled, quantities=settled.quantities_after,
                   cumulative=settled.cumulative_after)
    return Cut(batch, accepted, duplicates, _or_empty_quarantine(conflicts), settled), after


def _or_empty_quarantine(table: pa.Table | None) -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table() if table is None else table.cast(QUARANTINE_SCHEMA)
