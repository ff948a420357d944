"""Rolling an output folder back past revoked batches, and settling their events again."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipelines.cli import main
from sinks.ledger_store import LedgerStore
from sinks.revoked_batches import revoke_locally
from tests.support.events import (CONSUMER_2, PROVIDER_A, PROVIDER_B, REGISTRY, T0, event,
                                  write_jsonl, write_tariff)


def batch(out, tariff, *inputs):
    args = ["batch", "--tariff", str(tariff), "--output", str(out), "--chain-id", "31337",
            "--registry", REGISTRY, "--no-validate"]
    for path in inputs:
        args += ["--input", str(path)]
    assert main(args) == 0


def snapshot(out, number):
    manifest = json.loads((out / "batches" / str(number) / "manifest.json").read_text())
    lines = pq.read_table(out / "settlement_lines" / f"batch={number}").drop_columns(["batch"]) \
        if (out / "settlement_lines" / f"batch={number}").exists() else None
    return manifest["root"], manifest["total"], lines.sort_by([("consumer", "ascending"), ("provider", "ascending"),
                                                                ("unit", "ascending")]).to_pylist()


def test_revoked_batches_settle_again_to_the_same_money(tmp_path):
    tariff = write_tariff(tmp_path / "tariff.json")
    out = tmp_path / "out"
    first = write_jsonl(tmp_path / "in" / "1.jsonl", [event("a-1"), event("a-2", provider=PROVIDER_B, quantity=95)])
    second = write_jsonl(tmp_path / "in" / "2.jsonl", [
        event("b-1", consumer=CONSUMER_2, quantity=130, token_id=4), event("b-2", quantity=7, timestamp=T0 + 1),
        event("b-bad", quantity="x")])
    third = write_jsonl(tmp_path / "in" / "3.jsonl", [event("c-1", provider=PROVIDER_A, unit="byte", quantity=9)])
    batch(out, tariff, first)
    batch(out, tariff, second)
    assert main(["validate", "--output", str(out), "--batch", "2"]) in (0, 1)   # a validation record to keep
    batch(out, tariff, third)
    before = {n: snapshot(out, n) for n in (2, 3)}
    cumulative_before = LedgerStore(out).cumulative(LedgerStore(out).head()).to_pylist()

    rolled = revoke_locally(out, 2, {"reason": "test"})
    assert rolled.batches == [2, 3] and rolled.events == 3
    assert rolled.folder == out / "revoked" / "2" / "1"
    head = LedgerStore(out).head()
    assert head.batch == 1 and set(head.roots) == {1}
    assert not (out / "batches" / "2").exists() and not (out / "events" / "batch=3").exists()
    assert not (out / "quarantine" / "batch=2").exists()
    assert (rolled.folder / "batches" / "3" / "tree.json").exists()
    assert (rolled.folder / "quarantine" / "batch=2").exists()  # the bad record is kept for the record
    assert (rolled.folder / "quality" / "2").exists() and not (out / "quality" / "2").exists()
    assert json.loads((rolled.folder / "revocation.json").read_text())["batches"] == [2, 3]

    batch(out, tariff, rolled.events_file)   # everything revoked, in one rebuilt batch 2
    rebuilt_root, rebuilt_total, rebuilt_lines = snapshot(out, 2)
    assert int(rebuilt_total) == int(before[2][1]) + int(before[3][1])
    assert LedgerStore(out).cumulative(LedgerStore(out).head()).to_pylist() == cumulative_before

    batch(out, tariff, first, second, third)  # the original inputs again: nothing settles twice
    assert LedgerStore(out).head().batch == 2


def test_rolling_back_a_batch_not_settled_does_nothing(tmp_path):
    tariff = write_tariff(tmp_path / "tariff.json")
    out = tmp_path / "out"
    batch(out, tariff, write_jsonl(tmp_path / "1.jsonl", [event("a-1")]))
    assert revoke_locally(out, 2, {}) is None
    assert LedgerStore(out).head().batch == 1


def test_revoking_the_first_batch_empties_the_ledger_and_the_rebuild_is_batch_one(tmp_path):
    tariff = write_tariff(tmp_path / "tariff.json")
    out = tmp_path / "out"
    batch(out, tariff, write_jsonl(tmp_path / "1.jsonl", [event("a-1"), event("a-2", quantity=3)]))
    root = json.loads((out / "batches" / "1" / "manifest.json").read_text())["root"]
    rolled = revoke_locally(out, 1, {})
    assert LedgerStore(out).head().batch == 0 and not (out / "batches" / "1").exists()
    batch(out, tariff, rolled.events_file)
    assert LedgerStore(out).head().batch == 1
    assert json.loads((out / "batches" / "1" / "manifest.json").read_text())["root"] == root
