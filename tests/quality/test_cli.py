"""`meterroot validate | query | reconcile` through pipelines.cli.main: output and exit codes."""
from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.quality.conftest import CONSUMERS, rewrite_parquet


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines_file(out, batch):
    return out / "settlement_lines" / f"batch={batch}" / "part-0.parquet"


def all_lines(out):
    return [row for batch in (1, 2) for row in pq.read_table(lines_file(out, batch)).to_pylist()]


def test_validate_exit_codes(good_output, capsys):
    out = str(good_output)
    code, stdout, _ = run(capsys, "validate", "--output", out)
    assert code == 0 and "batch 1: passed 5 suites" in stdout and "batch 2: passed" in stdout
    code, stdout, _ = run(capsys, "validate", "--output", out)
    assert code == 0 and "nothing to validate" in stdout
    rewrite_parquet(lines_file(good_output, 2), lambda rows: [dict(rows[0], amount_wei=rows[0]["amount_wei"] + 1)] + rows[1:])
    code, stdout, stderr = run(capsys, "validate", "--output", out, "--batch", "2")
    assert code == 1
    assert "batch 2: FAILED settlement_lines, batch_totals" in stdout
    assert "expect_column_values_to_be_between(split_difference_wei)" in stdout
    assert "1 unexpected; values: 1" in stdout
    assert "validation failed for batch 2" in stderr
    code, _, stderr = run(capsys, "validate", "--output", out, "--batch", "9")
    assert code == 2 and "batch 9 does not exist" in stderr
    code, _, stderr = run(capsys, "validate", "--output", out + "-missing")
    assert code == 2 and "does not exist" in stderr


@pytest.mark.parametrize("report", [
    ["--report", "consumer-bill", "--consumer", CONSUMERS[0]],
    ["--report", "provider-revenue"],
    ["--report", "quarantine-summary"],
    ["--report", "batch", "2"],
    ["--report", "batch", "--batch", "1"],
])
@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_every_report_runs_in_every_format(good_output, capsys, report, fmt):
    code, stdout, stderr = run(capsys, "query", "--output", str(good_output), *report, "--format", fmt)
    assert code == 0, stderr
    if fmt == "json":
        assert json.loads(stdout)
    elif fmt == "csv":
        assert len(list(csv.reader(io.StringIO(stdout)))) >= 2
    else:
        assert "row" in stdout.splitlines()[-1]


def test_consumer_bill_totals_the_consumers_lines(good_output, capsys):
    code, stdout, _ = run(capsys, "query", "--output", str(good_output), "--report", "consumer-bill",
                          "--consumer", CONSUMERS[1].lower(), "--format", "json")
    rows = json.loads(stdout)
    lines = [r for r in all_lines(good_output) if r["consumer"] == CONSUMERS[1]]
    (total,) = [r for r in rows if r["level"] == "total"]
    assert total["amount_wei"] == sum(r["amount_wei"] for r in lines)
    assert {r["batch"] for r in rows if r["level"] == "batch total"} == {1, 2}


def test_json_prints_big_numbers_exactly(good_output, capsys):
    sql = ("SELECT 170141183460469231731687303715884105727::HUGEINT AS h, "
           "99999999999999999999999999999999999999::DECIMAL(38,0) AS d, 1.25::DECIMAL(10,2) AS f, "
           "sum(amount_wei) AS total FROM settlement_lines")
    code, stdout, _ = run(capsys, "query", "--output", str(good_output), sql, "--format", "json")
    assert code == 0
    assert '"h": 170141183460469231731687303715884105727' in stdout
    (row,) = json.loads(stdout)
    assert row["d"] == 10**38 - 1 and row["f"] == "1.25"
    assert row["total"] == sum(int(r["amount_wei"]) for r in all_lines(good_output))
    code, stdout, _ = run(capsys, "query", "--output", str(good_output), sql)
    assert "170141183460469231731687303715884105727" in stdout and "99999999999999999999999999999999999999" in stdout


def test_query_to_parquet(good_output, tmp_path, capsys):
    target = tmp_path / "payables.parquet"
    code, stdout, _ = run(capsys, "query", "--output", str(good_output), "SELECT * FROM payables;", "--to", str(target))
    assert code == 0 and "wrote 16 rows" in stdout
    table = pq.read_table(target)
    assert table.num_rows == 16 and str(table.schema.field("cumulative_wei").type) == "decimal128(38, 0)"


@pytest.mark.parametrize("argv, message", [
    (["SELECT * FROM no_such_view"], "no_such_view"),
    (["--report", "batch", "7"], "batch 7 does not exist"),
    (["--report", "consumer-bill"], "needs --consumer"),
    (["--report", "consumer-bill", "--consumer", "0x12"], "0x12"),
    (["--report", "bestsellers"], "unknown report"),
    (["SELECT 1", "--report", "provider-revenue"], "either SQL or --report"),
    (["SELECT 1", "--to", "/nonexistent/dir/x.parquet"], "/nonexistent/dir"),
])
def test_bad_queries_exit_2_naming_the_problem(good_output, capsys, argv, message):
    code, stdout, stderr = run(capsys, "query", "--output", str(good_output), *argv)
    assert code == 2
    assert message in stderr


def test_reconcile_exit_codes(good_output, capsys):
    out = str(good_output)
    code, stdout, _ = run(capsys, "reconcile", "--output", out)
    assert code == 0 and "reconciled 39 settlement lines of batches 1, 2" in stdout
    rewrite_parquet(lines_file(good_output, 1), lambda rows: [dict(rows[0], amount_wei=rows[0]["amount_wei"] - 1)] + rows[1:])
    code, stdout, stderr = run(capsys, "reconcile", "--output", out)
    assert code == 1
    assert "values differ: amount_wei recorded" in stdout
    assert "1 settlement lines of batches 1, 2 differ" in stderr
    (good_output / "events" / "batch=2" / "part-0.parquet").write_bytes(b"PAR1 garbage")
    code, _, stderr = run(capsys, "reconcile", "--output", out)
    assert code == 2 and "batch=2/part-0.parquet" in stderr
