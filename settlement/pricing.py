"""Settlement lines (SPEC §4): price the usage of a batch, continuing tiers where earlier
batches left them, and split each charge exactly over providers and the protocol fee."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from settlement import duck
from settlement.errors import InvariantBroken, UsageError
from settlement.events import AMOUNT_TYPE
from settlement.fees import allocate, marginal_charge, protocol_fee
from settlement.tariff import ANY_CONTRACT, Tariff

PRICE_KEY = ("epoch", "consumer", "contract", "unit")
"""Graduated tiers apply per this key."""
USAGE_KEY = PRICE_KEY + ("provider",)
MAX_AMOUNT = 10**38 - 1

USAGE_SCHEMA = pa.schema([("epoch", pa.int64()), ("consumer", pa.string()), ("contract", pa.string()),
                          ("unit", pa.string()), ("provider", pa.string()), ("quantity", AMOUNT_TYPE)])
"""Quantity per (epoch, consumer, contract, unit, provider) of one batch."""

LINE_SCHEMA = pa.schema([
    ("batch", pa.int64()), ("epoch", pa.int64()), ("consumer", pa.string()), ("contract", pa.string()),
    ("provider", pa.string()), ("unit", pa.string()), ("quantity", AMOUNT_TYPE),
    ("amount_wei", AMOUNT_TYPE), ("protocol_fee_wei", AMOUNT_TYPE), ("provider_wei", AMOUNT_TYPE),
])

SETTLED_QUANTITY_SCHEMA = pa.schema([("epoch", pa.int64()), ("consumer", pa.string()),
                                     ("contract", pa.string()), ("unit", pa.string()),
                                     ("quantity", AMOUNT_TYPE)])
"""Quantity settled so far per pricing key: where the tiers of the next batch start."""


def sum_by(table: pa.Table, keys, schema: pa.Schema, column: str = "quantity") -> pa.Table:
    """Σ `column` per `keys`, exact: DuckDB sums integers and DECIMAL(38,0) in 128 bits (and
    raises on overflow), several times faster than Arrow's decimal sums. Rows in no order."""
    names = ", ".join(f'"{k}"' for k in keys)
    sql = f'SELECT {names}, sum("{column}")::DECIMAL(38, 0) AS "{column}" FROM t GROUP BY {names}'
    return duck.query(sql, {"t": table.select([*keys, column])}).select(schema.names).cast(schema)


def aggregate_usage(events: pa.Table) -> pa.Table:
    """Σ quantity per (epoch, consumer, contract, unit, provider), exact (DECIMAL(38,0))."""
    if not events.num_rows:
        return USAGE_SCHEMA.empty_table()
    return sum_by(events, USAGE_KEY, USAGE_SCHEMA)


def merge_usage(parts: list[pa.Table]) -> pa.Table:
    """Sum partial usage aggregates (the combine step of a CombineFn)."""
    parts = [p.select(USAGE_SCHEMA.names).cast(USAGE_SCHEMA) for p in parts if p.num_rows]
    if not parts:
        return USAGE_SCHEMA.empty_table()
    return sum_by(pa.concat_tables(parts), USAGE_KEY, USAGE_SCHEMA)


def quantities_by_key(table: pa.Table) -> dict[tuple, int]:
    """{(epoch, consumer, contract, unit): quantity} of a SETTLED_QUANTITY_SCHEMA table."""
    cols = table.select(list(PRICE_KEY) + ["quantity"]).to_pydict()
    return {key: int(q) for *key_parts, q in zip(*cols.values()) for key in [tuple(key_parts)]}


def exact_ints(column) -> list[int]:
    """Python ints of a DECIMAL(38,0) (or integer) column, via text: 2x faster than Decimal."""
    return [int(x) for x in pc.cast(column, pa.string()).to_pylist()]


def decimal_column(values: list[int]) -> pa.Array:
    """DECIMAL(38,0) from Python ints, via text: 3x faster than from ints directly."""
    return pa.array([str(v) for v in values], pa.string()).cast(AMOUNT_TYPE)


