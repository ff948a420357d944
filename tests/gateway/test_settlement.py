"""A real request to a real claim: two SDK consumers use anvil's JSON-RPC through a gateway;
the gateway's usage files are settled by the batch pipeline; the permits the SDK signed are
exactly what the batch's leaves owe each payee; submitted from the SDK's permit files, they let
the provider and the treasury claim exactly that; the Counter NFTs count the claims."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from pipelines.batch import settle
from settlement.errors import ChainError
from sinks.chain.batch_files import find_leaf, load_tree, read_batch
from sinks.chain.permit_claims import highest, permits_from_file, submit_permits
from sinks.chain.registry import Registry, advance_time
from sinks.chain.rpc import Sender
from sinks.chain.settle import commit_output

REPO = Path(__file__).resolve().parents[2]
TARIFF = REPO / "pipelines" / "defaults" / "tariff.yaml"
METERING = yaml.safe_load((REPO / "pipelines" / "defaults" / "metering.yaml").read_text())
pytestmark = pytest.mark.slow


def _units(method: str) -> dict[str, int]:
    return METERING["methods"].get(method, METERING["default"])


def _use(session, requests: int, expected: Counter) -> None:
    """`requests` HTTP requests of several kinds; `expected` gets the units the table says."""
    address = session.consumer.address
    for i in range(requests):
        kind = i % 5
        if kind == 0:
            session.rpc("eth_blockNumber")
            expected.update(_units("eth_blockNumber"))
        elif kind == 1:
            session.rpc("eth_getBalance", [address, "latest"])
            expected.update(_units("eth_getBalance"))
        elif kind == 2:
            session.rpc("web3_clientVersion")  # not in the table: the default rule
            expected.update(_units("web3_clientVersion"))
        elif kind == 3:  # a JSON-RPC batch of three calls costs the three
            calls = [{"jsonrpc": "2.0", "id": n, "method": m, "params": []}
                     for n, m in enumerate(("eth_chainId", "eth_gasPrice", "eth_blockNumber"))]
            assert len(session.post("/", json=calls).json()) == 3
            for call in calls:
                expected.update(_units(call["method"]))
        else:
            session.rpc("eth_chainId")
            expected.update(_units("eth_chainId"))


def test_sdk_permits_equal_the_batch_and_claims_pay_exactly_that(chain, start_gateway, new_consumer, tmp_path):
    w3, deployment, registry = chain
    gateway = start_gateway()
    provider = gateway.provider.address
    registry.stake(1_000, provider=provider, mint=True)  # a provider payee needs the minimum stake
    consumers = [new_consumer(), new_consumer()]
    expected = {c.address: Counter() for c in consumers}
    for consumer, requests in zip(consumers, (150, 90)):
        with consumer.sign_in(gateway.url, permit_every_requests=25) as session:
            _use(session, requests, expected[consumer.address])
    gateway.stop()  # publishes the open usage file

    # The usage files hold exactly what was requested, with each consumer's Counter NFT id.
    events = [json.loads(line) for line in gateway.usage_lines()]
    metered = defaultdict(Counter)
    for event in events:
        metered[event["consumer"]][event["unit"]] += event["quantity"]
        assert event["provider"] == provider
    assert metered == expected
    tokens = {c.address: c.counter().token_id for c in consumers}
    assert {e["consumer"]: e["token_id"] for e in events} == tokens

    # The batch pipeline accepts every event and owes each payee what the SDK permitted.
    out = tmp_path / "out"
    result = settle([str(gateway.usage_dir / "usage-*.jsonl")], str(TARIFF), str(out), deployment.chain_id,
                    deployment.registry, ["--runner=FnApiRunner"])
    assert (result.run["accepted"], result.run["quarantined"]) == (len(events), 0)
    local = read_batch(out, result.batch)
    tree = load_tree(local)
    treasury = consumers[0].tariff.treasury
    for consumer in consumers:
        owed = consumer.owed()
        assert set(owed) == {provider, treasury}
        leaves = {payee: find_leaf(local, tree, consumer.address, payee).cumulative for payee in owed}
        assert leaves == owed
        signed = {p.payee: p.cumulative_amount for p in highest(permits_from_file(consumer.permit_file))}
        assert signed == owed
    kept = [json.loads(line) for line in (gateway.usage_dir / ".permits" / "latest.jsonl").read_text().splitlines()]
    assert {(p["consumer"], p["payee"]): int(p["cumulative_amount"]) for p in kept} == \
        {(c.address, payee): amount for c in consumers for payee, amount in c.owed().items()}

    # Permits from the SDK's own files on chain; the provider and the treasury claim.
    for consumer in consumers:
        submit_permits(registry, permits_from_file(consumer.permit_file))
    commit_output(out, registry, skip_validation=True)
    now, claimable = registry.block_timestamp(), registry.batch(result.batch).claimable_at
    advance_time(w3, max(claimable - now, 0) + 1)
    for consumer in consumers:
        before = consumer.balance().deposit
        for payee, amount in consumer.owed().items():
            leaf = find_leaf(local, tree, consumer.address, payee)
            paid = registry.claim(result.batch, consumer.address, payee, leaf.cumulative, leaf.proof)
            assert (paid.paid, paid.shortfall) == (amount, 0)
            again = registry.claim(result.batch, consumer.address, payee, leaf.cumulative, leaf.proof, gas=300_000)
            assert again.paid == 0
            assert consumer.collected(payee) == consumer.permitted(payee) == amount
        total = sum(consumer.owed().values())
        assert consumer.balance().deposit == before - total

        # The Counter NFT counted the two claims that paid, and says so in its on-chain tokenURI.
        counter = consumer.counter()
        assert (counter.token_id, counter.wei_paid, counter.claims, counter.last_batch) == \
            (tokens[consumer.address], total, 2, result.batch)
        assert counter.attribute("wei paid") == str(total)
        assert counter.attribute("claims") == 2 and counter.attribute("last batch") == result.batch
        assert counter.attribute("consumer") == consumer.address

    # And it cannot change hands.
    alice, bob = consumers
    nft = alice.wallet.reader.counter_contract()
    with pytest.raises(ChainError):
        Sender(w3, alice.account).send(
            nft.functions.transferFrom(alice.address, bob.address, tokens[alice.address]), "transferFrom",
            gas=200_000)
    assert nft.functions.ownerOf(tokens[alice.address]).call() == alice.address
