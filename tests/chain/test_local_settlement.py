"""The Python API `meterroot demo` uses: a chain under OUT, deploy, commit, fund, claim."""
from __future__ import annotations

import pytest
from eth_account import Account

from settlement.errors import ChainError
from sinks.chain import deploy_local, settle_one_leaf, start_local_chain, stop_local_chain
from tests.chain.helpers import address, settlement_tree, write_batch


def test_settle_one_leaf_pays_the_payee_on_a_local_chain(tmp_path):
    out = tmp_path / "out"
    chain = start_local_chain(out)
    try:
        deployment = deploy_local(chain.url, deployment_file=out / "chain" / "deployment.json")
        assert (out / "chain" / "deployment.json").exists()
        consumer_key, payee, treasury = Account.create(), address(), deployment.treasury
        consumer = consumer_key.address
        for batch, owed in ((1, 400), (2, 1_000)):
            tree = settlement_tree(deployment.chain_id, deployment.registry, batch,
                                   [(consumer, payee, owed), (consumer, treasury, owed // 10)])
            write_batch(out, batch, tree, chain_id=deployment.chain_id, registry=deployment.registry)

        with pytest.raises(ChainError, match=r"NothingPayable\(batch=2, .*owed=1000, cause=1\)"):  # no permit
            settle_one_leaf(out, deployment, consumer=consumer, payee=payee, skip_validation=True)
        result = settle_one_leaf(out, deployment, consumer=consumer, payee=payee, consumer_key=consumer_key,
                                 skip_validation=True)

        assert [c.action for c in result.commits] == ["already committed", "already committed"]
        assert (result.batch, result.cumulative, result.deposited) == (2, 1_000, 0)  # funded by the first try
        assert (result.balance_before, result.balance_after) == (0, 1_000)
        assert result.claim.paid == 1_000

        again = settle_one_leaf(out, deployment, consumer_key=consumer_key, skip_validation=True)  # first leaf of batch 2
        assert [c.action for c in again.commits] == ["already committed", "already committed"]
        assert again.balance_after - again.balance_before == again.claim.paid
    finally:
        stop_local_chain(out)
    assert (out / "chain" / "anvil-state.json").exists()