def _checked(amount: int, what: str) -> int:
    if amount > MAX_AMOUNT:
        raise UsageError(f"{what} of {amount} wei exceeds DECIMAL(38,0), the widest amount the outputs "
                         "hold; lower the tariff's prices or settle more often")
    return amount


def _group_starts(table: pa.Table, columns) -> list[int]:
    """Row indices where the (sorted) key in `columns` changes, plus the end of the table."""
    n = table.num_rows
    if n <= 1:
        return list(range(n + 1))
    changed = None
    for c in columns:
        col = table.column(c).combine_chunks()
        diff = pc.not_equal(col.slice(1), col.slice(0, n - 1))
        changed = diff if changed is None else pc.or_(changed, diff)
    starts = pc.indices_nonzero(changed).to_numpy() + 1 if changed is not None else []
    return [0, *starts.tolist(), n]


# SPEC §4 in DuckDB SQL over 128-bit integers: per pricing key the charge cost(P+Q) - cost(P),
# then each provider's floor share, the leftover wei one each by largest remainder (ties by
# lowercase address), and the protocol fee of every share.
_PRICE_SQL = """
WITH keyed AS (
  SELECT epoch, consumer, contract, unit, sum(quantity)::HUGEINT AS q, count(*) AS n
  FROM usage GROUP BY ALL
), ruled AS (
  SELECT k.*, coalesce(prior.quantity, 0)::HUGEINT AS p, coalesce(exact.rule, star.rule) AS rule
  FROM keyed k
  LEFT JOIN rules exact ON exact.contract = k.contract AND exact.unit = k.unit
  LEFT JOIN rules star ON star.contract = '*' AND star.unit = k.unit
  LEFT JOIN prior ON prior.epoch = k.epoch AND prior.consumer = k.consumer
                 AND prior.contract = k.contract AND prior.unit = k.unit
), charged AS (
  SELECT r.epoch, r.consumer, r.contract, r.unit,
         any_value(r.q) AS q, any_value(r.n) AS n,
         sum(greatest(0, least(r.p + r.q, coalesce(t.hi, r.p + r.q)) - t.lo) * t.price) // any_value(t.per)
         - sum(greatest(0, least(r.p, coalesce(t.hi, r.p)) - t.lo) * t.price) // any_value(t.per) AS charge
  FROM ruled r JOIN (SELECT rule, per::HUGEINT AS per, lo::HUGEINT AS lo, hi::HUGEINT AS hi,
                            price::HUGEINT AS price FROM tiers) t ON t.rule = r.rule
  GROUP BY r.epoch, r.consumer, r.contract, r.unit
), shares AS (
  SELECT c.n, u.epoch, u.consumer, u.contract, u.unit, u.provider, u.quantity, c.charge,
         (c.charge * u.quantity::HUGEINT) // c.q AS floor_share,
         (c.charge * u.quantity::HUGEINT) % c.q AS remainder
  FROM usage u JOIN charged c USING (epoch, consumer, contract, unit)
), single AS (  -- one provider: the whole charge, nothing to rank
  SELECT * EXCLUDE (remainder), floor_share AS share FROM shares WHERE n = 1
), multi AS (
  SELECT * EXCLUDE (remainder),
         floor_share + CASE WHEN row_number() OVER w <= charge - sum(floor_share) OVER k THEN 1 ELSE 0 END
           AS share
  FROM shares WHERE n > 1
  WINDOW k AS (PARTITION BY epoch, consumer, contract, unit),
         w AS (PARTITION BY epoch, consumer, contract, unit ORDER BY remainder DESC, lower(provider))
), ranked AS (SELECT * FROM single UNION ALL SELECT * FROM multi)
SELECT $batch::BIGINT AS batch, epoch, consumer, contract, provider, unit, quantity,
       share::DECIMAL(38, 0) AS amount_wei,
       (share * $fee_bps::HUGEINT // 10000)::DECIMAL(38, 0) AS protocol_fee_wei,
       (share - share * $fee_bps::HUGEINT // 10000)::DECIMAL(38, 0) AS provider_wei
FROM ranked ORDER BY epoch, consumer, contract, unit, provider
"""


