"""reconcile: the SQL recomputation of SPEC §4 agrees with settlement/fees.py to the wei."""
from __future__ import annotations

import json
import random

import pytest

from expectations.reconcile import ReconcileLimit, reconcile_output
from settlement.errors import UsageError
from settlement.tariff import parse_tariff
from tests.quality.conftest import (CONSUMERS, address, CONTRACTS, EPOCH_SECONDS, FIRST_EPOCH, PROVIDERS, TARIFF,
                                    BatchInput, make_events, rewrite_json, rewrite_parquet, write_output)


def lines_file(out, batch):
    return out / "settlement_lines" / f"batch={batch}" / "part-0.parquet"


def test_good_output_reconciles(good_output):
    report = reconcile_output(good_output)
    assert report.success
    assert report.compared_batches == (1, 2)
    assert report.lines_compared == 39


def test_one_wei_edit_is_caught(good_output):
    edited = {}

    def add_one_wei(rows):
        edited.update(rows[5])
        rows[5] = dict(rows[5], provider_wei=rows[5]["provider_wei"] + 1)
        return rows
    rewrite_parquet(lines_file(good_output, 2), add_one_wei)
    report = reconcile_output(good_output)
    assert not report.success
    (difference,) = report.differences
    assert difference["problem"] == "values differ"
    assert difference["recorded_provider_wei"] == edited["provider_wei"] + 1
    assert difference["expected_provider_wei"] == edited["provider_wei"]
    assert difference["recorded_amount_wei"] == difference["expected_amount_wei"]
    assert (difference["batch"], difference["provider"]) == (2, edited["provider"])


def test_missing_line_is_caught(good_output):
    rewrite_parquet(lines_file(good_output, 1), lambda rows: rows[:-1])
    (difference,) = reconcile_output(good_output).differences
    assert difference["problem"] == "line missing from settlement_lines"


def test_tariff_of_no_batch_is_a_usage_error(good_output, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(TARIFF, protocol_fee_bps=9)))
    with pytest.raises(UsageError, match="no batch of .* was priced with tariff"):
        reconcile_output(good_output, other)


def scenario(seed: int) -> tuple[list[BatchInput], dict]:
    """Random events over 3 batches (late usage included) and a random tiered tariff."""
    rng = random.Random(seed)
    tiers, bound = [], 0
    for _ in range(rng.randrange(1, 4)):
        bound += rng.randrange(1, 60)
        tiers.append({"up_to": bound, "price_wei": str(rng.choice([0, 1, 7, 10**rng.randrange(1, 28) + rng.randrange(999)]))})
    tiers.append({"up_to": None, "price_wei": str(rng.randrange(10**rng.randrange(1, 25)))})
    tariff = dict(TARIFF, protocol_fee_bps=rng.choice([0, 1, 250, 3333, 9999, 10000]),
                  prices=[{"contract": "*", "unit": "request", "per": rng.choice([1, 3, 1000]), "tiers": tiers},
                          {"contract": "*", "unit": "gb_second", "per": 7,
                           "tiers": [{"up_to": None, "price_wei": "1000000000000000001"}]}])
    epochs = [FIRST_EPOCH, FIRST_EPOCH + 1]
    return [BatchInput(make_events(rng, b, rng.randrange(5, 40), epochs)) for b in (1, 2, 3)], tariff


@pytest.mark.parametrize("seed", range(6))
def test_sql_agrees_with_fees_py_on_random_outputs(tmp_path, seed):
    inputs, tariff = scenario(seed)
    report = reconcile_output(write_output(tmp_path / "OUT", inputs, tariff))
    assert report.differences == []
    assert report.compared_batches == (1, 2, 3)


def test_remainder_ties_go_to_the_lowest_lowercase_address(tmp_path):
    # three providers with one unit each: cost(3) = 300 // 3 = 100 wei, 33 each and 1 left over
    tariff = dict(TARIFF, protocol_fee_bps=0,
                  prices=[{"contract": "*", "unit": "request", "per": 3,
                           "tiers": [{"up_to": None, "price_wei": "100"}]}])
    providers = providers_whose_case_changes_the_order()
    events = [{"provider": p, "event_id": f"tie-{i}", "node_id": "n", "consumer": CONSUMERS[0],
               "contract": CONTRACTS[0], "unit": "request", "quantity": 1,
               "timestamp_ms": FIRST_EPOCH * EPOCH_SECONDS * 1000, "token_id": None}
              for i, p in enumerate(providers)]
    out = write_output(tmp_path / "OUT", [BatchInput(events)], tariff)
    assert reconcile_output(out).success
    first, eip55_first = min(providers, key=str.lower), min(providers)
    assert first != eip55_first
    import pyarrow.parquet as pq
    shares = {r["provider"]: r["amount_wei"] for r in pq.read_table(lines_file(out, 1)).to_pylist()}
    assert shares == {p: 34 if p == first else 33 for p in providers}

    # the leftover wei given to the EIP-55-first provider instead is caught on both lines
    def misallocate(rows):
        return [dict(r, amount_wei=34 if r["provider"] == eip55_first else 33,
                     provider_wei=34 if r["provider"] == eip55_first else 33) for r in rows]
    rewrite_parquet(lines_file(out, 1), misallocate)
    differences = reconcile_output(out).differences
    assert sorted(d["provider"] for d in differences) == sorted([first, eip55_first])


def providers_whose_case_changes_the_order() -> list[str]:
    """Three addresses whose EIP-55 order differs from their lowercase order."""
    candidates = [address(n) for n in range(100, 200)]
    for a in candidates:
        for b in candidates:
            if a < b and a.lower() > b.lower():
                return [a, b, PROVIDERS[0]]
    raise AssertionError("no such pair")


def test_figures_beyond_128_bits_stop_with_an_error(good_output, tmp_path):
    huge = dict(TARIFF, prices=[{"contract": "*", "unit": u, "tiers": [{"up_to": None, "price_wei": str(10**37)}]}
                                for u in ("request", "gb_second")])
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(huge))
    digest = parse_tariff(huge).hash
    for batch in (1, 2):
        rewrite_json(good_output / "batches" / str(batch) / "manifest.json", lambda m: m.update(tariff_hash=digest))
    with pytest.raises(ReconcileLimit, match="2\\^127"):
        reconcile_output(good_output, path)


def test_recorded_tariff_edited_after_the_run_is_refused(good_output):
    def tamper(tariff):
        tariff["hash"] = "0" * 64
    rewrite_json(good_output / "ledger" / "tariff.json", tamper)
    with pytest.raises(UsageError, match="was edited"):
        reconcile_output(good_output)
