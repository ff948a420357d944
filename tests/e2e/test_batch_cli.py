"""`meterroot batch` end to end, as a user runs it: real files in, outputs and exit codes out."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from settlement.merkle import StandardMerkleTree
from tests.support.events import (CONSUMER, CONSUMER_2, PROVIDER_A, PROVIDER_B, REGISTRY, T0, event,
                                  write_jsonl, write_tariff)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def meterroot(*args, env=None, check=None):
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, **(env or {})})
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def batch(inputs, tariff, out, check=0, env=None, extra=()):
    args = ["batch", "--tariff", tariff, "--output", out, "--chain-id", 31337, "--registry", REGISTRY,
            "--no-validate", *extra]
    for i in inputs:
        args += ["--input", i]
    return meterroot(*args, check=check, env=env)


@pytest.fixture
def mixed_inputs(tmp_path):
    """A JSONL, a CSV and a Parquet file; some bad records, an exact copy, a conflicting copy."""
    src = tmp_path / "in"
    write_jsonl(src / "a.jsonl", [
        event("a-1"), event("a-2", quantity=95), event("a-1"),            # exact copy: duplicate
        event("a-3", quantity=1.5), "not json", event("a-4", unit="gas"),
        event("a-5", provider=PROVIDER_B, quantity=20, timestamp="2026-11-24T10:30:00Z"),
        event("x-1", quantity=3),                                            # conflicts with the CSV
    ])
    csv_rows = [event("c-1", consumer=CONSUMER_2, quantity=7, unit="byte"),
                event("x-1", quantity=4), event("c-2", provider="0xnope")]
    pacsv.write_csv(pa.Table.from_pylist([{k: str(v) for k, v in r.items()} for r in csv_rows]), src / "b.csv")
    pq.write_table(pa.Table.from_pylist([event("p-1", provider=PROVIDER_B, quantity=11, timestamp=T0 + 3_600_000),
                                         event("p-2", quantity=2, token_id=42)]), src / "c.parquet")
    return src, write_tariff(tmp_path / "tariff.json")


def read_json(path):
    return json.loads(Path(path).read_text())


def test_mixed_formats_settle_with_every_record_accounted_for(mixed_inputs, tmp_path):
    src, tariff = mixed_inputs
    out = tmp_path / "out"
    result = batch([src / "*.jsonl", src / "*.csv", src / "*.parquet"], tariff, out)
    assert "settled batch 1" in result.stdout
    run = read_json(out / "run.json")
    assert (run["read"], run["accepted"], run["duplicates"], run["quarantined"]) == (13, 6, 1, 6)
    for entry in run["inputs"]:
        assert entry["read"] == entry["accepted"] + entry["duplicates"] + entry["quarantined"]
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    reasons = sorted(pq.read_table(out / "quarantine" / "batch=1" / "part-0.parquet").column("reason").to_pylist())
    assert reasons == ["bad_address", "bad_quantity", "conflicting_duplicate", "conflicting_duplicate",
                       "malformed", "unknown_unit"]
    manifest = read_json(out / "batches" / "1" / "manifest.json")
    lines = pq.read_table(out / "settlement_lines" / "batch=1" / "part-0.parquet")
    assert int(manifest["total"]) == sum(int(x) for x in lines.column("amount_wei").to_pylist())
    assert manifest["epochs"] == sorted({T0 // 3_600_000, T0 // 3_600_000 + 1})
    tree = StandardMerkleTree.load(read_json(out / "batches" / "1" / "tree.json"))
    tree.validate()
    assert "0x" + tree.root.hex() == manifest["root"] == read_json(out / "ledger" / "HEAD.json")["roots"]["1"]
    assert manifest["leaf_count"] == len(tree.values)


def test_same_inputs_into_empty_directories_give_byte_identical_batches(mixed_inputs, tmp_path):
    src, tariff = mixed_inputs
    for name in ("one", "two"):
        batch([src / "*"], tariff, tmp_path / name)
    for rel in ("batches/1/tree.json", "batches/1/manifest.json", "settlement_lines/batch=1/part-0.parquet"):
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_redelivered_files_are_duplicates_and_new_usage_continues_the_tiers(mixed_inputs, tmp_path):
    src, tariff = mixed_inputs
    out = tmp_path / "out"
    batch([src / "*"], tariff, out)
    late = write_jsonl(tmp_path / "late" / "d.jsonl", [
        event("a-2", quantity=95),          # identical to settled: duplicate
        event("a-1", quantity=999),         # differs from settled: quarantined, settled money stands
        event("late-1", quantity=10),       # same epoch as a-1/a-2: tiers continue from 10 + 95 + 2
    ])
    result = batch([src / "*", late], tariff, out)
    assert "settled batch 2" in result.stdout
    run = read_json(out / "run.json")
    d = next(e for e in run["inputs"] if e["path"].endswith("d.jsonl"))
    assert (d["accepted"], d["duplicates"], d["quarantined"]) == (1, 1, 1)
    assert run["accepted"] == 1 and run["read"] == 16
    lines2 = pq.read_table(out / "settlement_lines" / "batch=2" / "part-0.parquet").to_pylist()
    assert [(int(l["quantity"]), int(l["amount_wei"])) for l in lines2] == [(10, 500)]
    # cost(117) - cost(107) with per 10, tier 1 to 100 at 1000 then 500: (100000 + 8500 - 100000 - 3500) // 10
    tree2 = StandardMerkleTree.load(read_json(out / "batches" / "2" / "tree.json"))
    cumulative = {(v[3], v[4]): int(v[5]) for v in tree2.values}
    tree1 = StandardMerkleTree.load(read_json(out / "batches" / "1" / "tree.json"))
    first = {(v[3], v[4]): int(v[5]) for v in tree1.values}
    assert cumulative[(CONSUMER, PROVIDER_A)] == first[(CONSUMER, PROVIDER_A)] + 500 - 500 * 250 // 10000


def test_a_rerun_that_finds_nothing_new_appends_no_batch(mixed_inputs, tmp_path):
    src, tariff = mixed_inputs
    out = tmp_path / "out"
    batch([src / "*"], tariff, out)
    head = (out / "ledger" / "HEAD.json").read_bytes()
    result = batch([src / "*"], tariff, out)
    assert "nothing new to settle" in result.stdout
    assert (out / "ledger" / "HEAD.json").read_bytes() == head
    assert not (out / "batches" / "2").exists()
    assert read_json(out / "run.json")["batch"] is None


@pytest.mark.parametrize("failpoint", ["before-ledger-head"])
def test_a_run_killed_before_its_commit_reruns_to_the_same_batch(mixed_inputs, tmp_path, failpoint):
    src, tariff = mixed_inputs
    batch([src / "*"], tariff, tmp_path / "clean")
    out = tmp_path / "killed"
    killed = batch([src / "*"], tariff, out, check=None, env={"METERROOT_FAILPOINT": failpoint})
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "ledger" / "HEAD.json").exists()
    batch([src / "*"], tariff, out)
    for rel in ("batches/1/tree.json", "batches/1/manifest.json", "ledger/HEAD.json"):
        assert (out / rel).read_bytes() == (tmp_path / "clean" / rel).read_bytes(), rel


def test_a_run_killed_at_a_random_moment_reruns_to_the_same_batch(tmp_path):
    tariff = tmp_path / "tariff.yaml"
    tariff.write_bytes((REPO / "pipelines" / "defaults" / "tariff.yaml").read_bytes())
    events = tmp_path / "events.jsonl"
    meterroot("generate", "--events", 150_000, "--output", events, check=0)
    batch([events], tariff, tmp_path / "clean")
    out = tmp_path / "killed"
    for delay in (2.0, 4.0):
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "batch", "--input", str(events),
                                 "--tariff", str(tariff), "--output", str(out), "--chain-id", "31337",
                                 "--registry", REGISTRY, "--no-validate"], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    batch([events], tariff, out, check=None)
    for rel in ("batches/1/tree.json", "batches/1/manifest.json", "ledger/HEAD.json"):
        assert (out / rel).read_bytes() == (tmp_path / "clean" / rel).read_bytes(), rel


def test_bad_configuration_exits_2_naming_the_problem_and_writes_nothing(mixed_inputs, tmp_path):
    src, tariff = mixed_inputs
    out = tmp_path / "out"
    missing = batch([tmp_path / "nowhere" / "*.jsonl"], tariff, out, check=2)
    assert "matches no file" in missing.stderr
    bad_tariff = tmp_path / "bad.yaml"
    bad_tariff.write_text("version: x\nprotocol_fee_bps: 20000\ntreasury: '0x000000000000000000000000000000000000Fee5'\nprices: []\n")
    refused = batch([src / "*"], bad_tariff, out, check=2)
    assert "protocol_fee_bps" in refused.stderr
    corrupt = tmp_path / "broken.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    unreadable = batch([corrupt], tariff, out, check=2)
    assert "broken.parquet" in unreadable.stderr
    assert not out.exists()


def test_a_ledger_built_with_another_epoch_length_is_refused(mixed_inputs, tmp_path):
    src, tariff = mixed_inputs
    out = tmp_path / "out"
    batch([src / "*"], tariff, out)
    data = json.loads(tariff.read_text())
    data["epoch_seconds"] = 60
    other = write_tariff(tmp_path / "minute.json", data)
    refused = batch([src / "*"], other, out, check=2)
    assert "epoch_seconds 3600" in refused.stderr and "minute.json" not in refused.stdout
