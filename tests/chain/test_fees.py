"""EIP-1559 fee choice and replacement bumps: exact integers, within the caps."""
from __future__ import annotations

import pytest

from settlement.errors import UsageError
from sinks.chain.fees import GWEI, FeeCaps, Fees, bumped_fees, gwei_to_wei, initial_fees
from sinks.chain.rpc import is_public_url, redact_url


def test_gwei_text_becomes_exact_wei():
    assert gwei_to_wei("30", "--max-fee-gwei") == 30 * GWEI
    assert gwei_to_wei("1.5", "--max-fee-gwei") == 1_500_000_000
    assert gwei_to_wei("0.000000001", "--max-fee-gwei") == 1
    for bad in ("1e9", "-1", "1.0000000001", "", "abc", "1,5"):
        with pytest.raises(UsageError, match="is not a number of gwei"):
            gwei_to_wei(bad, "--max-fee-gwei")


def test_a_first_attempt_offers_twice_the_base_fee_plus_the_tip_within_the_caps():
    assert initial_fees(10 * GWEI, 2 * GWEI, None, FeeCaps()) == Fees(22 * GWEI, 2 * GWEI)
    capped = initial_fees(10 * GWEI, 5 * GWEI, None, FeeCaps(max_fee=15 * GWEI, priority_fee=3 * GWEI))
    assert capped == Fees(15 * GWEI, 3 * GWEI)


def test_a_replacement_raises_both_fees_by_at_least_ten_percent_and_clears_the_base_fee():
    bumped = bumped_fees(Fees(22 * GWEI, 2 * GWEI), 40 * GWEI, FeeCaps())
    assert bumped.priority_fee == 2_250_000_000  # 9/8, rounded up
    assert bumped.max_fee == 2 * 40 * GWEI + bumped.priority_fee
    assert bumped_fees(Fees(8, 0), 0, FeeCaps()).priority_fee == 1  # even a zero tip rises


def test_no_replacement_when_the_caps_leave_no_room_for_ten_percent():
    assert bumped_fees(Fees(20 * GWEI, 2 * GWEI), 40 * GWEI, FeeCaps(max_fee=21 * GWEI)) is None
    assert bumped_fees(Fees(20 * GWEI, 2 * GWEI), 1, FeeCaps(priority_fee=2 * GWEI)) is None


def test_caps_must_be_consistent():
    with pytest.raises(UsageError, match="cannot exceed"):
        FeeCaps(max_fee=GWEI, priority_fee=2 * GWEI)


def test_rpc_urls_are_redacted_to_scheme_and_host():
    assert redact_url("https://user:pw@eth.example.org/v3/KEY?token=x#f") == "https://eth.example.org"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert redact_url("wss://[::1]:8546/KEY") == "wss://[::1]:8546"
    assert redact_url("not a url") == "<the RPC URL>"
    assert is_public_url("http://127.0.0.1:8545") and not is_public_url("https://eth.example.org/v3/KEY")
