"""`meterroot chain` v2 verbs end to end on a real anvil: three keys, permits, stakes, disputes,
withdrawals, revocation with the output folder rolled back, rebuilt and recommitted."""
from __future__ import annotations

import json

import pytest
from eth_account import Account

from pipelines.cli import main
from settlement.permits import sign_permit
from sinks.chain.artifacts import TEST_TOKEN
from sinks.chain.deployment import contract
from sinks.chain.keys import _ANVIL_DEV_KEY
from sinks.chain.registry import advance_time
from sinks.ledger_store import LedgerStore
from sinks.permit_files import write_permit_file
from tests.chain.conftest import CHALLENGE_PERIOD
from tests.chain.helpers import settlement_tree, write_batch
from tests.chain.test_chain_cli import SHORT_PERIODS
from tests.support.events import PROVIDER_A, PROVIDER_B, event, write_jsonl, write_tariff

THAW, WINDOW, UNSTAKE_THAW = 300, 100, 250


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def key(account) -> str:
    return "0x" + bytes(account.key).hex()


@pytest.fixture
def roles(new_account):
    return {"admin": new_account(), "committer": new_account(), "governance": new_account()}


@pytest.fixture
def three_keys(tmp_path, anvil_url, capsys, roles):
    """A registry whose admin, committer and governance are three keys (the dev key deploys)."""
    file = tmp_path / "deployment.json"
    code, printed, err = run(capsys, "chain", "deploy", "--rpc-url", anvil_url, "--test-token", *SHORT_PERIODS,
                             *[x for role, a in roles.items() for x in (f"--{role}", a.address)], "--out", file)
    assert code == 0, err
    d = json.loads(file.read_text())
    assert {role: d[role] for role in roles} == {role: a.address for role, a in roles.items()}
    return file, d


def chain(capsys, *argv, signer=None):
    extra = ("--private-key", key(signer)) if signer is not None else ()
    return run(capsys, "chain", *argv, *extra)


def test_one_key_for_every_role_is_refused_off_the_development_chain(tmp_path, anvil_url, w3, dev, capsys, new_account,
                                                                     monkeypatch):
    # off chain 31337 a key is refused on the command line: it comes from the environment here
    monkeypatch.setenv("METERROOT_PRIVATE_KEY", _ANVIL_DEV_KEY)
    token = dev.send(contract(w3, TEST_TOKEN).constructor(), "deploy token").receipt["contractAddress"]
    w3.provider.make_request("anvil_setChainId", [5])
    try:
        nonce = w3.eth.get_transaction_count(dev.address)
        file = tmp_path / "d.json"
        code, _, err = chain(capsys, "deploy", "--rpc-url", anvil_url, "--token", token, *SHORT_PERIODS,
                             "--out", file)
        assert code == 2 and "--admin and --committer, --admin and --governance, --committer and --governance" in err
        assert "chain 5" in err and not file.exists()
        other = new_account()
        code, _, err = chain(capsys, "deploy", "--rpc-url", anvil_url, "--token", token, *SHORT_PERIODS,
                             "--committer", other.address, "--out", file)
        assert code == 2 and "--admin and --governance are the same key" in err
        assert w3.eth.get_transaction_count(dev.address) == nonce  # refused before anything was sent
        code, _, err = chain(capsys, "deploy", "--rpc-url", anvil_url, "--token", token, *SHORT_PERIODS,
                             "--committer", other.address, "--governance", new_account().address,
                             "--out", file)
        assert code == 0, err
        assert json.loads(file.read_text())["chain_id"] == 5
    finally:
        w3.provider.make_request("anvil_setChainId", [31337])


