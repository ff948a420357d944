"""Pricing a batch's usage: DuckDB's 128-bit SQL gives, line for line, what the Python reference
(settlement.fees, one key at a time) gives, and hands over to it where 128 bits do not suffice."""
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement import pricing
from settlement.errors import InvariantBroken, UsageError
from settlement.pricing import (SETTLED_QUANTITY_SCHEMA, USAGE_SCHEMA, price_usage, price_usage_exact,
                                quantities_by_key)
from settlement.tariff import parse_tariff
from tests.support.events import CONSUMER, CONSUMER_2, CONTRACT, TREASURY

PROVIDERS = ["0x1000000000000000000000000000000000000001", "0x2000000000000000000000000000000000000002",
             "0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa", "0xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAb"]
OTHER_CONTRACT = "0x6000000000000000000000000000000000000006"


def tariff(per=10, prices=("1000", "500"), bound=100, fee_bps=250, exact_price=None):
    prices_ = [{"contract": "*", "unit": "request", "per": per,
                "tiers": [{"up_to": bound, "price_wei": prices[0]}, {"up_to": None, "price_wei": prices[1]}]},
               {"contract": "*", "unit": "byte", "tiers": [{"up_to": None, "price_wei": "3"}]}]
    if exact_price is not None:
        prices_.append({"contract": OTHER_CONTRACT, "unit": "request",
                        "tiers": [{"up_to": None, "price_wei": exact_price}]})
    return parse_tariff({"version": "t", "epoch_seconds": 3600, "protocol_fee_bps": fee_bps,
                         "treasury": TREASURY, "prices": prices_})


def usage_table(rows):
    return pa.table({name: [r[i] for r in rows] for i, name in enumerate(USAGE_SCHEMA.names)},
                    schema=USAGE_SCHEMA) if rows else USAGE_SCHEMA.empty_table()


def prior_table(rows):
    return pa.table({name: [r[i] for r in rows] for i, name in enumerate(SETTLED_QUANTITY_SCHEMA.names)},
                    schema=SETTLED_QUANTITY_SCHEMA) if rows else None


keys = st.tuples(st.integers(0, 2), st.sampled_from([CONSUMER, CONSUMER_2]),
                 st.sampled_from([CONTRACT, OTHER_CONTRACT]), st.sampled_from(["request", "byte"]))
usages = st.dictionaries(st.tuples(keys, st.sampled_from(PROVIDERS)),
                         st.integers(1, 10**6).map(Decimal), max_size=25)
priors = st.dictionaries(keys, st.integers(0, 10**4).map(Decimal), max_size=6)
tariffs = st.builds(tariff, per=st.integers(1, 1000),
                    prices=st.tuples(st.integers(0, 10**15).map(str), st.integers(0, 10**15).map(str)),
                    bound=st.integers(1, 5000), fee_bps=st.integers(0, 10_000),
                    exact_price=st.one_of(st.none(), st.integers(0, 10**9).map(str)))


@settings(max_examples=120, deadline=None)
@given(usages, priors, tariffs)
def test_sql_lines_equal_the_python_reference(usage, prior, rules):
    table = usage_table([(*key, provider, q) for (key, provider), q in usage.items()])
    prior_rows = prior_table([(*key, q) for key, q in prior.items()])
    expected = price_usage_exact(table, quantities_by_key(prior_rows) if prior_rows else {}, rules, 3)
    assert price_usage(table, prior_rows, rules, 3).equals(expected)


@settings(max_examples=120, deadline=None)
@given(usages, priors, tariffs, st.randoms(use_true_random=False))
def test_sorted_key_pricing_equals_the_string_keyed_sql_and_the_reference(usage, prior, rules, rng):
    """The sorted, integer-keyed query prices every row itself (no hand-over to the reference
    here: 128 bits suffice) and gives the lines of the string-keyed query, whatever the row order."""
    rows = [(*key, provider, q) for (key, provider), q in usage.items()]
    rng.shuffle(rows)
    table = usage_table(rows)
    prior_rows = prior_table([(*key, q) for key, q in prior.items()])
    expected = price_usage_exact(table, quantities_by_key(prior_rows) if prior_rows else {}, rules, 3)
    lines = pricing._price_sorted(table, prior_rows, rules, 3)
    assert lines is not None and lines.equals(expected)
    half = table.num_rows // 2  # columns of several chunks (as DuckDB's results come) alike
    chunked = pa.concat_tables([table.slice(0, half), table.slice(half)])
    assert pricing._price_sorted(chunked, prior_rows, rules, 3).equals(expected)
    assert pricing._price_by_key_strings(table, prior_rows, rules, 3).equals(expected)


def test_equal_remainders_go_to_the_lowest_lowercase_address():
    # 10 wei over three equal quantities: 3 each and the odd wei to the lowest address in lowercase
    rules = tariff(per=1, prices=("10", "10"), bound=10**9, fee_bps=0)
    table = usage_table([(0, CONSUMER, CONTRACT, "request", p, Decimal(1)) for p in PROVIDERS[1:]])
    lines = price_usage(table, None, rules, 1)
    amounts = dict(zip(lines.column("provider").to_pylist(), lines.column("amount_wei").to_pylist()))
    assert sum(amounts.values()) == 30 and amounts[PROVIDERS[1]] == 10


def test_products_beyond_128_bits_are_priced_exactly_by_the_reference():
    huge = str(10**37)
    rules = tariff(per=1, prices=(huge, huge), bound=10**9)
    table = usage_table([(0, CONSUMER, CONTRACT, "request", PROVIDERS[0], Decimal(7)),
                         (0, CONSUMER, CONTRACT, "request", PROVIDERS[1], Decimal(2))])
    lines = price_usage(table, None, rules, 1)  # 9 * 10^37 < 10^38, but 9e37 * 7 overflows 128 bits
    assert lines.equals(price_usage_exact(table, {}, rules, 1))
    assert sum(int(a) for a in lines.column("amount_wei").to_pylist()) == 9 * 10**37


def test_a_charge_beyond_decimal_38_is_refused_with_its_key():
    rules = tariff(per=1, prices=(str(10**37), str(10**37)), bound=10**9)
    table = usage_table([(0, CONSUMER, CONTRACT, "request", PROVIDERS[0], Decimal(11))])
    with pytest.raises(UsageError, match="exceeds DECIMAL"):
        price_usage(table, None, rules, 1)


def test_usage_of_an_unpriced_unit_is_a_bug_not_a_dropped_line():
    table = usage_table([(0, CONSUMER, CONTRACT, "gas", PROVIDERS[0], Decimal(1))])
    with pytest.raises(InvariantBroken, match="gas"):
        price_usage(table, None, tariff(), 1)