def _tariff_tables(tariff: Tariff) -> tuple[pa.Table, pa.Table]:
    """(rules: rule, contract, unit; tiers: rule, per, lo, hi, price) of the tariff."""
    rules, tiers = [], []
    for i, rule in enumerate(tariff.prices):
        rules.append((i, rule.contract, rule.unit))
        lower = 0
        for tier in rule.tiers:
            tiers.append((i, rule.per, lower, tier.up_to, tier.price_wei))
            lower = tier.up_to if tier.up_to is not None else lower
    columns = list(zip(*tiers)) if tiers else [[]] * 5
    return (pa.table({"rule": [r[0] for r in rules], "contract": [r[1] for r in rules],
                      "unit": [r[2] for r in rules]}, schema=pa.schema(
                          [("rule", pa.int64()), ("contract", pa.string()), ("unit", pa.string())])),
            pa.table({"rule": pa.array(columns[0], pa.int64()),
                      "per": decimal_column(list(columns[1])), "lo": decimal_column(list(columns[2])),
                      "hi": pa.array([None if v is None else str(v) for v in columns[3]], pa.string())
                              .cast(AMOUNT_TYPE),
                      "price": decimal_column(list(columns[4]))}))


def price_usage(usage: pa.Table, prior: pa.Table | None, tariff: Tariff, batch: int) -> pa.Table:
    """Settlement lines of one batch from its usage and the quantities settled before it
    (SETTLED_QUANTITY_SCHEMA, or None): one line per usage row, sorted by USAGE_KEY.

    DuckDB computes them in 128-bit integers. Where a product would overflow those, a charge
    exceeds DECIMAL(38,0) or a unit has no price, the exact Python reference below decides
    (and words the error)."""
    try:
        lines = _price_in_duckdb(usage, prior, tariff, batch)
    except (duckdb.OutOfRangeException, duckdb.ConversionException):
        lines = None
    if lines is None or lines.num_rows != usage.num_rows:
        return price_usage_exact(usage, quantities_by_key(prior) if prior is not None else {}, tariff, batch)
    return lines


def _price_in_duckdb(usage: pa.Table, prior: pa.Table | None, tariff: Tariff, batch: int) -> pa.Table | None:
    usage = usage.select(USAGE_SCHEMA.names).cast(USAGE_SCHEMA)
    if any(usage.column(k).null_count for k in USAGE_KEY):
        return _price_by_key_strings(usage, prior, tariff, batch)
    return _price_sorted(usage, prior, tariff, batch)


def _ranked(column) -> tuple[np.ndarray, pa.Array]:
    """(each row's rank among the column's distinct values, those values in ascending order)."""
    chunks = pc.dictionary_encode(column).chunks if isinstance(column, pa.ChunkedArray) else [
        pc.dictionary_encode(column)]
    # the chunks of one encoding share its final dictionary: no copy of the column is needed
    if not chunks or any(len(c.dictionary) != len(chunks[-1].dictionary) for c in chunks):
        chunks = [pc.dictionary_encode(column.combine_chunks())]
    dictionary = chunks[-1].dictionary
    indices = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    by_value = pc.sort_indices(dictionary)
    rank_of = np.empty(len(dictionary), np.int64)
    rank_of[by_value.to_numpy()] = np.arange(len(dictionary))
    return rank_of[indices], dictionary.take(by_value)