def test_permits_stakes_disputes_withdrawals_and_status(tmp_path, three_keys, roles, capsys, w3, new_account):
    file, d = three_keys
    consumer, provider, challenger = new_account(), new_account(), new_account()
    treasury = d["treasury"]
    out = tmp_path / "out"
    rows = [(consumer.address, provider.address, 700), (consumer.address, treasury, 30)]
    write_batch(out, 1, settlement_tree(d["chain_id"], d["registry"], 1, rows), chain_id=d["chain_id"],
                registry=d["registry"])

    code, _, err = chain(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation")
    assert code == 1 and "AccessControlUnauthorizedAccount" in err          # the dev key is no committer
    code, _, err = chain(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation",
                         signer=roles["committer"])
    assert code == 0, err
    assert chain(capsys, "deposit", "--deployment", file, "--consumer", consumer.address, "--amount", 1_000,
                 "--mint")[0] == 0

    # a provider below the minimum stake is not paid; staking lets the claim through
    permits = tmp_path / "permits.jsonl"
    write_permit_file(permits, [
        sign_permit(consumer.key, d["chain_id"], d["registry"], consumer.address, provider.address, 700),
        sign_permit(consumer.key, d["chain_id"], d["registry"], consumer.address, treasury, 20)])
    code, printed, err = chain(capsys, "permit", "submit", "--deployment", file, "--permit", permits)
    assert code == 0, err
    assert printed.count("submitted") == 2
    code, printed, err = chain(capsys, "permit", "submit", "--deployment", file, "--permit", permits)
    assert printed.count("already covered") == 2 and "submitted" not in printed   # look before sending

    # a dispute in the challenge period freezes the leaf; rejected, the bond goes to the provider
    code, printed, err = chain(capsys, "dispute", "open", "--deployment", file, "--batch", 1, "--consumer",
                               consumer.address, "--provider", provider.address, "--evidence", "double billed",
                               "--mint", signer=challenger)
    assert code == 0, err
    assert "dispute 1 opened" in printed
    advance_time(w3, CHALLENGE_PERIOD)
    code, _, err = chain(capsys, "claim", "--output", out, "--deployment", file, "--batch", 1,
                         "--consumer", consumer.address, "--payee", provider.address)
    assert code == 1 and "LeafDisputed" in err
    code, _, err = chain(capsys, "dispute", "resolve", "--deployment", file, "--id", 1, "--rejected")
    assert code == 1 and "AccessControlUnauthorizedAccount" in err           # governance only
    code, printed, err = chain(capsys, "dispute", "resolve", "--deployment", file, "--id", 1, "--rejected",
                               signer=roles["governance"])
    assert code == 0, err
    assert "dispute 1 rejected" in printed and f"the bond of 50 wei went to {provider.address}" in printed

    code, _, err = chain(capsys, "claim", "--output", out, "--deployment", file, "--batch", 1,
                         "--consumer", consumer.address, "--payee", provider.address)
    assert code == 1 and "ProviderStakeTooLow" in err
    code, printed, err = chain(capsys, "stake", "--deployment", file, "--amount", 1_000, "--mint", signer=provider)
    assert code == 0, err
    assert "stake now 1000 wei" in printed
    code, printed, err = chain(capsys, "claim", "--output", out, "--deployment", file, "--batch", 1,
                               "--consumer", consumer.address, "--payee", provider.address)
    assert code == 0, err
    assert f"paid 700 wei to {provider.address}" in printed and "on the registry's permit for 700 wei" in printed
    code, printed, err = chain(capsys, "claim", "--output", out, "--deployment", file, "--batch", 1,
                               "--consumer", consumer.address, "--payee", treasury)
    assert code == 0, err
    assert "paid 20 wei" in printed and "shortfall: 10 wei (held by the permit)" in printed

    # withdrawals: thaw, then a window; the deposit stays claimable meanwhile
    code, printed, err = chain(capsys, "withdraw", "request", "--deployment", file, "--amount", 200, signer=consumer)
    assert code == 0, err
    status = json.loads(chain(capsys, "status", "--deployment", file, "--consumer", consumer.address,
                              "--provider", provider.address)[1])
    assert status["deployment"] == {"matches": True, "checks": {"admin": True, "committer": True, "governance": True},
                                    "pending_admin": None, "pending_admin_from": None}
    c = status["consumer"]
    assert (c["deposit"], c["available"]) == ("280", "80")
    assert c["pending_withdrawal"]["amount"] == "200" and c["pending_withdrawal"]["state"] == "thawing"
    assert c["permits"] == [{"payee": p, "permitted": str(a), "collected": str(a)}
                            for p, a in sorted([(provider.address, 700), (treasury, 20)], key=lambda x: x[0].lower())]
    assert c["counter_nft"]["wei_paid"] == "720" and c["counter_nft"]["claims"] == 2
    assert status["provider"] == {"address": provider.address, "staked": "1000", "unstaking": "0", "bonded": "1000",
                                  "unstake_unlocks_at": None, "min_provider_stake": "1000", "can_be_paid": True}
    assert [(x["id"], x["state"]) for x in status["disputes"]] == [(1, "rejected")]
    code, _, err = chain(capsys, "withdraw", "execute", "--deployment", file, signer=consumer)
    assert code == 1 and "StillThawing" in err
    advance_time(w3, THAW)
    code, printed, err = chain(capsys, "withdraw", "execute", "--deployment", file, signer=consumer)
    assert code == 0, err
    assert "withdrew 200 wei" in printed and "deposit now 80 wei" in printed

    # unstake: request, thaw, execute
    code, printed, err = chain(capsys, "unstake", "request", "--deployment", file, "--amount", 400, signer=provider)
    assert code == 0, err
    code, _, err = chain(capsys, "unstake", "execute", "--deployment", file, signer=provider)
    assert code == 1 and "StillThawing" in err
    advance_time(w3, UNSTAKE_THAW)
    code, printed, err = chain(capsys, "unstake", "execute", "--deployment", file, signer=provider)
    assert code == 0, err
    assert "unstaked 400 wei" in printed and "stake now 600 wei" in printed


def test_upheld_dispute_slashes_the_provider(tmp_path, three_keys, roles, capsys, w3, new_account):
    file, d = three_keys
    consumer, provider, challenger = new_account(), new_account(), new_account()
    out = tmp_path / "out"
    write_batch(out, 1, settlement_tree(d["chain_id"], d["registry"], 1, [(consumer.address, provider.address, 9)]),
                chain_id=d["chain_id"], registry=d["registry"])
    chain(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation", signer=roles["committer"])
    assert chain(capsys, "stake", "--deployment", file, "--amount", 1_000, "--mint", signer=provider)[0] == 0
    assert chain(capsys, "dispute", "open", "--deployment", file, "--batch", 1, "--consumer", consumer.address,
                 "--provider", provider.address, "--evidence", "ipfs://evidence", "--mint", signer=challenger)[0] == 0
    code, _, err = chain(capsys, "dispute", "resolve", "--deployment", file, "--id", 1, "--rejected",
                         "--slash", 5, signer=roles["governance"])
    assert code == 2 and "--slash applies to an upheld dispute only" in err
    code, printed, err = chain(capsys, "dispute", "resolve", "--deployment", file, "--id", 1, "--upheld",
                               "--slash", 400, signer=roles["governance"])
    assert code == 0, err
    assert "dispute 1 upheld" in printed
    status = json.loads(chain(capsys, "status", "--deployment", file, "--provider", provider.address)[1])
    assert status["provider"]["staked"] == "600" and status["provider"]["can_be_paid"] is False


def settle(out, tariff, d, *inputs):
    args = ["batch", "--tariff", tariff, "--output", out, "--chain-id", d["chain_id"], "--registry",
            d["registry"], "--no-validate"]
    for path in inputs:
        args += ["--input", path]
    assert main([*map(str, args)]) == 0


def test_revoke_rolls_back_and_the_rebuilt_batch_is_recommitted_with_nothing_lost(
        tmp_path, three_keys, roles, capsys, w3):
    """Batch 2 is revoked in its challenge period; OUT rolls back to batch 1, rebuilds batch 2 from
    the revoked events plus new ones, and commits it; claims and permits go through OUT's store."""
    file, d = three_keys
    consumer = Account.create()
    tariff = write_tariff(tmp_path / "tariff.json", {
        "version": "t", "epoch_seconds": 3600, "protocol_fee_bps": 250, "treasury": d["treasury"],
        "prices": [{"contract": "*", "unit": "request", "tiers": [{"up_to": None, "price_wei": "10"}]}]})
    out = tmp_path / "out"
    settle(out, tariff, d, write_jsonl(tmp_path / "in" / "1.jsonl", [event("a-1", consumer=consumer.address)]))
    settle(out, tariff, d, write_jsonl(tmp_path / "in" / "2.jsonl", [
        event("b-1", consumer=consumer.address, quantity=20, provider=PROVIDER_B),
        event("b-2", consumer=consumer.address, quantity=5)]))
    committer, governance = roles["committer"], roles["governance"]
    assert chain(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation", signer=committer)[0] == 0
    revoked_root = LedgerStore(out).head().roots[2]

    code, _, err = chain(capsys, "revoke", "--deployment", file, "--batch", 2, "--reason", "wrong", "--output", out)
    assert code == 1 and "AccessControlUnauthorizedAccount" in err and LedgerStore(out).head().batch == 2
    code, printed, err = chain(capsys, "revoke", "--deployment", file, "--batch", 2, "--reason",
                               "provider B double counted", "--output", out, signer=governance)
    assert code == 0, err
    assert "revoked batches 2..2" in printed and "ledger rolled back to batch 1" in printed
    archived = out / "revoked" / "2" / "1"
    assert f"--input {archived / 'events.parquet'}" in printed
    record = json.loads((archived / "revocation.json").read_text())
    assert record["reason"] == "provider B double counted" and record["revoked_root"] == revoked_root
    assert LedgerStore(out).head().batch == 1

    code, printed, err = chain(capsys, "revoke", "--deployment", file, "--batch", 2, "--reason", "again",
                               "--output", out, signer=governance)
    assert code == 0 and "already revoked" in printed and "has not settled batch 2" in printed

    settle(out, tariff, d, archived / "events.parquet")   # the same events: the same root
    code, _, err = chain(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation", signer=committer)
    assert code == 2 and "was revoked by governance" in err
    code, printed, err = chain(capsys, "revoke", "--deployment", file, "--batch", 2, "--reason", "again",
                               "--output", out, signer=governance)   # the identical rebuild is undone too
    assert code == 0, err
    assert "already revoked" in printed and "ledger rolled back to batch 1" in printed
    assert (out / "revoked" / "2" / "2" / "events.parquet").exists() and LedgerStore(out).head().batch == 1
    late = write_jsonl(tmp_path / "in" / "3.jsonl", [event("c-1", consumer=consumer.address, quantity=7)])
    settle(out, tariff, d, archived / "events.parquet", late)
    code, printed, err = chain(capsys, "commit", "--output", out, "--deployment", file, "--skip-validation",
                               signer=committer)
    assert code == 0, err
    assert "batch 2: committed root" in printed
    head = LedgerStore(out).head()
    assert head.batch == 2 and head.roots[2] != revoked_root
    owed = {(r["consumer"], r["payee"]): int(r["cumulative_wei"]) for r in LedgerStore(out).cumulative(head).to_pylist()}
    # nothing lost: 10 + 20 + 5 + 7 requests at 10 wei, split into provider shares and the 2.5 % fee
    assert sum(owed.values()) == (10 + 20 + 5 + 7) * 10

    # the consumer's permits, ingested into OUT, pay the rebuilt batch
    permits = tmp_path / "signed.jsonl"
    write_permit_file(permits, [sign_permit(consumer.key, d["chain_id"], d["registry"], c, p, w)
                                for (c, p), w in owed.items()])
    assert main(["permits", "--output", str(out), "--ingest", str(permits)]) == 0
    capsys.readouterr()
    assert chain(capsys, "deposit", "--deployment", file, "--consumer", consumer.address, "--amount", 10_000,
                 "--mint")[0] == 0
    for provider in (PROVIDER_A, PROVIDER_B):
        assert chain(capsys, "stake", "--deployment", file, "--provider", provider, "--amount", 1_000, "--mint")[0] == 0
    code, printed, err = chain(capsys, "permit", "submit", "--deployment", file, "--output", out,
                               "--payee", PROVIDER_A)
    assert code == 0, err
    assert printed.count("submitted") == 1
    advance_time(w3, CHALLENGE_PERIOD)
    paid = 0
    for (c, p), w in owed.items():
        code, printed, err = chain(capsys, "claim", "--output", out, "--deployment", file, "--batch", 2,
                                   "--consumer", c, "--payee", p)
        assert code == 0, err
        assert ("registry's permit" if p == PROVIDER_A else "claimWithPermit") in printed
        paid += w
    assert paid == sum(owed.values())
