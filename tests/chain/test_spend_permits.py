"""SpendPermit EIP-712 signing (sinks.chain.spend_permits) agrees with the registry on a real node."""
from __future__ import annotations

import pytest
from eth_account import Account

from settlement.errors import UsageError
from sinks.chain.spend_permits import SpendPermit, digest, recover_signer, sign_permit
from tests.chain.helpers import address


@pytest.mark.parametrize("amount", [0, 1, 10**18, 2**128, 2**256 - 1])
def test_the_digest_is_the_registrys(registry, amount):
    d = registry.deployment
    consumer, payee = address(), address()
    assert digest(d.chain_id, d.registry, consumer, payee, amount) == registry.permit_digest(consumer, payee, amount)


def test_a_signed_permit_recovers_its_signer_and_round_trips_through_json():
    key = Account.create()
    registry = address()
    permit = sign_permit(key, 31337, registry.lower(), key.address.lower(), address(), 12345)
    assert recover_signer(permit) == key.address and permit.registry == registry
    assert SpendPermit.from_json(permit.to_json()) == permit
    assert permit.to_json()["cumulative_amount"] == "12345" and len(permit.signature) == 65


@pytest.mark.parametrize("field, value, message", [
    ("cumulative_amount", "1.5", "not a whole number of wei"),
    ("cumulative_amount", str(2**256), "below 2\\^256"),
    ("consumer", "0x123", "permit consumer '0x123' is not an address"),
    ("chain_id", "1", "chain_id '1' is not a positive integer"),
    ("signature", "abc", "0x-prefixed"),
    ("signature", "0xzz", "not hex"),
])
def test_a_bad_permit_file_entry_names_its_field(field, value, message):
    data = sign_permit(Account.create(), 1, address(), address(), address(), 5).to_json()
    data[field] = value
    with pytest.raises(UsageError, match=message):
        SpendPermit.from_json(data)
    data.pop(field)
    with pytest.raises(UsageError, match=f"lacks the field '{field}'"):
        SpendPermit.from_json(data)
