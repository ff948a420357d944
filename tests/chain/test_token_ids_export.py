"""`meterroot chain token-ids` on a real anvil: every Counter NFT the registry minted, read at one
block, written as the mapping `meterroot batch --token-ids` checks events against."""
from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
from eth_account import Account

from pipelines.cli import main
from settlement.token_ids import load_token_ids
from sinks import layout
from tests.support.events import REGISTRY, event, write_jsonl, write_tariff


def test_the_export_holds_every_minted_token_at_its_block_and_a_batch_checks_against_it(
        registry, deployment, anvil_url, tmp_path, capsys):
    rng = random.Random(12)
    first, second, never = (Account.from_key(rng.randbytes(32)).address for _ in range(3))
    registry.deposit_for(first, 10, mint=True)
    before_second = registry.w3.eth.block_number
    registry.deposit_for(second, 10, mint=True)
    registry.deposit_for(first, 5, mint=True)  # a second deposit mints no second token
    file = tmp_path / "deployment.json"
    deployment.write(file)

    def export(out, *extra):
        code = main(["chain", "token-ids", "--deployment", str(file), "--rpc-url", anvil_url,
                     "--out", str(out), *extra])
        return code, capsys.readouterr()

    code, printed = export(tmp_path / "ids.json")
    assert code == 0 and "of 2 consumers" in printed.out
    ids = {first: registry.counters(first).token_id, second: registry.counters(second).token_id}
    assert sorted(ids.values()) == [1, 2] and registry.counters(never).token_id == 0
    assert load_token_ids(tmp_path / "ids.json").known == ids
    assert json.loads((tmp_path / "ids.json").read_text()) == ids
    code, _ = export(tmp_path / "ids.csv")
    assert code == 0 and load_token_ids(tmp_path / "ids.csv").hash == load_token_ids(tmp_path / "ids.json").hash
    code, _ = export(tmp_path / "early.json", "--block", str(before_second))
    assert code == 0 and load_token_ids(tmp_path / "early.json").known == {first: ids[first]}
    code, refused = export(tmp_path / "future.json", "--block", str(registry.w3.eth.block_number + 100))
    assert code == 2 and "past the chain's head" in refused.err

    usage = write_jsonl(tmp_path / "in" / "u.jsonl", [
        event("a", consumer=first, token_id=ids[first]), event("b", consumer=first, token_id=ids[second]),
        event("c", consumer=second, token_id=ids[second]), event("d", consumer=never, token_id=3)])
    out = tmp_path / "out"
    assert main(["batch", "--input", str(usage), "--tariff", str(write_tariff(tmp_path / "tariff.json")),
                 "--output", str(out), "--chain-id", "31337", "--registry", REGISTRY, "--no-validate",
                 "--token-ids", str(tmp_path / "ids.json")]) == 0
    quarantine = pq.read_table(layout.quarantine_path(out, 1)).to_pylist()
    assert [(json.loads(r["record"])["event_id"], r["reason"]) for r in quarantine] == [("b", "bad_token_id")]
