"""Off-chain permit checks against the real registry and an ERC-1271 wallet on anvil."""
from __future__ import annotations

import json

import pytest
from eth_account import Account

from pipelines.cli import main
from settlement.permits import AUTHORIZED, EOA, WALLET, InvalidPermit, eip712_digest, sign_permit, verify_permit
from sinks.chain.artifacts import TEST_WALLET
from sinks.chain.deployment import contract
from sinks.chain.permit_check import ChainSignatureOracle, registry_reader
from sinks.permit_files import write_permit_file
from tests.support.events import PROVIDER_A, event, write_jsonl, write_tariff


@pytest.fixture
def wallet(dev, w3):
    """A TestWallet (ERC-1271) owned by a fresh key: (wallet address, owner account)."""
    owner = Account.create()
    address = dev.send(contract(w3, TEST_WALLET).constructor(owner.address), "deploy TestWallet").receipt[
        "contractAddress"]
    return address, owner


@pytest.fixture
def oracle(w3, deployment):
    return ChainSignatureOracle(w3, registry_reader(w3, deployment.registry))


def test_digest_is_the_registrys_own(registry, deployment):
    consumer, payee = Account.create().address, PROVIDER_A
    for amount in (0, 1, 10**30, 2**256 - 1):
        assert eip712_digest(deployment.chain_id, deployment.registry, consumer, payee, amount) == \
            registry.permit_digest(consumer, payee, amount)


def test_wallet_permit_is_accepted_through_the_chain(deployment, wallet, oracle):
    address, owner = wallet
    permit = sign_permit(owner.key, deployment.chain_id, deployment.registry, address, PROVIDER_A, 500)
    assert verify_permit(permit, deployment.chain_id, deployment.registry, oracle) == WALLET
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(permit, deployment.chain_id, deployment.registry)   # no chain: cannot be told
    assert "--rpc-url" in str(refused.value)


def test_wallet_refuses_a_permit_signed_by_another_key(deployment, wallet, oracle):
    address, _ = wallet
    permit = sign_permit(Account.create().key, deployment.chain_id, deployment.registry, address, PROVIDER_A, 500)
    with pytest.raises(InvalidPermit) as refused:
        verify_permit(permit, deployment.chain_id, deployment.registry, oracle)
    assert refused.value.reason == "bad_signature" and "ERC-1271" in str(refused.value)


def test_authorised_signer_is_accepted_once_authorised(deployment, oracle, as_account, new_account):
    consumer, signer = new_account(), Account.create()
    permit = sign_permit(signer.key, deployment.chain_id, deployment.registry, consumer.address, PROVIDER_A, 9)
    with pytest.raises(InvalidPermit, match="has not authorised"):
        verify_permit(permit, deployment.chain_id, deployment.registry, oracle)
    as_account(consumer).authorize_signer(signer.address)
    assert verify_permit(permit, deployment.chain_id, deployment.registry, oracle) == AUTHORIZED
    own = sign_permit(consumer.key, deployment.chain_id, deployment.registry, consumer.address, PROVIDER_A, 9)
    assert verify_permit(own, deployment.chain_id, deployment.registry, oracle) == EOA


def test_permits_cli_checks_wallets_with_rpc_url_and_lists_the_registrys_permits(
        tmp_path, deployment, wallet, anvil_url, registry, capsys):
    address, owner = wallet
    tariff = write_tariff(tmp_path / "tariff.json")
    out = tmp_path / "out"
    usage = write_jsonl(tmp_path / "usage.jsonl", [event("w-1", consumer=address, quantity=50)])
    assert main(["batch", "--input", str(usage), "--tariff", str(tariff), "--output", str(out), "--chain-id",
                 str(deployment.chain_id), "--registry", deployment.registry, "--no-validate"]) == 0
    permit = sign_permit(owner.key, deployment.chain_id, deployment.registry, address, PROVIDER_A, 123)
    file = tmp_path / "wallet.jsonl"
    write_permit_file(file, [permit])
    capsys.readouterr()

    assert main(["permits", "--output", str(out), "--ingest", str(file)]) == 1
    err = capsys.readouterr().err  # without the chain, the owner's signature is no proof of the wallet's consent
    assert f"{file}:1: bad_signature" in err and "ERC-1271 wallet" in err and "--rpc-url" in err

    registry.submit_permit(permit)  # the registry's SignatureChecker accepts it as well
    assert main(["permits", "--output", str(out), "--ingest", str(file), "--rpc-url", anvil_url, "--json"]) == 0
    captured = capsys.readouterr()
    assert "accepted 1, duplicates 0, quarantined 0" in captured.err
    [pair] = [p for p in json.loads(captured.out)["pairs"] if p["payee"] == PROVIDER_A]
    assert (pair["permitted"], pair["permitted_on_chain"]) == ("123", "123")

    assert main(["permits", "--output", str(out), "--rpc-url", "http://127.0.0.1:9"]) == 1
    assert "no Ethereum node answers" in capsys.readouterr().err

