"""What each consumer owes each payee (SPEC §5): providers get provider_wei, the treasury the
protocol fee; a leaf carries the cumulative amount through the batch, so a payee's claim of the
newest batch collects everything still owed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import duckdb
import pyarrow as pa

from settlement.events import AMOUNT_TYPE
from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, StandardMerkleTree, settlement_leaf_hash_block,
                               settlement_values)
from settlement import duck
from settlement.pricing import exact_ints, sum_by

_PROVIDER_SUMS = pa.schema([("consumer", pa.string()), ("provider", pa.string()), ("provider_wei", AMOUNT_TYPE)])
_FEE_SUMS = pa.schema([("consumer", pa.string()), ("protocol_fee_wei", AMOUNT_TYPE)])
CUMULATIVE_SCHEMA = pa.schema([("consumer", pa.string()), ("payee", pa.string()),
                               ("cumulative_wei", AMOUNT_TYPE)])


@dataclass(frozen=True)
class Payable:
    consumer: str
    """EIP-55 address of the consumer whose deposit pays."""
    payee: str
    """EIP-55 address of a provider or the treasury."""
    amount_wei: int
    """What this batch adds."""
    cumulative_wei: int
    """What the consumer owes the payee through this batch: the leaf's amount."""


def batch_amounts(lines: pa.Table, treasury: str) -> dict[tuple[str, str], int]:
    """Σ provider_wei per (consumer, provider) and Σ protocol_fee_wei per (consumer, treasury);
    a treasury that is also a provider gets both in one leaf. Zero amounts have no leaf."""
    amounts: dict[tuple[str, str], int] = {}
    by_provider = sum_by(lines, ["consumer", "provider"], _PROVIDER_SUMS, "provider_wei")
    for consumer, provider, wei in zip(*by_provider.to_pydict().values()):
        amounts[(consumer, provider)] = amounts.get((consumer, provider), 0) + int(wei)
    fees = sum_by(lines, ["consumer"], _FEE_SUMS, "protocol_fee_wei")
    for consumer, wei in zip(*fees.to_pydict().values()):
        amounts[(consumer, treasury)] = amounts.get((consumer, treasury), 0) + int(wei)
    return {pair: wei for pair, wei in amounts.items() if wei > 0}


def cumulative_by_pair(table: pa.Table | None) -> dict[tuple[str, str], int]:
    if table is None or not table.num_rows:
        return {}
    cols = table.select(CUMULATIVE_SCHEMA.names).to_pydict()
    return {(c, p): int(w) for c, p, w in zip(cols["consumer"], cols["payee"], cols["cumulative_wei"])}


def payables(amounts: Mapping[tuple[str, str], int], prior: Mapping[tuple[str, str], int]) -> list[Payable]:
    """Leaves of a batch in a fixed order (consumer, payee by lowercase hex)."""
    pairs = sorted(amounts, key=lambda pair: (pair[0].lower(), pair[1].lower()))
    return [Payable(c, p, amounts[(c, p)], prior.get((c, p), 0) + amounts[(c, p)]) for c, p in pairs]


def cumulative_after(prior: Mapping[tuple[str, str], int], leaves: list[Payable]) -> pa.Table:
    """The ledger's cumulative snapshot once a batch with these leaves is settled."""
    merged = dict(prior)
    for leaf in leaves:
        merged[(leaf.consumer, leaf.payee)] = leaf.cumulative_wei
    pairs = sorted(merged, key=lambda pair: (pair[0].lower(), pair[1].lower()))
    return pa.table({"consumer": [c for c, _ in pairs], "payee": [p for _, p in pairs],
                     "cumulative_wei": [merged[pair] for pair in pairs]}, schema=CUMULATIVE_SCHEMA)


def batch_tree(chain_id: int, registry: str, batch: int, leaves: list[Payable]) -> StandardMerkleTree | None:
    """The batch's StandardMerkleTree over its payables, or None when nothing is owed."""
    if not leaves:
        return None
    consumers = [leaf.consumer for leaf in leaves]
    payees = [leaf.payee for leaf in leaves]
    amounts = [leaf.cumulative_wei for leaf in leaves]
    hashes = settlement_leaf_hash_block(chain_id, registry, batch, consumers, payees, amounts)
    values = settlement_values(chain_id, registry, batch, consumers, payees, amounts)
    return StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING, leaf_hashes=hashes)


# The same leaves and snapshot as batch_amounts + payables + cumulative_after, in one DuckDB
# pass over the lines: DECIMAL(38,0) sums are exact and raise rather than overflow (then the
# Python functions above decide and word the error).
_LEAVES_SQL = """
WITH owed AS (
  SELECT consumer, provider AS payee, provider_wei AS wei FROM lines
  UNION ALL
  SELECT consumer, $treasury AS payee, protocol_fee_wei AS wei FROM lines
), amounts AS (
  SELECT consumer, payee, sum(wei)::DECIMAL(38, 0) AS amount_wei FROM owed GROUP BY ALL
)
SELECT a.consumer, a.payee, a.amount_wei,
       (coalesce(p.cumulative_wei, 0)::HUGEINT + a.amount_wei::HUGEINT)::DECIMAL(38, 0) AS cumulative_wei
FROM amounts a LEFT JOIN prior p ON p.consumer = a.consumer AND p.payee = a.payee
WHERE a.amount_wei > 0
ORDER BY lower(a.consumer), lower(a.payee), a.consumer, a.payee
"""

_CUMULATIVE_SQL = """
SELECT consumer, payee, cumulative_wei FROM leaves
UNION ALL
SELECT p.consumer, p.payee, p.cumulative_wei FROM prior p
  ANTI JOIN leaves l ON l.consumer = p.consumer AND l.payee = p.payee
ORDER BY lower(consumer), lower(payee), consumer, payee
"""


def leaves_and_cumulative(lines: pa.Table, treasury: str,
                          prior: pa.Table | None) -> tuple[list[Payable], pa.Table]:
    """(payables in leaf order, cumulative snapshot after the batch) of a batch's lines and the
    prior cumulative snapshot (CUMULATIVE_SCHEMA or None)."""
    prior = (prior if prior is not None and prior.num_rows else CUMULATIVE_SCHEMA.empty_table())
    prior = prior.select(CUMULATIVE_SCHEMA.names).cast(CUMULATIVE_SCHEMA)
    try:
        leaves = duck.query(_LEAVES_SQL, {"lines": lines.select(["consumer", "provider", "provider_wei",
                                                                 "protocol_fee_wei"]), "prior": prior},
                            {"treasury": treasury})
        leaves = leaves.cast(pa.schema([("consumer", pa.string()), ("payee", pa.string()),
                                        ("amount_wei", AMOUNT_TYPE), ("cumulative_wei", AMOUNT_TYPE)]))
        after = duck.query(_CUMULATIVE_SQL, {"leaves": leaves.select(CUMULATIVE_SCHEMA.names),
                                             "prior": prior}).cast(CUMULATIVE_SCHEMA)
    except (duckdb.OutOfRangeException, duckdb.ConversionException):
        by_pair = cumulative_by_pair(prior)
        found = payables(batch_amounts(lines, treasury), by_pair)
        return found, cumulative_after(by_pair, found)
    cols = [leaves.column(name) for name in ("consumer", "payee")]
    found = [Payable(c, p, a, w) for c, p, a, w in zip(
        cols[0].to_pylist(), cols[1].to_pylist(), exact_ints(leaves.column("amount_wei")),
        exact_ints(leaves.column("cumulative_wei")))]
    return found, after