def sort_by_key(table: pa.Table, keys) -> tuple[pa.Table, list[np.ndarray]]:
    """(`table` sorted by `keys` ascending, each key's ranks in that order) for keys without
    nulls. Each key column is dictionary-encoded and its distinct values ranked (Arrow's order:
    numbers by value, strings by bytes, as DuckDB's ORDER BY), so the sort compares small
    integers, packed into one int64 where their bits fit, instead of strings; the sorted key
    columns are read from their few distinct values (cache-resident) rather than taken row by
    row from the table. The stable sort keeps rows of equal keys in table order."""
    keys = list(keys)
    if not keys or table.num_rows == 0:
        return table, [np.zeros(table.num_rows, np.int64) for _ in keys]
    with ThreadPoolExecutor(2) as pool:  # Arrow's hashing releases the GIL
        ranked = list(pool.map(lambda name: _ranked(table.column(name)), keys))
    ranks = [rank for rank, _ in ranked]
    bits = [max(1, (len(values) - 1).bit_length()) for _, values in ranked]
    if sum(bits) <= 63:
        packed = np.zeros(table.num_rows, np.int64)
        for rank, width in zip(ranks, bits):
            packed = (packed << width) | rank
        order = np.argsort(packed, kind="stable")
    else:
        order = np.lexsort(ranks[::-1])
    ranks = [rank[order] for rank in ranks]
    columns = {}
    for name in table.column_names:
        if name in keys:
            i = keys.index(name)
            columns[name] = ranked[i][1].take(pa.array(ranks[i]))
        else:
            columns[name] = table.column(name).take(pa.array(order))
    return pa.table(columns, schema=table.schema), ranks


def run_ids(ranks: list[np.ndarray]) -> np.ndarray:
    """Per row of a table sorted by these keys, the number of its key's run (0, 1, …)."""
    n = len(ranks[0]) if ranks else 0
    changed = np.zeros(max(n - 1, 0), bool)
    for rank in ranks:
        changed |= rank[1:] != rank[:-1]
    return np.concatenate([np.zeros(min(n, 1), np.int64), np.cumsum(changed, dtype=np.int64)])


def _sql_int(value: int) -> str:
    return f"{int(value)}::HUGEINT"


def _cost_sql(tariff: Tariff, x: str) -> str | None:
    """SQL of cost(x) (SPEC §4: Σ over tiers of the quantity within the tier × its price, // per)
    for the rule numbered `rule`, as one CASE over the tariff's rules; None for an empty tariff."""
    cases = []
    for i, rule in enumerate(tariff.prices):
        lower, terms = 0, []
        for tier in rule.tiers:
            top = x if tier.up_to is None else f"least({x}, {_sql_int(tier.up_to)})"
            terms.append(f"greatest(0, {top} - {_sql_int(lower)}) * {_sql_int(tier.price_wei)}")
            lower = tier.up_to if tier.up_to is not None else lower
        cases.append(f"WHEN {i} THEN ({' + '.join(terms) or '0::HUGEINT'}) // {_sql_int(rule.per)}")
    return f"(CASE rule {' '.join(cases)} END)" if cases else None


# The same lines as _PRICE_SQL, over usage sorted by key (sort_by_key) with each row's price key
# numbered (kid), its run length (n) and its rule: a key of one row (most, at high cardinality)
# is charged in a projection; only keys of several providers are grouped and ranked.
_PRICE_SORTED_SQL = """
WITH u AS (
  SELECT pos, kid, n, rule, provider, quantity::HUGEINT AS quantity, p::HUGEINT AS p FROM usage
), keyed AS (
  SELECT kid, any_value(rule) AS rule, any_value(p) AS p, sum(quantity)::HUGEINT AS q
  FROM u WHERE n > 1 GROUP BY kid
), charged AS (
  SELECT kid, q, {cost_pq} - {cost_p} AS charge FROM (SELECT *, p + q AS pq FROM keyed)
), shares AS (
  SELECT u.pos, u.provider, c.kid, c.charge,
         (c.charge * u.quantity) // c.q AS floor_share,
         (c.charge * u.quantity) % c.q AS remainder
  FROM u JOIN charged c USING (kid) WHERE u.n > 1
), ranked AS (
  SELECT pos, {cost_pq} - {cost_p} AS share
  FROM (SELECT pos, rule, p, p + quantity AS pq FROM u WHERE n = 1)
  UNION ALL
  SELECT pos, floor_share + CASE WHEN row_number() OVER w <= charge - sum(floor_share) OVER k THEN 1 ELSE 0 END
  FROM shares
  WINDOW k AS (PARTITION BY kid), w AS (PARTITION BY kid ORDER BY remainder DESC, lower(provider))
)
SELECT share::DECIMAL(38, 0) AS amount_wei,
       (share * $fee_bps::HUGEINT // 10000)::DECIMAL(38, 0) AS protocol_fee_wei,
       (share - share * $fee_bps::HUGEINT // 10000)::DECIMAL(38, 0) AS provider_wei
FROM ranked ORDER BY pos
"""


