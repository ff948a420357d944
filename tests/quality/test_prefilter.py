"""The large suites run through expectations/prefilter.py (DuckDB picks the rows GX sees) and
give GX's own results: the same results, row for row and figure for figure, as GX checking
every row, on the good output and on outputs broken in every way the suites know."""
from __future__ import annotations

import json
import shutil

import pytest

import expectations.runner as runner
from expectations.prefilter import compile_expectation
from expectations.runner import validate_output
from tests.quality.conftest import PROVIDERS, rewrite_json, rewrite_parquet
from tests.quality.test_validate import EVENT_DEFECTS, events_file, failure_on, lines_file, manifest_file


def _results(monkeypatch, out, prefilter: bool):
    """validate_output's outcome and every suite's GX results as JSON dicts."""
    seen = {}
    run_suite = runner._run_suite

    def recording(context, con, run, *args):
        result = run_suite(context, con, run, *args)
        stored = [k for k in context.validation_results_store.list_keys()
                  if k.expectation_suite_identifier.name == run.suite.name]
        seen[run.suite.name] = {
            "success": result.success, "statistics": result.statistics,
            "results": [(r.expectation_config.type, r.expectation_config.kwargs, r.success, r.result)
                        for r in result.results],
            "stored": [context.validation_results_store.get(k).to_json_dict()["statistics"] for k in stored],
        }
        return result
    monkeypatch.setattr(runner, "_run_suite", recording)
    report = validate_output(out, revalidate=True, prefilter=prefilter)
    return report, seen


def _same_as_every_row(monkeypatch, out, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(out, reference)
    fast, fast_results = _results(monkeypatch, out, True)
    slow, slow_results = _results(monkeypatch, reference, False)
    assert [(b.batch, b.success, b.suites, b.failures) for b in fast.batches] == \
        [(b.batch, b.success, b.suites, b.failures) for b in slow.batches]
    assert json.dumps(fast_results, sort_keys=True, default=str) == \
        json.dumps(slow_results, sort_keys=True, default=str)
    return fast


def test_good_output_gives_gx_results_of_every_row(good_output, tmp_path, monkeypatch):
    frames = []
    arrow_frame = runner.arrow_frame
    monkeypatch.setattr(runner, "arrow_frame", lambda table: frames.append(arrow_frame(table)) or frames[-1])
    report = _same_as_every_row(monkeypatch, good_output, tmp_path)
    assert report.success
    # the prefiltered run: events and lines of batches 1 and 2, none handing GX a row
    assert len(frames) == 4 and all(len(f) == 0 for f in frames)


def test_broken_events_and_lines_give_gx_results_of_every_row(good_output, tmp_path, monkeypatch):
    defects = list(EVENT_DEFECTS.values())
    rewrite_parquet(events_file(good_output, 2),
                    lambda rows: [change(row) for change, row in zip(defects, rows)] + rows[len(defects):]
                    + [dict(rows[-1], node_id="again")])
    rewrite_parquet(lines_file(good_output, 1),
                    lambda rows: [dict(rows[0], amount_wei=rows[0]["amount_wei"] + 1)] + rows[2:] + [rows[3]])
    report = _same_as_every_row(monkeypatch, good_output, tmp_path)
    assert failure_on(report, 2, "accepted_events", "provider, event_id").unexpected_count == 2
    assert failure_on(report, 2, "accepted_events", "quantity").unexpected_count == 1
    assert failure_on(report, 1, "settlement_lines", "split_difference_wei").partial_unexpected_list == [1]
    assert failure_on(report, 1, "settlement_lines", "line_batch").unexpected_count == 1


def test_event_of_an_earlier_batch_and_bad_manifest_epochs(good_output, tmp_path, monkeypatch):
    first = []
    rewrite_parquet(events_file(good_output, 1), lambda rows: first.append(rows[0]) or rows)
    rewrite_parquet(events_file(good_output, 2), lambda rows: rows[:-1] + [dict(first[0], batch=2)])
    # epochs as text: a value set SQL cannot compare as Python does; GX must see every row
    rewrite_json(manifest_file(good_output, 2), lambda m: m.update(epochs=[str(e) for e in m["epochs"]]))
    report = _same_as_every_row(monkeypatch, good_output, tmp_path)
    assert failure_on(report, 2, "accepted_events", "settled_in_batch").partial_unexpected_list == [1]
    assert failure_on(report, 2, "accepted_events", "timestamp_epoch").unexpected_count > 1


@pytest.mark.parametrize("value, picks_every_row", [([1, 2], False), (["1"], True), ([True], True), ([None], True)])
def test_a_value_set_of_another_type_picks_every_row(value, picks_every_row):
    import great_expectations.expectations as gxe
    config = gxe.ExpectColumnValuesToBeInSet(column="epoch", value_set=value).configuration
    compiled = compile_expectation(config, {"epoch": "BIGINT"}, 0)
    assert (compiled.suspect == "TRUE") == picks_every_row


def test_a_provider_leaf_and_uniqueness_rows(good_output, tmp_path, monkeypatch):
    def add_leaf(tree):
        extra = json.loads(json.dumps(tree["values"][0]))
        extra["value"][4] = PROVIDERS[0] if extra["value"][4] != PROVIDERS[0] else PROVIDERS[1]
        extra["value"][3] = "0x" + "ab" * 20
        tree["values"].append(extra)
    rewrite_json(good_output / "batches" / "2" / "tree.json", add_leaf)
    report = _same_as_every_row(monkeypatch, good_output, tmp_path)
    assert failure_on(report, 2, "payables", "expected_cumulative").unexpected_count == 1
