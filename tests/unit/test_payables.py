"""What each consumer owes each payee: provider_wei to providers, fees to the treasury,
cumulative across batches."""
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.events import AMOUNT_TYPE
from settlement.payables import (CUMULATIVE_SCHEMA, batch_amounts, cumulative_after, leaves_and_cumulative,
                                 payables)
from settlement.pricing import LINE_SCHEMA

TREASURY = "0x000000000000000000000000000000000000Fee5"
A, B, C = ("0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40)


def lines(rows):
    return pa.Table.from_pylist([
        {"batch": 1, "epoch": 0, "consumer": consumer, "contract": C, "provider": provider, "unit": "u",
         "quantity": 1, "amount_wei": fee + rest, "protocol_fee_wei": fee, "provider_wei": rest}
        for consumer, provider, fee, rest in rows], schema=LINE_SCHEMA)


def test_providers_get_provider_wei_and_the_treasury_every_fee():
    amounts = batch_amounts(lines([(C, A, 2, 98), (C, B, 1, 49), (C, A, 0, 10)]), TREASURY)
    assert amounts == {(C, A): 108, (C, B): 49, (C, TREASURY): 3}


def test_a_treasury_that_is_also_a_provider_gets_one_leaf_with_both():
    amounts = batch_amounts(lines([(C, TREASURY, 2, 98), (C, B, 1, 49)]), TREASURY)
    assert amounts == {(C, TREASURY): 101, (C, B): 49}


def test_zero_amounts_have_no_leaf():
    assert batch_amounts(lines([(C, A, 0, 0)]), TREASURY) == {}


def test_leaves_carry_the_cumulative_amount_through_the_batch():
    prior = {(C, A): 500, (C, B): 7}
    leaves = payables({(C, A): 100}, prior)
    assert [(l.payee, l.amount_wei, l.cumulative_wei) for l in leaves] == [(A, 100, 600)]
    after = cumulative_after(prior, leaves)
    assert dict(zip(zip(after.column("consumer").to_pylist(), after.column("payee").to_pylist()),
                    (int(x) for x in after.column("cumulative_wei").to_pylist()))) == {(C, A): 600, (C, B): 7}


def _reference(table, treasury, prior_table):
    from settlement.payables import cumulative_by_pair
    prior = cumulative_by_pair(prior_table)
    leaves = payables(batch_amounts(table, treasury), prior)
    return leaves, cumulative_after(prior, leaves)


@given(st.lists(st.tuples(st.sampled_from([A, B, C, TREASURY]), st.sampled_from([A, B, TREASURY]),
                          st.integers(0, 10**30), st.integers(0, 10**37)), max_size=30),
       st.lists(st.tuples(st.sampled_from([A, B, C]), st.sampled_from([A, B, TREASURY]),
                          st.integers(1, 10**37)), max_size=6, unique_by=lambda r: r[:2]))
@settings(max_examples=60, deadline=None)
def test_leaves_in_duckdb_equal_the_python_reference(rows, prior_rows):
    prior = pa.table({"consumer": [r[0] for r in prior_rows], "payee": [r[1] for r in prior_rows],
                      "cumulative_wei": pa.array([str(r[2]) for r in prior_rows]).cast(AMOUNT_TYPE)},
                     schema=CUMULATIVE_SCHEMA) if prior_rows else None
    table = lines(rows)
    leaves, after = leaves_and_cumulative(table, TREASURY, prior)
    expected_leaves, expected_after = _reference(table, TREASURY, prior)
    assert leaves == expected_leaves
    assert after.equals(expected_after)


def test_a_cumulative_beyond_38_digits_falls_back_to_the_reference():
    prior = pa.table({"consumer": [C], "payee": [A], "cumulative_wei": pa.array([str(10**38 - 1)]).cast(AMOUNT_TYPE)},
                     schema=CUMULATIVE_SCHEMA)
    with pytest.raises(Exception):  # the reference refuses to write what DECIMAL(38,0) cannot hold
        leaves_and_cumulative(lines([(C, A, 0, 5)]), TREASURY, prior)
