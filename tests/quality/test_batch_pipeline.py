"""The real `meterroot batch` output validates, reconciles and answers queries unchanged."""
from __future__ import annotations

import json
import random

import pytest

pytest.importorskip("pipelines.batch_cli")

from sinks.validation_gate import check_batch_validated  # noqa: E402
from pipelines.cli import main  # noqa: E402
from tests.quality.conftest import (CONSUMERS, FIRST_EPOCH, REGISTRY, TARIFF,  # noqa: E402
                                    make_events)


def write_jsonl(path, events):
    with open(path, "w") as handle:
        for event in events:
            record = {k: v for k, v in event.items() if k != "timestamp_ms"}
            record["timestamp"] = event["timestamp_ms"]
            if record["token_id"] is None:
                del record["token_id"]
            handle.write(json.dumps(record) + "\n")


@pytest.fixture(scope="module")
def pipeline_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    rng = random.Random(5)
    first = make_events(rng, 1, 40, [FIRST_EPOCH, FIRST_EPOCH + 1])
    late = make_events(rng, 2, 15, [FIRST_EPOCH, FIRST_EPOCH + 2])  # epoch FIRST_EPOCH again: P > 0
    write_jsonl(root / "day1.jsonl", first + first[:2])  # two exact copies: duplicates
    write_jsonl(root / "day2.jsonl", late)
    (root / "tariff.json").write_text(json.dumps(TARIFF))
    out = root / "OUT"
    for day in ("day1", "day2"):
        code = main(["batch", "--input", str(root / f"{day}.jsonl"), "--tariff", str(root / "tariff.json"),
                     "--output", str(out), "--chain-id", "31337", "--registry", REGISTRY])
        assert code == 0
    return out


def test_batch_run_validates_its_batch_and_builds_the_catalog(pipeline_output):
    for batch in (1, 2):
        assert json.loads((pipeline_output / "quality" / str(batch) / "validation.json").read_text())["success"]
    assert (pipeline_output / "catalog.duckdb").is_file()


def test_pipeline_output_validates_reconciles_and_queries(pipeline_output, capsys):
    out = str(pipeline_output)
    assert main(["validate", "--output", out, "--all"]) == 0
    assert "batch 2: passed 5 suites" in capsys.readouterr().out
    check_batch_validated(pipeline_output, 2)
    assert main(["reconcile", "--output", out]) == 0
    assert "every line matches" in capsys.readouterr().out
    for report in (["--report", "provider-revenue"], ["--report", "quarantine-summary"], ["--report", "batch", "2"],
                   ["--report", "consumer-bill", "--consumer", CONSUMERS[0]]):
        assert main(["query", "--output", out, *report, "--format", "json"]) == 0
        json.loads(capsys.readouterr().out)
    assert main(["query", "--output", out, "SELECT sum(duplicates) AS d FROM batches", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"d": 2}]
