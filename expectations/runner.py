"""Run the suites of expectations/suites.py over the batches of an output directory.

One ephemeral Great Expectations context per batch (no project folder, no cloud): its Data Docs
site is built into OUT/quality/<B>/data_docs/ and its outcome recorded in
OUT/quality/<B>/validation.json, which `sinks.validation_gate.check_batch_validated` reads before a
root goes on chain.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import great_expectations as gx
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.validator.validator import calc_validation_statistics

from expectations.availability import availability_suite_runs
from expectations.frames import arrow_frame, batch_frames, sql_frame
from expectations.prefilter import ROWS, TABLE_LEVEL, SqlTable, missing_column, plan, restate_counts
from expectations.outputs import batch_numbers, recorded_tariff, require_batches
from sinks.atomic import write_bytes
from sinks.validation_records import (ValidationRecord, batch_digests, manifest_digest, quality_dir,
                                      read_record, stale_files, write_record)
from expectations.suites import DEFAULT_MAX_QUARANTINE_SHARE, SUITE_NAMES, suite_runs
from settlement.errors import MeterrootError, UsageError
from sinks.atomic import crash_point
from sinks.catalog import build_catalog, check_output_dir, connect

DOCS_SITE = "meterroot"
DOCS_FOLDER = "data_docs"
PARTIAL_UNEXPECTED = 20


@dataclass(frozen=True)
class ExpectationFailure:
    """One expectation that did not hold, with what broke it."""
    suite: str
    """Suite name (one of SUITE_NAMES)."""
    expectation: str
    """GX expectation type, e.g. expect_column_pair_values_to_be_equal."""
    columns: str
    """The column(s) it looked at."""
    description: str
    """The rule in words."""
    unexpected_count: int | None
    """How many rows broke it (None for table-level expectations)."""
    partial_unexpected_list: list
    """GX's sample of offending values."""
    offending_rows: list
    """The same rows with the columns that identify them (line key, event key, input, pair)."""
    observed_value: object = None
    """For table-level expectations: what GX observed."""
    error: str | None = None
    """When the expectation could not even run: why."""


@dataclass(frozen=True)
class BatchValidation:
    """The outcome of every suite on one batch."""
    batch: int
    success: bool
    suites: dict
    """suite name -> success."""
    failures: tuple = ()
    """ExpectationFailure of every failed expectation."""
    validated_at: str = ""
    data_docs: str = ""
    """Data Docs index of the batch, relative to the output directory."""


@dataclass(frozen=True)
class ValidationReport:
    """What `validate_output` did."""
    out_dir: Path
    batches: tuple = ()
    """BatchValidation per validated batch, ascending."""
    skipped: tuple = field(default=())
    """Batches left alone because they already have a passing record."""
    catalog_error: str | None = None
    """Why OUT/catalog.duckdb could not be rebuilt afterwards (the validation itself stands)."""

    @property
    def success(self) -> bool:
        return all(b.success for b in self.batches)

    @property
    def failed(self) -> list[int]:
        return [b.batch for b in self.batches if not b.success]


def _quiet_gx() -> None:
    """Some GX modules set their own loggers to INFO; their chatter is not our output."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _context(docs_dir: Path):
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(DOCS_SITE, {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
    })
    return context


def _columns(kwargs: dict) -> str:
    for key in ("column_list", "column", "column_A"):
        if key in kwargs and kwargs[key] is not None:
            if key == "column_A":
                return f"{kwargs['column_A']}, {kwargs['column_B']}"
            value = kwargs[key]
            return ", ".join(value) if isinstance(value, list) else str(value)
    return "(table)"


def _failure(suite: str, result) -> ExpectationFailure:
    config = result.expectation_config
    details = result.result or {}
    error = None
    if result.exception_info and result.exception_info.get("raised_exception"):
        error = result.exception_info.get("exception_message")
    return ExpectationFailure(
        suite=suite,
        expectation=config.type,
        columns=_columns(config.kwargs),
        description=config.description or "",
        unexpected_count=details.get("unexpected_count"),
        partial_unexpected_list=list(details.get("partial_unexpected_list") or []),
        offending_rows=list(details.get("partial_unexpected_index_list") or []),
        observed_value=details.get("observed_value"),
        error=error,
    )


def _install_docs(built: Path, target: Path) -> None:
    """Swap the freshly built site in place of the previous one."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    crash_point(target, "before")
    os.replace(built, target)
    crash_point(target, "after")
    shutil.rmtree(old, ignore_errors=True)