def _rule_numbers(tariff: Tariff, contracts: list[str], units: list[str]) -> np.ndarray | None:
    """rule[c, u]: the number of the rule pricing unit u on contract c (-1: none); None when two
    rules name the same (contract, unit), which _PRICE_SQL's joins would price twice."""
    index = {}
    for i, rule in enumerate(tariff.prices):
        if (rule.contract, rule.unit) in index:
            return None
        index[(rule.contract, rule.unit)] = i
    table = np.full((len(contracts), len(units)), -1, np.int64)
    for ci, contract in enumerate(contracts):
        for ui, unit in enumerate(units):
            table[ci, ui] = index.get((contract, unit), index.get((ANY_CONTRACT, unit), -1))
    return table


def _price_sorted(usage: pa.Table, prior: pa.Table | None, tariff: Tariff, batch: int) -> pa.Table | None:
    """_PRICE_SORTED_SQL's lines; None where a unit has no price (the reference words that)."""
    usage, ranks = sort_by_key(usage, USAGE_KEY)
    kid = run_ids(ranks[:len(PRICE_KEY)])
    n = np.bincount(kid)[kid] if len(kid) else kid
    contracts = pc.unique(usage.column("contract")).to_pylist()
    units = pc.unique(usage.column("unit")).to_pylist()
    rule_of = _rule_numbers(tariff, contracts, units)
    cost_pq, cost_p = _cost_sql(tariff, "pq"), _cost_sql(tariff, "p")
    if rule_of is None or cost_pq is None:
        return _price_by_key_strings(usage, prior, tariff, batch)
    c_idx = pc.index_in(usage.column("contract"), value_set=pa.array(contracts, pa.string())).to_numpy()
    u_idx = pc.index_in(usage.column("unit"), value_set=pa.array(units, pa.string())).to_numpy()
    rule = rule_of[c_idx, u_idx] if usage.num_rows else np.zeros(0, np.int64)
    if (rule < 0).any():
        return None
    p = _prior_per_row(usage, kid, prior)
    if p is None:
        return None
    columns = {"pos": pa.array(np.arange(usage.num_rows)), "kid": pa.array(kid), "n": pa.array(n),
               "rule": pa.array(rule), "provider": usage.column("provider"),
               "quantity": usage.column("quantity"), "p": p}
    shares = duck.query(_PRICE_SORTED_SQL.format(cost_pq=cost_pq, cost_p=cost_p), {"usage": pa.table(columns)},
                        {"fee_bps": tariff.protocol_fee_bps})
    return pa.table({
        "batch": pa.array(np.full(usage.num_rows, batch, np.int64)),
        **{name: usage.column(name) for name in ("epoch", "consumer", "contract", "provider", "unit", "quantity")},
        **{name: shares.column(name) for name in ("amount_wei", "protocol_fee_wei", "provider_wei")},
    }).cast(LINE_SCHEMA)


def _prior_per_row(usage: pa.Table, kid: np.ndarray, prior: pa.Table | None) -> pa.Array | None:
    """The quantity settled before this batch of each row's price key (0 where none); None
    when the snapshot holds a key twice."""
    if prior is None or not prior.num_rows or not usage.num_rows:
        return pa.array(np.zeros(usage.num_rows, np.int64))
    starts = np.flatnonzero(np.concatenate([[True], kid[1:] != kid[:-1]]))
    keys = usage.select(list(PRICE_KEY)).take(pa.array(starts, pa.int64()))
    keys = keys.append_column("kid", pa.array(np.arange(len(starts))))
    by_kid = duck.query("SELECT coalesce(prior.quantity, 0)::DECIMAL(38, 0) AS p FROM keys k LEFT JOIN prior "
                        "ON prior.epoch = k.epoch AND prior.consumer = k.consumer AND prior.contract = k.contract "
                        "AND prior.unit = k.unit ORDER BY k.kid",
                        {"keys": keys, "prior": prior.select(SETTLED_QUANTITY_SCHEMA.names)})
    if by_kid.num_rows != len(starts):  # a key the prior snapshot holds twice: the reference decides
        return None
    return by_kid.column("p").combine_chunks().take(pa.array(kid, pa.int64()))


