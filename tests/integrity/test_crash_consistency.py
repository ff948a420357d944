"""Crash-consistent commit (SPEC §7, §10): a run killed (SIGKILL) just before or just after its
commit point, then run again, leaves what one uninterrupted run leaves: the same batch, run.json
describing HEAD, validated and catalogued, its quarantine written once; nothing above HEAD is
ever visible to `query`."""
from __future__ import annotations

import signal

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.integrity.support import batch, meterroot, read_json, usage_file
from tests.support.events import write_tariff

pytestmark = pytest.mark.slow
SAME = ("ledger/HEAD.json", "batches/1/manifest.json", "batches/1/tree.json",
        "settlement_lines/batch=1/part-0.parquet", "quarantine/batch=1/part-0.parquet")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    tariff = write_tariff(root / "tariff.json")
    files = [usage_file(root / f"in-{k}.jsonl", f"c{k}", 80) for k in range(2)]
    out = root / "clean"
    batch(files, tariff, out, validate=True)
    return files, tariff, out


def _quarantine_rows(out) -> int:
    return sum(pq.read_metadata(p).num_rows for p in out.glob("quarantine/**/*.parquet"))


@pytest.mark.parametrize("point", ["after-ledger-head", "after-run-json"])
def test_killed_after_the_commit_point_the_rerun_finishes_the_same_batch(uninterrupted, tmp_path, point):
    files, tariff, clean = uninterrupted
    out = tmp_path / "out"
    killed = batch(files, tariff, out, check=None, validate=True, env={"METERROOT_FAILPOINT": point})
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "quality" / "1" / "validation.json").exists()
    rerun = batch(files, tariff, out, validate=True)
    assert "settled batch 1" in rerun.stdout
    for rel in SAME:
        assert (out / rel).read_bytes() == (clean / rel).read_bytes(), rel
    assert _quarantine_rows(out) == _quarantine_rows(clean) == 2
    run, clean_run = read_json(out / "run.json"), read_json(clean / "run.json")
    assert {k: v for k, v in run.items() if k != "message"} == {k: v for k, v in clean_run.items() if k != "message"}
    assert run["head"] == run["batch"] == 1
    assert read_json(out / "quality" / "1" / "validation.json")["success"] is True
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT max(batch) FROM batches").fetchone()[0] == 1
    con.close()
    meterroot("verify", "--output", out, check=0)


def test_killed_before_the_commit_point_nothing_of_the_batch_is_visible(uninterrupted, tmp_path):
    files, tariff, clean = uninterrupted
    out = tmp_path / "out"
    batch([files[0]], tariff, out)
    killed = batch([files[1]], tariff, out, check=None, env={"METERROOT_FAILPOINT": "before-ledger-head"})
    assert killed.returncode == -signal.SIGKILL
    assert (out / "batches" / "2" / "manifest.json").exists()  # written, but not committed
    assert read_json(out / "run.json")["batch"] == 1
    shown = meterroot("query", "--output", out, "SELECT count(*) AS n, max(batch) AS b FROM settlement_lines "
                      "UNION ALL SELECT count(*), max(batch) FROM batches UNION ALL "
                      "SELECT count(*), max(batch) FROM quarantine WHERE batch IS NOT NULL",
                      "--format", "csv", check=0)
    assert all(row.split(",")[1] == "1" for row in shown.stdout.strip().splitlines()[1:]), shown.stdout
