"""OUT/catalog.duckdb: views over every output, usable from plain DuckDB anywhere."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest

from settlement.errors import InvalidInput
from sinks.catalog import build_catalog, connect
from tests.quality.conftest import BatchInput, default_inputs, rewrite_json, write_output

VIEWS = ("events", "quarantine", "settlement_lines", "batches", "ledger", "payables", "validations")


def test_catalog_opens_from_plain_duckdb_in_another_working_directory(good_output, tmp_path):
    catalog = build_catalog(good_output)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = ("import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
              f"print(json.dumps({{v: con.execute(f'SELECT count(*) FROM {{v}}').fetchone()[0] for v in {VIEWS!r}}}))")
    # -I: no meterroot on the path, only the duckdb package
    done = subprocess.run([sys.executable, "-I", "-c", script, str(catalog)], cwd=elsewhere,
                          capture_output=True, text=True, check=True)
    counts = json.loads(done.stdout)
    assert counts == {"events": 50, "quarantine": 1, "settlement_lines": 39, "batches": 2,
                      "ledger": 8, "payables": 16, "validations": 0}


def test_catalog_is_written_atomically(good_output):
    catalog = build_catalog(good_output)
    assert catalog == good_output.resolve() / "catalog.duckdb"
    assert sorted(p.name for p in good_output.iterdir() if p.name.startswith(".")) == []


def test_views_agree_with_the_files(good_output):
    con = connect(good_output)
    manifests = {b: json.loads((good_output / "batches" / str(b) / "manifest.json").read_text()) for b in (1, 2)}
    rows = con.execute("SELECT batch, total, leaf_count, epochs, \"read\", quarantined FROM batches ORDER BY batch"
                       ).fetchall()
    assert rows == [(b, int(m["total"]), m["leaf_count"], m["epochs"], m["counts"]["read"], m["counts"]["quarantined"])
                    for b, m in manifests.items()]
    # payables: every batch's leaf amounts add up to its total (provider_wei + fee = amount_wei)
    totals = con.execute("SELECT batch, sum(amount_wei) FROM payables GROUP BY batch ORDER BY batch").fetchall()
    assert totals == [(b, int(m["total"])) for b, m in manifests.items()]
    ledger = con.execute("SELECT consumer, payee, cumulative_wei FROM ledger ORDER BY ALL").fetchall()
    snapshot = pq.read_table(good_output / "ledger" / "cumulative" / "batch=2.parquet").to_pylist()
    assert ledger == sorted((r["consumer"], r["payee"], r["cumulative_wei"]) for r in snapshot)
    latest = con.execute("SELECT consumer, payee, max(cumulative_wei) FROM payables GROUP BY ALL ORDER BY ALL"
                         ).fetchall()
    assert latest == ledger


def test_sources_without_files_become_empty_typed_views(tmp_path):
    out = write_output(tmp_path / "OUT", [BatchInput(default_inputs()[1].events)])
    (out / "ledger" / "HEAD.json").unlink()
    con = duckdb.connect(str(build_catalog(out)), read_only=True)
    assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'quarantine'").fetchall())
    assert types == {"batch": "BIGINT", "reason": "VARCHAR", "detail": "VARCHAR", "source": "VARCHAR",
                     "record": "VARCHAR"}
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'ledger'").fetchall())
    assert types["cumulative_wei"] == "DECIMAL(38,0)"


def test_corrupt_manifest_is_named(good_output):
    (good_output / "batches" / "2" / "manifest.json").write_text("{oops")
    with pytest.raises(InvalidInput, match="batches/2/manifest.json"):
        build_catalog(good_output)
    assert not (good_output / "catalog.duckdb").exists()


def test_not_an_output_directory_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="not a meterroot output"):
        build_catalog(tmp_path)
    with pytest.raises(InvalidInput, match="does not exist"):
        build_catalog(tmp_path / "nowhere")


def test_files_of_an_unfinished_run_are_invisible(good_output):
    import shutil
    from expectations.outputs import batch_numbers
    # a run killed before its HEAD commit left batch 3's files behind
    shutil.copytree(good_output / "events" / "batch=2", good_output / "events" / "batch=3")
    shutil.copytree(good_output / "settlement_lines" / "batch=2", good_output / "settlement_lines" / "batch=3")
    shutil.copytree(good_output / "batches" / "2", good_output / "batches" / "3")
    rewrite_json(good_output / "batches" / "3" / "manifest.json", lambda m: m.update(batch=3))
    rewrite_json(good_output / "batches" / "3" / "tree.json",
                 lambda t: [v["value"].__setitem__(2, "3") for v in t["values"]] and t)
    con = connect(good_output)
    assert con.execute("SELECT max(batch), count(*) FROM events").fetchone() == (2, 50)
    assert con.execute("SELECT max(batch) FROM settlement_lines").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM batches").fetchone() == (2,)
    assert con.execute("SELECT max(batch) FROM payables").fetchone() == (2,)
    assert batch_numbers(good_output) == [1, 2]
