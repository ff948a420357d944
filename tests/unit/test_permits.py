"""SpendPermit typed data, signing and off-chain verification (settlement/permits.py)."""
from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account

from settlement.keccak import keccak256
from settlement.permits import (
    EOA,
    InvalidPermit,
    SpendPermit,
    eip712_digest,
    sign_permit,
    verify_permit,
)

CHAIN_ID = 31337
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_REGISTRY = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(scope="module")
def consumer():
    return Account.from_key(keccak256(b"permit test consumer"))


def test_digest_matches_an_independent_eip712_encoding():
    """The hash is EIP-712 spelled out with eth_abi: 0x1901 ‖ domainSeparator ‖ structHash."""
    consumer = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    domain_type = keccak256(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    separator = keccak256(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                                 [domain_type, keccak256(b"meterroot"), keccak256(b"2"), CHAIN_ID, REGISTRY]))
    permit_type = keccak256(b"SpendPermit(address consumer,address payee,uint256 cumulativeAmount)")
    struct = keccak256(encode(["bytes32", "address", "address", "uint256"], [permit_type, consumer, PAYEE, 10**30]))
    assert eip712_digest(CHAIN_ID, REGISTRY, consumer, PAYEE, 10**30) == keccak256(b"\x19\x01" + separator + struct)


def test_consumers_own_signature_is_recovered_and_accepted(consumer):
    permit = sign_permit(consumer.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 1_000)
    assert permit.recover_signer() == consumer.address
    assert verify_permit(permit, CHAIN_ID, REGISTRY) == EOA
    assert len(permit.signature) == 65


def test_signature_by_someone_else_is_refused(consumer):
    thief = Account.create()
    forged = sign_permit(thief.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 1_000)
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(forged, CHAIN_ID, REGISTRY)
    assert refused.value.reason == "bad_signature" and thief.address in str(refused.value)


def test_permit_for_another_registry_is_refused(consumer):
    permit = sign_permit(consumer.key, CHAIN_ID, OTHER_REGISTRY, consumer.address, PAYEE, 1_000)
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(permit, CHAIN_ID, REGISTRY)
    assert refused.value.reason == "wrong_registry"


def test_permit_relabelled_for_this_registry_does_not_verify(consumer):
    """Signed for another registry, its line edited to name this one: the signature no longer fits."""
    permit = sign_permit(consumer.key, CHAIN_ID, OTHER_REGISTRY, consumer.address, PAYEE, 1_000)
    relabelled = SpendPermit.from_json(permit.to_json() | {"registry": REGISTRY})
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(relabelled, CHAIN_ID, REGISTRY)
    assert refused.value.reason == "bad_signature"


def test_permit_for_another_chain_is_refused(consumer):
    permit = sign_permit(consumer.key, 1, REGISTRY, consumer.address, PAYEE, 1_000)
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(permit, CHAIN_ID, REGISTRY)
    assert refused.value.reason == "wrong_chain"
    relabelled = SpendPermit.from_json(permit.to_json() | {"chain_id": CHAIN_ID})
    with pytest.raises(InvalidPermit):
        verify_permit(relabelled, CHAIN_ID, REGISTRY)


def test_raised_amount_does_not_verify(consumer):
    permit = sign_permit(consumer.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 1_000)
    raised = SpendPermit.from_json(permit.to_json() | {"cumulative_amount": "1001"})
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(raised, CHAIN_ID, REGISTRY)
    assert refused.value.reason == "bad_signature"


def test_malleable_upper_half_signature_is_refused(consumer):
    """(r, n - s, v ^ 1) recovers the same key, but OpenZeppelin's ECDSA refuses it: so do we."""
    permit = sign_permit(consumer.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 1_000)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = permit.signature[:32], int.from_bytes(permit.signature[32:64], "big"), permit.signature[64]
    flipped = r + (n - s).to_bytes(32, "big") + bytes([55 - v])
    twin = SpendPermit.from_json(permit.to_json() | {"signature": "0x" + flipped.hex()})
    assert twin.recover_signer() is None
    with pytest.raises(InvalidPermit):
        verify_permit(twin, CHAIN_ID, REGISTRY)


def test_wallet_signature_without_a_chain_says_to_pass_rpc_url(consumer):
    permit = sign_permit(consumer.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 1_000)
    wallet_sig = SpendPermit.from_json(permit.to_json() | {"signature": "0x" + "ab" * 100})
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(wallet_sig, CHAIN_ID, REGISTRY)
    assert refused.value.reason == "unverified_wallet" and "--rpc-url" in str(refused.value)


def test_permit_line_round_trips_and_keeps_big_amounts_exact(consumer):
    permit = sign_permit(consumer.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 2**255 + 1)
    line = permit.to_json()
    assert line["cumulative_amount"] == str(2**255 + 1)
    assert SpendPermit.from_json(line) == permit
    assert SpendPermit.from_json(line | {"cumulative_amount": 7}).cumulative_amount == 7


@pytest.mark.parametrize("change, reason", [
    ({"consumer": "0x123"}, "bad_address"),
    ({"payee": None}, "malformed"),
    ({"cumulative_amount": "1.5"}, "bad_amount"),
    ({"cumulative_amount": 1.5}, "bad_amount"),
    ({"cumulative_amount": -1}, "bad_amount"),
    ({"cumulative_amount": str(2**256)}, "bad_amount"),
    ({"chain_id": True}, "malformed"),
    ({"signature": "abcd"}, "bad_signature"),
    ({"signature": "0xzz"}, "bad_signature"),
])
def test_ill_formed_lines_are_refused_with_their_reason(consumer, change, reason):
    line = sign_permit(consumer.key, CHAIN_ID, REGISTRY, consumer.address, PAYEE, 5).to_json() | change
    with pytest.raises(InvalidPermit) as refused:
        SpendPermit.from_json(line)
    assert refused.value.reason == reason
