"""Tariff parsing: every bad entry is refused with a message naming it."""
import pytest

from settlement.errors import InvalidTariff
from settlement.tariff import load_tariff, parse_tariff

GOOD = {
    "version": "2026-11-a", "epoch_seconds": 3600, "protocol_fee_bps": 250,
    "treasury": "0x000000000000000000000000000000000000Fee5",
    "prices": [{"contract": "*", "unit": "request", "per": 1000,
                "tiers": [{"up_to": 100000, "price_wei": "2000000000000"},
                          {"up_to": None, "price_wei": "1000000000000"}]}],
}


def with_(**changes):
    return {**GOOD, **changes}


def test_good_tariff_parses_and_prices_a_unit():
    tariff = parse_tariff(GOOD)
    rule = tariff.price_for("0x0000000000000000000000000000000000000001", "request")
    assert rule.per == 1000 and rule.tiers[0].price_wei == 2_000_000_000_000
    assert tariff.price_for("0x0000000000000000000000000000000000000001", "byte") is None


def test_exact_contract_beats_star():
    exact = "0x0000000000000000000000000000000000000001"
    data = with_(prices=GOOD["prices"] + [{"contract": exact, "unit": "request",
                                            "tiers": [{"up_to": None, "price_wei": 7}]}])
    tariff = parse_tariff(data)
    assert tariff.price_for(exact, "request").tiers[0].price_wei == 7
    assert tariff.price_for("0x0000000000000000000000000000000000000002", "request").per == 1000


def test_hash_ignores_spelling_but_not_prices():
    same = with_(epoch_seconds="3600", prices=[{**GOOD["prices"][0], "per": "1000"}])
    assert parse_tariff(same).hash == parse_tariff(GOOD).hash
    other = with_(protocol_fee_bps=251)
    assert parse_tariff(other).hash != parse_tariff(GOOD).hash


@pytest.mark.parametrize("data, named", [
    (with_(protocol_fee_bps=10001), "protocol_fee_bps"),
    (with_(protocol_fee_bps=2.5), "protocol_fee_bps"),
    (with_(epoch_seconds=0), "epoch_seconds"),
    (with_(treasury="0x123"), "treasury"),
    (with_(version=None), "version"),
    (with_(prices=[]), "prices"),
    (with_(prices=[{"unit": "request", "tiers": [{"up_to": 10, "price_wei": 1}]}]), "prices[0].tiers[0].up_to"),
    (with_(prices=[{"unit": "request", "tiers": [{"up_to": 10, "price_wei": 1}, {"up_to": 5, "price_wei": 1},
                                                  {"up_to": None, "price_wei": 1}]}]), "prices[0].tiers[1].up_to"),
    (with_(prices=[{"unit": "request", "tiers": [{"up_to": None, "price_wei": "1.5"}]}]), "price_wei"),
    (with_(prices=[{"unit": "request", "tiers": [{"up_to": None, "price_wei": -1}]}]), "price_wei"),
    (with_(prices=[{"unit": "request", "per": 0, "tiers": [{"up_to": None, "price_wei": 1}]}]), "per"),
    (with_(prices=[{"unit": "", "tiers": [{"up_to": None, "price_wei": 1}]}]), "prices[0].unit"),
    (with_(prices=GOOD["prices"] * 2), "prices[1]"),
    (with_(surprise=1), "surprise"),
])
def test_bad_entry_is_refused_naming_it(data, named):
    with pytest.raises(InvalidTariff, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_tariff(data)


def test_spec_example_treasury_reads_with_a_warning():
    with pytest.warns(UserWarning, match="EIP-55"):
        tariff = parse_tariff(with_(treasury="0x000000000000000000000000000000000000fEE5"))
    assert tariff.treasury == "0x000000000000000000000000000000000000Fee5"


def test_missing_and_unparseable_files_are_named(tmp_path):
    with pytest.raises(InvalidTariff, match="does not exist"):
        load_tariff(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed")
    with pytest.raises(InvalidTariff, match="bad.yaml"):
        load_tariff(bad)
