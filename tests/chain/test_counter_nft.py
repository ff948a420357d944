"""The consumers' Counter NFT on a real node: minted on a first deposit, counters updated by the
registry as claims pay, on-chain JSON metadata, locked for good (ERC-5192)."""
from __future__ import annotations

import base64
import json

import pytest
from eth_account import Account
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from settlement.errors import ChainError
from sinks.chain.artifacts import decode_revert
from sinks.chain.rpc import Sender
from tests.chain.conftest import TREASURY
from tests.chain.helpers import address, claim, commit_tree, consent, finalize, leaf, settlement_tree, stake_provider

ERC5192 = bytes.fromhex("b45a3c0e")
ERC4906 = bytes.fromhex("49064906")
ERC721 = bytes.fromhex("80ac58cd")


def metadata(registry, token_id):
    uri = registry.token_uri(token_id)
    prefix = "data:application/json;base64,"
    assert uri.startswith(prefix)
    return json.loads(base64.b64decode(uri[len(prefix):]))


def attributes(registry, token_id):
    return {a["trait_type"]: a["value"] for a in metadata(registry, token_id)["attributes"]}


def test_first_deposit_mints_one_locked_token(registry):
    consumer = Account.create().address
    result = registry.deposit_for(consumer, 10, mint=True)
    nft = registry.counter_nft
    [transfer] = nft.events.Transfer().process_receipt(result.receipt, errors=DISCARD)
    [locked] = nft.events.Locked().process_receipt(result.receipt, errors=DISCARD)
    token_id = registry.counters(consumer).token_id
    assert token_id == 1 == transfer["args"]["tokenId"] == locked["args"]["tokenId"]
    assert transfer["args"]["to"] == consumer and nft.functions.ownerOf(token_id).call() == consumer
    registry.deposit_for(consumer, 10, mint=True)  # a second deposit mints nothing
    assert nft.functions.balanceOf(consumer).call() == 1 and nft.functions.totalMinted().call() == 1
    assert nft.functions.locked(token_id).call() is True
    assert all(nft.functions.supportsInterface(i).call() for i in (ERC5192, ERC4906, ERC721))


def test_counters_follow_the_claims_and_token_uri_is_valid_json(registry):
    consumer, provider = Account.create(), address()
    c = consumer.address
    d = registry.deployment
    stake_provider(registry, provider)
    registry.deposit_for(c, 5_000, mint=True)
    consent(registry, consumer, provider, 5_000)
    consent(registry, consumer, TREASURY, 5_000)
    token_id = registry.counters(c).token_id
    assert attributes(registry, token_id) == {"consumer": c, "wei paid": "0", "claims": 0, "last batch": 0}

    first = settlement_tree(d.chain_id, d.registry, 1, [(c, provider, 1_000), (c, TREASURY, 25)])
    second = settlement_tree(d.chain_id, d.registry, 2, [(c, provider, 1_700)])
    commit_tree(registry, 1, first)
    commit_tree(registry, 2, second, total=700)
    finalize(registry, 2)
    paid = claim(registry, 1, leaf(first, c, provider))
    [update] = registry.counter_nft.events.MetadataUpdate().process_receipt(
        registry.w3.eth.get_transaction_receipt(paid.tx_hash), errors=DISCARD)
    assert update["args"]["_tokenId"] == token_id
    claim(registry, 2, leaf(second, c, provider))
    claim(registry, 1, leaf(first, c, TREASURY))  # an older batch does not lower "last batch"
    claim(registry, 2, leaf(second, c, provider))  # pays nothing: not counted

    counters = registry.counters(c)
    assert (counters.wei_paid, counters.claims, counters.last_batch) == (1_725, 3, 2)
    data = metadata(registry, token_id)
    assert data["name"] == f"meterroot counter #{token_id}" and d.registry.lower() in data["description"]
    assert attributes(registry, token_id) == {"consumer": c, "wei paid": "1725", "claims": 3, "last batch": 2}


def test_transfers_and_approvals_revert(registry, w3, new_account):
    owner = new_account()
    registry.deposit_for(owner.address, 1, mint=True)
    token_id = registry.counters(owner.address).token_id
    nft = registry.counter_nft
    sender = Sender(w3, owner)
    for call in (nft.functions.transferFrom(owner.address, address(), token_id),
                 nft.functions.safeTransferFrom(owner.address, address(), token_id),
                 nft.functions.approve(address(), token_id),
                 nft.functions.setApprovalForAll(address(), True)):
        with pytest.raises(ChainError, match=r"TokenLocked"):
            sender.send(call, "move the counter")
    assert nft.functions.ownerOf(token_id).call() == owner.address


def test_only_the_registry_mints_and_updates(registry, dev):
    nft = registry.counter_nft
    with pytest.raises(ChainError, match=rf"NotRegistry\(caller={dev.address.lower()}\)"):
        dev.send(nft.functions.mintFor(dev.address), "mint a counter")
    with pytest.raises(ChainError, match=r"NotRegistry"):
        dev.send(nft.functions.recordClaim(dev.address, 1, 1), "fake a claim")
    with pytest.raises(ContractCustomError) as raised:
        registry.token_uri(99)
    assert decode_revert(raised.value.data) == "ERC721NonexistentToken(tokenId=99)"
