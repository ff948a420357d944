"""The Python API `meterroot demo` uses: a chain under OUT, deploy, commit, permits, fund, claim."""
from __future__ import annotations

from eth_account import Account

from settlement.errors import ChainError
from sinks.chain import deploy_local, settle_with_permits, start_local_chain, stop_local_chain
from sinks.chain.batch_files import find_leaf, load_tree, read_batch
from pipelines.cli import main
from sinks.chain.local import connect_registry
from tests.support.events import PROVIDER_A, TARIFF, event, write_jsonl, write_tariff


def test_consumers_permits_pay_every_leaf_of_theirs_and_only_theirs(tmp_path):
    out = tmp_path / "out"
    chain = start_local_chain(out)
    try:
        deployment = deploy_local(chain.url, deployment_file=out / "chain" / "deployment.json")
        assert (out / "chain" / "deployment.json").exists()
        signer, silent = Account.create(), Account.create()
        payee, treasury = PROVIDER_A, deployment.treasury
        usage = write_jsonl(tmp_path / "usage.jsonl", [event("s-1", consumer=signer.address, quantity=400),
                                                       event("s-2", consumer=silent.address, quantity=30)])
        tariff = write_tariff(tmp_path / "tariff.json", TARIFF | {"treasury": treasury})
        assert main(["batch", "--input", str(usage), "--tariff", str(tariff), "--output", str(out), "--chain-id",
                     str(deployment.chain_id), "--registry", deployment.registry, "--no-validate"]) == 0
        local = read_batch(out, 1)
        owed = {p: find_leaf(local, load_tree(local), signer.address, p).cumulative for p in (payee, treasury)}

        result = settle_with_permits(out, deployment, {signer.address: signer.key}, skip_validation=True)

        assert [c.action for c in result.commits] == ["committed"]
        assert result.ingested.total("accepted") == 2 and result.ingested.total("quarantined") == 0
        assert result.deposited == {signer.address: sum(owed.values())}
        assert result.staked == {payee: deployment.min_provider_stake}
        assert sorted(c.claim.paid for c in result.claims) == sorted(owed.values())
        assert result.balances == {p: (0, paid) for p, paid in owed.items()}

        registry = connect_registry(deployment)
        leaf = find_leaf(local, load_tree(local), silent.address, payee)
        registry.deposit_for(silent.address, leaf.cumulative, mint=True)
        try:
            registry.claim(1, silent.address, payee, leaf.cumulative, leaf.proof)
            raise AssertionError("a leaf without a permit was paid")
        except ChainError as refused:
            assert "NothingPayable" in str(refused)
    finally:
        stop_local_chain(out)
    assert (out / "chain" / "anvil-state.json").exists()