def _result_format(run) -> dict:
    return {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED,
            "unexpected_index_column_names": list(run.index_columns)}


def _run_suite(context, con, run, definition, validation, run_id: RunIdentifier, prefilter: bool):
    """GX's result of one suite, stored in the context for Data Docs. A pandas frame goes to GX
    as it is; a `SqlTable` through expectations/prefilter.py: GX sees only the rows DuckDB picks
    as possibly unexpected, and the whole table's counts are restated (prefilter=False gives GX
    every row, the reference the tests compare with)."""
    if not isinstance(run.frame, SqlTable):
        return validation.run(batch_parameters={"dataframe": run.frame}, result_format=_result_format(run),
                              run_id=run_id)
    table = run.frame
    configs = [e.configuration for e in run.suite.expectations]
    every_row = f"SELECT * FROM ({table.sql}) AS t ORDER BY {table.order_by}"
    counts, frame = None, None
    if prefilter:
        try:
            relation = con.sql(f"SELECT * FROM ({table.sql}) AS t LIMIT 0", params=table.params or None)
            names = relation.columns
            query = plan(table, configs, dict(zip(names, map(str, relation.types))))
            both = con.sql(query, params=table.params or None).to_arrow_table()
        except duckdb.Error:  # e.g. a value SQL cannot compare: GX sees every row
            both = None
        if both is not None:
            last = both.slice(both.num_rows - 1).to_pylist()[0]
            counts = [last[ROWS]] + [last.get(missing_column(i)) for i in range(len(configs))]
            frame = arrow_frame(both.slice(0, both.num_rows - 1).select(names))
    if frame is None:
        frame = sql_frame(con, every_row, table.params)
    result = validation.run(batch_parameters={"dataframe": frame}, result_format=_result_format(run),
                            run_id=run_id)
    if counts is None:
        return result
    rows = counts[0]
    whole = definition.get_batch(batch_parameters={"dataframe": pd.DataFrame(index=pd.RangeIndex(rows))})
    for position, (config, outcome) in enumerate(zip(configs, result.results)):
        if config.type in TABLE_LEVEL:
            again = whole.validate(run.suite.expectations[position], result_format=_result_format(run))
            outcome.success, outcome.result = again.success, again.result
            outcome.exception_info = again.exception_info
        else:
            restate_counts(outcome.result, rows, counts[1 + position])
    statistics = calc_validation_statistics(result.results)
    result.success = statistics.success
    result.statistics.update(evaluated_expectations=statistics.evaluated_expectations,
                             successful_expectations=statistics.successful_expectations,
                             unsuccessful_expectations=statistics.unsuccessful_expectations,
                             success_percent=statistics.success_percent)
    store = context.validation_results_store
    for key in store.list_keys():
        if key.expectation_suite_identifier.name == run.suite.name and key.run_id == run_id:
            store.set(key, result)
    return result


def validate_batch(con, out_dir: Path, batch: int, tariff, max_quarantine_share: float, *,
                   prefilter: bool = True) -> BatchValidation:
    """Run every suite on one batch, build its Data Docs and record the outcome."""
    runs = suite_runs(batch_frames(con, out_dir, batch, tariff), max_quarantine_share)
    runs += availability_suite_runs(con, out_dir, batch)  # SPEC §14: only where probes were settled
    folder = quality_dir(out_dir, batch)
    folder.mkdir(parents=True, exist_ok=True)
    built = folder / f".{DOCS_FOLDER}.{os.getpid()}.tmp"
    shutil.rmtree(built, ignore_errors=True)
    context = _context(built)
    now = datetime.now(timezone.utc)
    suites, failures = {}, []
    try:
        source = context.data_sources.add_pandas(f"batch_{batch}")
        for run in runs:
            suite = context.suites.add(run.suite)
            definition = source.add_dataframe_asset(run.suite.name).add_batch_definition_whole_dataframe("all")
            validation = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"batch {batch} {run.suite.name}", data=definition, suite=suite))
            result = _run_suite(context, con, run, definition, validation,
                                RunIdentifier(run_name=f"batch-{batch}", run_time=now), prefilter)
            suites[run.suite.name] = bool(result.success)
            failures += [_failure(run.suite.name, r) for r in result.results if not r.success]
        context.build_data_docs(site_names=[DOCS_SITE])
        _install_docs(built, folder / DOCS_FOLDER)
    finally:
        shutil.rmtree(built, ignore_errors=True)
    outcome = BatchValidation(
        batch=batch,
        success=all(suites.values()),
        suites=suites,
        failures=tuple(failures),
        validated_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        data_docs=str((folder / DOCS_FOLDER / "index.html").relative_to(out_dir)),
    )
    write_record(out_dir, ValidationRecord(
        batch=batch, success=outcome.success, suites=suites, validated_at=outcome.validated_at,
        data_docs=outcome.data_docs, manifest_sha256=manifest_digest(out_dir, batch),
        files=batch_digests(out_dir, batch),
        failures=[f"{f.suite}: {f.expectation}({f.columns}): {f.description}" for f in failures]))
    return outcome


