"""Address normalisation (EIP-55) and the accepted timestamp forms."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.addresses import AddressError, normalize_address
from settlement.timestamps import TimestampError, epoch_of, parse_timestamp_ms

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own test vector


def test_lowercase_and_uppercase_hex_are_accepted_and_checksummed():
    assert normalize_address(CHECKSUMMED.lower()) == CHECKSUMMED
    assert normalize_address("0x" + CHECKSUMMED[2:].upper()) == CHECKSUMMED


def test_mixed_case_must_pass_the_checksum():
    assert normalize_address(CHECKSUMMED) == CHECKSUMMED
    wrong = CHECKSUMMED[:-1] + CHECKSUMMED[-1].swapcase()
    with pytest.raises(AddressError, match="checksum"):
        normalize_address(wrong)


@pytest.mark.parametrize("text", ["", "0x", "0x123", "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                                  "0x" + "g" * 40, "0x" + "a" * 41])
def test_malformed_addresses_are_refused(text):
    with pytest.raises(AddressError):
        normalize_address(text)


@pytest.mark.parametrize("value, ms", [
    (0, 0),
    (1_795_000_000_123, 1_795_000_000_123),
    ("1795000000123", 1_795_000_000_123),
    ("1970-01-01T00:00:00Z", 0),
    ("2026-11-24T10:00:00.123Z", 1_795_514_400_123),
    ("2026-11-24T12:00:00.1239+02:00", 1_795_514_400_123),   # fraction below 1 ms truncated
    ("2026-11-24T05:30:00.5-04:30", 1_795_514_400_500),
])
def test_timestamp_forms_parse_to_milliseconds(value, ms):
    assert parse_timestamp_ms(value) == ms


@pytest.mark.parametrize("value", [1.5, -1, "-5", "2026-11-24T10:00:00", "2026-11-24", "1969-12-31T23:59:59Z",
                                   "2026-02-30T00:00:00Z", True, None, "2026-11-24T10:00:00+25:00"])
def test_bad_timestamps_are_refused(value):
    with pytest.raises(TimestampError):
        parse_timestamp_ms(value)


def test_epoch_is_floor_of_seconds_over_epoch_length():
    assert epoch_of(3_599_999, 3600) == 0
    assert epoch_of(3_600_000, 3600) == 1
    assert epoch_of(1_795_514_400_123, 3600) == 1_795_514_400 // 3600


@given(st.binary(min_size=20, max_size=20), st.sampled_from(["lower", "upper", "checksum"]))
@settings(max_examples=300, deadline=None)
def test_our_checksum_equals_eth_utils(raw, case):
    from eth_utils import to_checksum_address as reference

    from settlement.addresses import to_checksum_address
    text = "0x" + raw.hex()
    text = {"lower": text, "upper": "0x" + raw.hex().upper(), "checksum": reference(text)}[case]
    assert to_checksum_address(text) == reference(text)
    assert normalize_address(text) == reference(text)
