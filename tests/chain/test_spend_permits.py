"""SpendPermit EIP-712 signing (sinks.chain.spend_permits) agrees with the registry on a real node."""
from __future__ import annotations

import pytest
from eth_account import Account

from settlement.errors import UsageError
from sinks.chain.artifacts import TEST_WALLET
from sinks.chain.deployment import contract
from sinks.chain.spend_permits import SpendPermit, digest, recover_signer, sign_permit
from tests.chain.helpers import address, permit


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


def test_permit_signer_decides_as_submit_permit_does(registry, dev, as_account, new_account):
    consumer_account, payee = new_account(), address()
    consumer = consumer_account.address
    own = permit(registry, consumer_account, payee, 10)
    assert registry.permit_signer(own) == consumer
    delegate = Account.create()
    delegated = permit(registry, delegate, payee, 20, consumer=consumer)
    assert registry.permit_signer(delegated) is None
    as_account(consumer_account).authorize_signer(delegate.address)
    assert registry.permit_signer(delegated) == delegate.address
    assert registry.permit_signer(permit(registry, consumer_account, payee, 10, chain_id=1)) is None
    assert registry.permit_signer(permit(registry, consumer_account, payee, 10, registry_address=address())) is None

    owner = Account.create()
    wallet = dev.send(contract(dev.w3, TEST_WALLET).constructor(owner.address), "deploy wallet").receipt["contractAddress"]
    assert registry.permit_signer(permit(registry, owner, payee, 5, consumer=wallet)) == wallet
    assert registry.permit_signer(permit(registry, Account.create(), payee, 5, consumer=wallet)) is None

    registry.submit_permit(own)
    registry.submit_permit(delegated)
    assert [(e["cumulativeAmount"], e["signer"]) for e in registry.permit_events(consumer=consumer)] == [
        (10, consumer), (20, delegate.address)]
