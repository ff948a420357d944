"""The SDK prices its meter exactly as the batch pipeline prices the same usage in one batch
(settlement.pricing's reference), and the gateway's credit book agrees for one provider."""
from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
from hypothesis import given, settings, strategies as st

from meterroot.gateway.credit import CreditBook
from meterroot.sdk.meter import Meter, Receipt
from settlement.pricing import USAGE_SCHEMA, price_usage_exact
from settlement.tariff import parse_tariff

TARIFF = parse_tariff({
    "version": "t", "epoch_seconds": 3600, "protocol_fee_bps": 250,
    "treasury": "0x000000000000000000000000000000000000Fee5",
    "prices": [{"contract": "*", "unit": "request", "per": 1000,
                "tiers": [{"up_to": 50, "price_wei": "2000000000007"}, {"up_to": None, "price_wei": "999999999991"}]},
               {"contract": "*", "unit": "compute_unit",
                "tiers": [{"up_to": 300, "price_wei": "5000000003"}, {"up_to": None, "price_wei": "3000000001"}]}]})
CONTRACT = "0x00000000000000000000000000000000000E7c01"
PROVIDERS = ["0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20]
CONSUMER = "0x" + "d4" * 20

receipts = st.lists(st.tuples(st.sampled_from(PROVIDERS), st.integers(0, 3), st.integers(1, 3), st.integers(1, 90)),
                    min_size=1, max_size=60)


def pipeline_owed(rows) -> dict[str, int]:
    usage = defaultdict(int)
    for provider, epoch, requests, cu in rows:
        usage[(epoch, "request", provider)] += requests
        usage[(epoch, "compute_unit", provider)] += cu
    table = pa.table({"epoch": [k[0] for k in usage], "consumer": [CONSUMER] * len(usage),
                      "contract": [CONTRACT] * len(usage), "unit": [k[1] for k in usage],
                      "provider": [k[2] for k in usage], "quantity": [str(v) for v in usage.values()]}
                     ).cast(USAGE_SCHEMA)
    lines = price_usage_exact(table, {}, TARIFF, 1).to_pylist()
    owed = defaultdict(int)
    for line in lines:
        owed[line["provider"]] += int(line["provider_wei"])
        owed[TARIFF.treasury] += int(line["protocol_fee_wei"])
    return {p: a for p, a in owed.items() if a}


@settings(max_examples=60, deadline=None)
@given(receipts)
def test_sdk_owes_each_payee_what_one_batch_of_the_same_usage_owes(rows):
    meter = Meter(TARIFF)
    for n, (provider, epoch, requests, cu) in enumerate(rows):
        receipt = Receipt(f"r-{n}", epoch * 3_600_000 + n, (("request", requests), ("compute_unit", cu)))
        meter.record(receipt, contract=CONTRACT, provider=provider)
    assert meter.owed() == pipeline_owed(rows)


@settings(max_examples=40, deadline=None)
@given(receipts)
def test_gateway_credit_of_a_single_provider_equals_the_sdk(rows):
    provider = PROVIDERS[0]
    rows = [(provider, *rest) for _, *rest in rows]
    rows.sort(key=lambda r: r[1])  # a gateway's clock only moves forward
    book = CreditBook(TARIFF, provider=provider, contract=CONTRACT, chain_id=31337, registry=PROVIDERS[1])
    for _, epoch, requests, cu in rows:
        book.add(CONSUMER, epoch, (("request", requests), ("compute_unit", cu)))
    assert book.owed(CONSUMER) == pipeline_owed(rows)[provider]


def test_receipt_header_parses_and_refuses_junk():
    assert Receipt.parse('{"id":"x-1","t":5,"usage":{"request":1,"compute_unit":20}}').usage == \
        (("request", 1), ("compute_unit", 20))
    for junk in ("", "{}", '{"id":"x","t":1,"usage":{"request":0}}', "[1]"):
        try:
            Receipt.parse(junk)
        except ValueError:
            continue
        raise AssertionError(f"{junk!r} was accepted")
