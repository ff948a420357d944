"""`meterroot chain ...` end to end on a hand-made output folder and a real anvil."""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from eth_account import Account

from pipelines.cli import main
from settlement.permits import sign_permit
from sinks.permit_files import write_permit_file
from settlement.errors import UsageError
from settlement.merkle import hash_leaf, process_proof
from sinks.chain import anvil
from sinks.chain.artifacts import TEST_TOKEN
from sinks.chain.deployment import contract
from sinks.chain.keys import _ANVIL_DEV_KEY
from sinks.chain.registry import advance_time
from tests.chain.conftest import CHALLENGE_PERIOD
from tests.chain.helpers import address, settlement_tree, write_batch


def run(capsys, *argv):
    code = main(["chain", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


SHORT_PERIODS = ("--challenge-period", CHALLENGE_PERIOD, "--max-batch-delay", 50, "--thaw-period", 300,
                 "--withdrawal-window", 100, "--dispute-period", 100, "--unstake-thaw", 250,
                 "--admin-delay", 60, "--min-provider-stake", 1_000, "--dispute-bond", 50)
"""Deploy options of the CLI tests: periods the tests skip on anvil's clock, stakes in test wei."""


@pytest.fixture
def deployed(tmp_path, anvil_url, capsys):
    """`chain deploy --test-token` into tmp_path/deployment.json; returns (file, its JSON)."""
    file = tmp_path / "deployment.json"
    code, out, err = run(capsys, "deploy", "--rpc-url", anvil_url, "--test-token", *SHORT_PERIODS, "--out", file)
    assert code == 0, err
    return file, json.loads(file.read_text())


def two_batches(out: Path, d: dict, consumer: str, payee: str, treasury: str):
    """Batch 1 owes payee 700 and treasury 30; batch 2 raises payee to 1000 (cumulative)."""
    first = settlement_tree(d["chain_id"], d["registry"], 1, [(consumer, payee, 700), (consumer, treasury, 30)])
    second = settlement_tree(d["chain_id"], d["registry"], 2, [(consumer, payee, 1_000)])
    write_batch(out, 1, first, chain_id=d["chain_id"], registry=d["registry"])
    write_batch(out, 2, second, chain_id=d["chain_id"], registry=d["registry"])
    return first, second


def test_deploy_commit_deposit_claim_status(tmp_path, deployed, capsys, caplog, w3):
    file, d = deployed
    assert {"chain_id", "registry", "token", "block", "transactions", "counter_nft"} <= d.keys()
    assert d["chain_id"] == 31337 and set(d["transactions"]) == {"token", "registry"}
    out = tmp_path / "out"
    consumer, payee = Account.create(), address()
    treasury = d["treasury"]
    _, second = two_batches(out, d, consumer.address, payee, treasury)

    code, printed, err = run(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation")
    assert code == 0, err
    assert "batch 1: committed root" in printed and "batch 2: committed root" in printed
    assert "validation gate skipped by --skip-validation (explicit override)" in err
    assert "batch 2: validation gate skipped" in caplog.text

    code, printed, err = run(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation")
    assert code == 0, err
    assert printed.count("already committed") == 2 and "committed root" not in printed

    code, printed, err = run(capsys, "deposit", "--deployment", file, "--consumer", consumer.address,
                             "--amount", 2_000, "--mint")
    assert code == 0, err
    assert "deposit now 2000 wei" in printed
    assert run(capsys, "stake", "--deployment", file, "--provider", payee, "--amount", 1_000, "--mint")[0] == 0
    permits = tmp_path / "permits.jsonl"
    write_permit_file(permits, [sign_permit(consumer.key, d["chain_id"], d["registry"], consumer.address, payee, 1_000),
                                sign_permit(consumer.key, d["chain_id"], d["registry"], consumer.address, treasury, 30)])

    code, printed, err = run(capsys, "claim", "--output", out, "--deployment", file, "--batch", 2,
                             "--consumer", consumer.address, "--payee", payee, "--permit", permits)
    assert code == 1 and "ChallengePeriodActive(batch=2" in err

    advance_time(w3, CHALLENGE_PERIOD)
    code, printed, err = run(capsys, "claim", "--output", out, "--deployment", file, "--batch", 2,
                             "--consumer", consumer.address, "--payee", payee, "--permit", permits)
    assert code == 0, err
    assert f"paid 1000 wei to {payee}" in printed and "claimWithPermit" in printed
    code, printed, err = run(capsys, "claim", "--output", out, "--deployment", file, "--batch", 1,
                             "--consumer", consumer.address, "--payee", treasury, "--permit", permits)
    assert code == 0 and f"paid 30 wei to {treasury}" in printed

    code, printed, err = run(capsys, "status", "--deployment", file, "--consumer", consumer.address)
    assert code == 0, err
    status = json.loads(printed)
    assert status["latest_batch"] == 2
    assert [b["state"] for b in status["batches"]] == ["final", "final"]
    assert status["batches"][1]["root"] == "0x" + second.root.hex()
    assert status["consumer"]["deposit"] == str(2_000 - 1_030)

    code, printed, err = run(capsys, "proof", "--output", out, "--batch", 2, "--consumer", consumer.address,
                             "--payee", payee)
    assert code == 0, err
    proof = json.loads(printed)
    assert proof["value"][3:] == [consumer.address, payee, "1000"]
    leaf = hash_leaf(second.leaf_encoding, proof["value"])
    assert "0x" + leaf.hex() == proof["leaf"]
    assert process_proof(leaf, [bytes.fromhex(p[2:]) for p in proof["proof"]]).hex() == proof["root"][2:]


def test_commit_refuses_a_tree_for_another_registry(tmp_path, deployed, capsys):
    file, d = deployed
    other = address()
    out = tmp_path / "out"
    tree = settlement_tree(d["chain_id"], other, 1, [(address(), address(), 5)])
    write_batch(out, 1, tree, chain_id=d["chain_id"], registry=other)
    code, _, err = run(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation")
    assert code == 2
    assert other in err and d["registry"] in err


def test_commit_refuses_leaves_naming_another_chain_id(tmp_path, deployed, capsys):
    file, d = deployed
    out = tmp_path / "out"
    tree = settlement_tree(5, d["registry"], 1, [(address(), address(), 5)])
    write_batch(out, 1, tree, chain_id=None, registry=None)  # only the leaves say which chain
    code, _, err = run(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation")
    assert code == 2
    assert "names chain id 5" in err and "chain id 31337" in err


def test_commit_refuses_a_batch_committed_with_another_root(tmp_path, deployed, capsys):
    file, d = deployed
    out = tmp_path / "out"
    first = settlement_tree(d["chain_id"], d["registry"], 1, [(address(), address(), 5)])
    write_batch(out, 1, first, chain_id=d["chain_id"], registry=d["registry"])
    assert run(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation")[0] == 0

    other_out = tmp_path / "other"
    changed = settlement_tree(d["chain_id"], d["registry"], 1, [(address(), address(), 6)])
    write_batch(other_out, 1, changed, chain_id=d["chain_id"], registry=d["registry"])
    code, _, err = run(capsys, "commit", "--output", other_out, "--deployment", file, "--skip-validation")
    assert code == 2
    assert "0x" + first.root.hex() in err and "0x" + changed.root.hex() in err


class BatchNotValidated(UsageError):
    pass


@pytest.fixture
def gate(monkeypatch):
    """A stand-in validation gate recording its calls; `gate.fail = True` makes it refuse."""
    module = types.SimpleNamespace()
    module.calls = []
    module.fail = False

    def check_batch_validated(out, batch):
        module.calls.append((out, batch))
        if module.fail:
            raise BatchNotValidated(f"batch {batch} failed validation")

    module.check_batch_validated = check_batch_validated
    monkeypatch.setattr("sinks.chain.settle.check_batch_validated", check_batch_validated)
    return module


def test_commit_runs_the_validation_gate_before_each_batch(tmp_path, deployed, capsys, gate):
    file, d = deployed
    out = tmp_path / "out"
    two_batches(out, d, address(), address(), address())
    code, printed, err = run(capsys, "commit", "--output", out, "--deployment", file)
    assert code == 0, err
    assert gate.calls == [(out, 1), (out, 2)]
    assert "skipped" not in err


def test_commit_stops_at_a_batch_that_failed_validation(tmp_path, deployed, capsys, gate, w3):
    file, d = deployed
    out = tmp_path / "out"
    two_batches(out, d, address(), address(), address())
    gate.fail = True
    code, printed, err = run(capsys, "commit", "--output", out, "--deployment", file)
    assert code == 2 and "batch 1 failed validation" in err
    registry = contract(w3, "SettlementRegistry", d["registry"])
    assert registry.functions.latestBatch().call() == 0


def test_a_key_is_never_printed(tmp_path, anvil_url, capsys, caplog, monkeypatch):
    file = tmp_path / "deployment.json"
    code, out, err = run(capsys, "deploy", "--rpc-url", anvil_url, "--test-token", "--out", file,
                         "--private-key", _ANVIL_DEV_KEY, *SHORT_PERIODS)
    assert code == 0, err
    bad_key = "0x" + "ab" * 31  # one byte short
    monkeypatch.setenv("METERROOT_PRIVATE_KEY", bad_key)
    code, out2, err2 = run(capsys, "deposit", "--deployment", file, "--consumer", address(),
                           "--amount", 1, "--mint")
    assert code == 2 and "not a 32-byte hex key" in err2
    everything = out + err + out2 + err2 + caplog.text + file.read_text()
    for secret in (_ANVIL_DEV_KEY, _ANVIL_DEV_KEY[2:], bad_key, bad_key[2:]):
        assert secret not in everything


def test_mint_needs_a_test_token_deployment(tmp_path, anvil_url, dev, capsys):
    token = dev.send(contract(dev.w3, TEST_TOKEN).constructor(), "deploy token").receipt["contractAddress"]
    file = tmp_path / "deployment.json"
    code, _, err = run(capsys, "deploy", "--rpc-url", anvil_url, "--token", token, "--out", file, *SHORT_PERIODS)
    assert code == 0, err
    assert json.loads(file.read_text())["test_token"] is False
    code, _, err = run(capsys, "deposit", "--deployment", file, "--consumer", address(), "--amount", 5, "--mint")
    assert code == 2 and "--mint needs a deployment with --test-token" in err


def test_chain_up_keeps_the_state_across_down_and_up(tmp_path, capsys):
    out = tmp_path / "out"
    port = anvil.free_port()
    code, printed, err = run(capsys, "up", "--output", out, "--port", port)
    assert code == 0, err
    try:
        record = json.loads((out / "chain" / "anvil.json").read_text())
        assert record["url"] == f"http://127.0.0.1:{port}" and record["pid"] > 0
        assert run(capsys, "up", "--output", out, "--port", port)[0] == 0  # already running: same chain
        file = tmp_path / "deployment.json"
        code, _, err = run(capsys, "deploy", "--output", out, "--test-token", "--out", file, *SHORT_PERIODS)
        assert code == 0, err
        code, printed, err = run(capsys, "down", "--output", out)
        assert code == 0 and "state saved" in printed
        assert not (out / "chain" / "anvil.json").exists()
        assert (out / "chain" / "anvil-state.json").exists()

        assert run(capsys, "up", "--output", out, "--port", port)[0] == 0
        code, printed, err = run(capsys, "status", "--deployment", file)
        assert code == 0, err
        assert json.loads(printed)["latest_batch"] == 0  # the registry answers: its code survived
    finally:
        anvil.stop(out)
    assert run(capsys, "down", "--output", out)[1].startswith("no chain was running")


def test_commit_refuses_a_batch_the_real_gate_never_validated(tmp_path, deployed, capsys, w3):
    file, d = deployed
    out = tmp_path / "out"
    two_batches(out, d, address(), address(), address())
    code, _, err = run(capsys, "commit", "--output", out, "--deployment", file)
    assert code == 2 and "never validated" in err
    assert contract(w3, "SettlementRegistry", d["registry"]).functions.latestBatch().call() == 0


def test_a_deployment_without_code_on_the_node_is_a_clear_error(tmp_path, deployed, capsys):
    file, d = deployed
    d["registry"] = address()  # as if the local chain had been reset
    file.write_text(json.dumps(d))
    code, _, err = run(capsys, "status", "--deployment", file)
    assert code == 1 and f"no contract at registry {d['registry']}" in err


def test_a_batch_of_free_usage_is_committed_with_the_zero_root_and_the_next_batch_after_it(tmp_path, deployed,
                                                                                             capsys):
    from tests.integrity.test_zero_total import FREE_FIRST_100
    from tests.support.events import CONSUMER, PROVIDER_A, event, write_jsonl, write_tariff

    file, d = deployed
    out, tariff = tmp_path / "out", write_tariff(tmp_path / "tariff.json", FREE_FIRST_100)
    common = ["batch", "--tariff", str(tariff), "--output", str(out), "--chain-id", str(d["chain_id"]),
              "--registry", d["registry"]]
    for name, quantity in (("free", 90), ("paid", 30)):  # 90 free units, then 20 at 7 wei beyond the tier
        usage = write_jsonl(tmp_path / f"{name}.jsonl", [event(name, quantity=quantity)])
        assert main([*common, "--input", str(usage)]) == 0, capsys.readouterr()
    capsys.readouterr()

    code, printed, err = run(capsys, "commit", "--output", out, "--deployment", file)  # validation gate on
    assert code == 0, err
    assert f"batch 1: committed root 0x{'0' * 64}" in printed and "batch 2: committed root" in printed
    code, printed, err = run(capsys, "status", "--deployment", file)
    assert code == 0, err
    status = json.loads(printed)
    assert status["latest_batch"] == 2 and status["batches"][0]["root"] == "0x" + "0" * 64
    code, _, err = run(capsys, "proof", "--output", out, "--batch", 1, "--consumer", CONSUMER, "--payee", PROVIDER_A)
    assert code == 2 and "batch 1 settled only free usage" in err
    code, printed, err = run(capsys, "proof", "--output", out, "--batch", 2, "--consumer", CONSUMER,
                             "--payee", PROVIDER_A)
    assert code == 0, err
    assert int(json.loads(printed)["value"][5]) > 0


def test_three_commands_sending_through_one_journal_at_once_take_turns_and_send_an_intent_once(tmp_path, deployed,
                                                                                                capsys):
    from tests.integrity.forked import ForkServer

    file, d = deployed
    out, consumer = tmp_path / "out", address()
    argv = ["chain", "deposit", "--deployment", str(file), "--output", str(out), "--consumer", consumer,
            "--amount", "500", "--mint"]
    server = ForkServer()  # forked from one process that has imported the CLI: they start together
    try:
        results = server.run([{"argv": argv}] * 3)
    finally:
        server.close()
    assert [r["code"] for r in results] == [0, 0, 0], results
    printed = "".join(r["stdout"] for r in results)
    assert printed.count("already (per the journal") == 2, printed  # the later ones found the intent done
    journal = [json.loads(line) for line in (out / "chain" / "journal.jsonl").read_text().splitlines()]
    signed = [(e["intent"], e["nonce"]) for e in journal if e["state"] == "signed"]
    assert len({i for i, _ in signed}) == len({n for _, n in signed}) == len(signed), signed
    code, printed, err = run(capsys, "status", "--deployment", file, "--consumer", consumer)
    assert code == 0, err
    assert json.loads(printed)["consumer"]["deposit"] == "500"  # deposited once
