"""Availability per (provider, epoch) in the batch job (SPEC §14), exact on hand-computed probes."""
import json

import pyarrow.parquet as pq

from tests.availability.conftest import EPOCH, EXPECTED, PROBES, probe
from tests.support.events import PROVIDER_A, T0, event, write_jsonl, write_tariff


def test_availability_of_the_batch_is_exact(settled_output):
    rows = pq.read_table(settled_output.out / "availability" / "batch=1" / "part-0.parquet").to_pylist()
    got = {(r["provider"], r["epoch"]): (r["probes"], r["ok_probes"], r["availability_bps"],
                                         r["latency_p50_ms"], r["latency_p99_ms"]) for r in rows}
    assert got == EXPECTED
    assert {r["batch"] for r in rows} == {1}


def test_manifest_records_availability_and_probe_counts_that_add_up(settled_output):
    manifest = json.loads((settled_output.out / "batches" / "1" / "manifest.json").read_text())
    section = manifest["availability"]
    assert section["probe_counts"] == {"read": len(PROBES), "accepted": len(PROBES) - 2, "duplicates": 0,
                                       "quarantined": 2}
    assert {(r["provider"], r["epoch"]): r["availability_bps"] for r in section["rows"]} == {
        key: value[2] for key, value in EXPECTED.items()}
    assert section["epochs"] == [EPOCH, EPOCH + 1]
    quarantine = pq.read_table(settled_output.out / "probe_quarantine" / "batch=1" / "part-0.parquet")
    assert sorted(quarantine.column("reason").to_pylist()) == ["bad_address", "bad_latency"]


def test_the_availability_suite_ran_and_passed(settled_output):
    from expectations.runner import validate_output

    report = validate_output(settled_output.out, batches=[1])
    assert report.success
    assert report.batches[0].suites["availability"] is True


def test_query_report_availability_shows_the_latest_figure(settled_output, capsys):
    from pipelines.cli import main

    assert main(["query", "--output", str(settled_output.out), "--report", "availability", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["provider"], r["epoch"]): r["availability_bps"] for r in rows} == {
        key: value[2] for key, value in EXPECTED.items()}


def test_a_later_batch_revises_an_epoch_over_all_its_settled_probes(tmp_path):
    """Batch 1: 2 of 2 ok. Batch 2: two late probes of the same epoch, one down, and a re-delivered
    one (a duplicate): 3 of 4 ok = 7500 bps in batch 2, over the probes of both batches."""
    from pipelines.batch import settle

    tariff = write_tariff(tmp_path / "tariff.json")
    first = write_jsonl(tmp_path / "p1" / "a.jsonl", [probe("x1"), probe("x2")])
    later = write_jsonl(tmp_path / "p2" / "b.jsonl", [probe("x2"), probe("x3"), probe("x4", ok=False)])
    out = tmp_path / "out"
    registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    usage1 = write_jsonl(tmp_path / "u1.jsonl", [event("e1")])
    usage2 = write_jsonl(tmp_path / "u2.jsonl", [event("e2", timestamp=T0 + 5)])
    settle([str(usage1)], str(tariff), str(out), 31337, registry, probes=[str(first)])
    second = settle([str(usage2)], str(tariff), str(out), 31337, registry, probes=[str(later)])
    assert second.batch == 2
    rows = pq.read_table(out / "availability" / "batch=2" / "part-0.parquet").to_pylist()
    assert [(r["provider"], r["epoch"], r["probes"], r["ok_probes"], r["availability_bps"]) for r in rows] == [
        (PROVIDER_A, EPOCH, 4, 3, 7500)]
    assert second.manifest["availability"]["probe_counts"] == {
        "read": 3, "accepted": 2, "duplicates": 1, "quarantined": 0}


def test_a_probe_glob_matching_nothing_is_refused_before_anything_is_written(tmp_path):
    from pipelines.cli import main

    tariff = write_tariff(tmp_path / "tariff.json")
    usage = write_jsonl(tmp_path / "u.jsonl", [event("e1")])
    code = main(["batch", "--input", str(usage), "--probes", str(tmp_path / "none" / "*.jsonl"),
                 "--tariff", str(tariff), "--output", str(tmp_path / "out"), "--chain-id", "31337",
                 "--registry", "0x5FbDB2315678afecb367f032d93F642f64180aa3"])
    assert code == 2
    assert not (tmp_path / "out").exists()