def _price_by_key_strings(usage: pa.Table, prior: pa.Table | None, tariff: Tariff, batch: int) -> pa.Table:
    rules, tiers = _tariff_tables(tariff)
    if prior is None:
        prior = SETTLED_QUANTITY_SCHEMA.empty_table()
    tables = {"usage": usage.select(USAGE_SCHEMA.names).cast(USAGE_SCHEMA),
              "prior": prior.select(SETTLED_QUANTITY_SCHEMA.names), "rules": rules, "tiers": tiers}
    params = {"batch": batch, "fee_bps": tariff.protocol_fee_bps}
    return duck.query(_PRICE_SQL, tables, params).cast(LINE_SCHEMA)


def price_usage_exact(usage: pa.Table, prior: Mapping[tuple, int], tariff: Tariff, batch: int) -> pa.Table:
    """The reference: the same lines as price_usage, in Python integers one pricing key at a
    time (settlement.fees), with no bound but DECIMAL(38,0) on the amounts."""
    usage = usage.sort_by([(c, "ascending") for c in USAGE_KEY]).combine_chunks()
    bounds = _group_starts(usage, PRICE_KEY)
    quantities = exact_ints(usage.column("quantity"))
    providers = usage.column("provider").to_pylist()
    key_rows = usage.select(list(PRICE_KEY)).take(pa.array(bounds[:-1], pa.int64())).to_pylist() \
        if usage.num_rows else []
    fee_bps = tariff.protocol_fee_bps
    rules = {}
    shares: list[int] = []
    for (start, end), key_row in zip(zip(bounds, bounds[1:]), key_rows):
        key = (key_row["epoch"], key_row["consumer"], key_row["contract"], key_row["unit"])
        rule = rules.get(key[2:])
        if rule is None:
            rule = rules[key[2:]] = tariff.price_for(key[2], key[3])
            if rule is None:
                raise InvariantBroken(f"usage of unit {key[3]!r} on {key[2]} reached pricing without a price")
        group = quantities[start:end]
        charge = marginal_charge(rule, prior.get(key, 0), sum(group))
        if charge > MAX_AMOUNT:
            _checked(charge, f"the charge of epoch {key[0]} for {key[1]} on {key[2]} ({key[3]})")
        if end - start == 1:
            shares.append(charge)
        else:
            split = allocate(charge, dict(zip(providers[start:end], group)))
            shares.extend(split[p] for p in providers[start:end])
    fees = [protocol_fee(share, fee_bps) for share in shares]
    return pa.table({
        "batch": pa.array([batch] * usage.num_rows, pa.int64()),
        "epoch": usage.column("epoch"), "consumer": usage.column("consumer"),
        "contract": usage.column("contract"), "provider": usage.column("provider"),
        "unit": usage.column("unit"), "quantity": usage.column("quantity"),
        "amount_wei": decimal_column(shares),
        "protocol_fee_wei": decimal_column([fee for fee, _ in fees]),
        "provider_wei": decimal_column([rest for _, rest in fees]),
    }, schema=LINE_SCHEMA)


def settled_quantities_after(previous: pa.Table, usage: pa.Table) -> pa.Table:
    """The ledger's quantity snapshot once `usage` is settled."""
    parts = [p.select(SETTLED_QUANTITY_SCHEMA.names).cast(SETTLED_QUANTITY_SCHEMA)
             for p in (previous, usage) if p is not None and p.num_rows]
    if not parts:
        return SETTLED_QUANTITY_SCHEMA.empty_table()
    keys = ", ".join(PRICE_KEY)
    return duck.query(f"SELECT {keys}, sum(quantity)::DECIMAL(38, 0) AS quantity FROM t GROUP BY {keys} "
                      f"ORDER BY {keys}", {"t": pa.concat_tables(parts)}).cast(SETTLED_QUANTITY_SCHEMA)