def batches_to_validate(out_dir: Path, batches: list[int] | None, revalidate: bool) -> list[int]:
    """Explicit `batches`; else every batch, or (default) those without a passing, current record."""
    if batches is not None:
        return require_batches(out_dir, list(batches))
    every = batch_numbers(out_dir)
    if revalidate:
        return every
    pending = []
    for batch in every:
        record = read_record(out_dir, batch)
        if record is None or not record.success or stale_files(out_dir, record):
            pending.append(batch)
    return pending


def _write_index(out_dir: Path) -> None:
    """OUT/quality/index.html: every batch's outcome with a link to its Data Docs."""
    rows = []
    for batch in batch_numbers(out_dir):
        record = read_record(out_dir, batch)
        if record is None:
            rows.append(f"<tr><td>{batch}</td><td>never validated</td><td></td><td></td></tr>")
            continue
        failed = ", ".join(name for name, ok in record.suites.items() if not ok) or "-"
        link = os.path.relpath(out_dir / record.data_docs, out_dir / "quality")
        rows.append(f"<tr><td>{batch}</td><td>{'passed' if record.success else 'FAILED'}</td>"
                    f"<td>{failed}</td><td><a href=\"{link}\">{record.validated_at}</a></td></tr>")
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>meterroot validation</title></head>"
            "<body><h1>meterroot batch validation</h1><p>Suites: " + ", ".join(SUITE_NAMES) + "</p>"
            "<table border=\"1\"><tr><th>batch</th><th>outcome</th><th>failed suites</th>"
            "<th>Data Docs</th></tr>" + "".join(rows) + "</table></body></html>\n")
    write_bytes(out_dir / "quality" / "index.html", page.encode("utf-8"))


def validate_output(out_dir: Path, batches: list[int] | None = None,
                    max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE, *,
                    tariff: Path | None = None, revalidate: bool = False,
                    prefilter: bool = True) -> ValidationReport:
    """Validate batches of `out_dir` and record each outcome in OUT/quality/<B>/validation.json.

    batches: those to validate; None = every batch without a passing record for its current
    manifest (all of them with revalidate=True). tariff: check against this tariff file instead
    of the one the run recorded (OUT/ledger/tariff.json). prefilter=False: GX checks every row of
    the large tables itself (the slow reference; see `_run_suite`). Never raises for a failed expectation:
    see `ValidationReport.success`. Raises UsageError for a missing batch or unreadable output.
    """
    if not 0 <= max_quarantine_share <= 1:
        raise UsageError(f"--max-quarantine-share must be between 0 and 1, got {max_quarantine_share}")
    out_dir = check_output_dir(out_dir)
    selected = batches_to_validate(out_dir, batches, revalidate)
    skipped = tuple(b for b in batch_numbers(out_dir) if b not in selected)
    if not selected:
        return ValidationReport(out_dir, (), skipped)
    _quiet_gx()
    tariff_used = recorded_tariff(out_dir, tariff)
    con = connect(out_dir)
    try:
        outcomes = tuple(validate_batch(con, out_dir, batch, tariff_used, max_quarantine_share,
                                        prefilter=prefilter)
                         for batch in selected)
    finally:
        con.close()
    _write_index(out_dir)
    try:  # so that the catalog's `validations` view sees the new records
        build_catalog(out_dir)
        catalog_error = None
    except MeterrootError as exc:
        catalog_error = str(exc)
    return ValidationReport(out_dir, outcomes, skipped, catalog_error)
