"""`meterroot validate`, `meterroot query` and `meterroot reconcile`: can this output be trusted?

Great Expectations and DuckDB are imported inside the handlers: registering these commands must
not slow down every other `meterroot` command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from settlement.errors import UsageError
from sinks.lock import holds_output_lock

MAX_SHOWN_DIFFERENCES = 50


def register(subparsers) -> None:
    validate = subparsers.add_parser(
        "validate", help="run the data quality suites on batches of an output directory",
        description="Run the Great Expectations suites on batches of OUT, build Data Docs under "
                    "OUT/quality/ and record each outcome in OUT/quality/<B>/validation.json. "
                    "Exit 1 when a suite fails.")
    validate.add_argument("--output", required=True, type=Path, metavar="OUT")
    which = validate.add_mutually_exclusive_group()
    which.add_argument("--batch", type=int, action="append", metavar="B",
                       help="validate this batch (repeatable); default: every batch without a "
                            "passing record")
    which.add_argument("--all", action="store_true", help="validate every batch again")
    validate.add_argument("--max-quarantine-share", type=float, default=0.05, metavar="F",
                          help="fail a batch whose quarantined / read exceeds F (default 0.05)")
    validate.add_argument("--tariff", type=Path, metavar="FILE",
                          help="check against this tariff instead of OUT/ledger/tariff.json")
    validate.add_argument("--wait-lock", type=float, default=0, metavar="SECONDS",
                          help="when another run holds OUT, wait up to this long for it (default: exit 2)")
    validate.set_defaults(func=holds_output_lock("validate")(run_validate))

    verify = subparsers.add_parser(
        "verify", help="check a whole output directory against its ledger, changing nothing",
        description="Check every file OUT/ledger/HEAD.json records (size and sha256: settled events, "
                    "ledger snapshots, tariff, and each batch's lines, quarantine, tree and manifest), "
                    "that no committed batch holds a file HEAD does not record, that batches are "
                    "numbered 1..HEAD, and that each manifest's counts add up. Exit 1 naming every "
                    "damaged file.")
    verify.add_argument("--output", required=True, type=Path, metavar="OUT")
    verify.set_defaults(func=run_verify)

    query = subparsers.add_parser(
        "query", help="run SQL (or a named report) over every output, with DuckDB",
        description="Run SQL over the views events, quarantine, settlement_lines, batches, ledger, "
                    "payables and validations of OUT (the views of OUT/catalog.duckdb).")
    query.add_argument("--output", required=True, type=Path, metavar="OUT")
    query.add_argument("sql", nargs="?", metavar="SQL")
    query.add_argument("--report", nargs="+", metavar=("NAME", "ARG"),
                       help="consumer-bill --consumer C | provider-revenue | quarantine-summary | batch B")
    query.add_argument("--consumer", metavar="ADDRESS", help="the consumer of --report consumer-bill")
    query.add_argument("--batch", type=int, metavar="B", help="the batch of --report batch")
    query.add_argument("--format", default="table", choices=("table", "csv", "json"))
    query.add_argument("--to", type=Path, metavar="FILE.parquet", help="write the result to a Parquet file")
    query.set_defaults(func=run_query)

    reconcile = subparsers.add_parser(
        "reconcile", help="recompute every settlement line in SQL and compare, to the wei",
        description="Recompute every settlement line of every batch from OUT/events and the tariff in "
                    "DuckDB SQL alone and compare with OUT/settlement_lines. Exit 1 on any difference.")
    reconcile.add_argument("--output", required=True, type=Path, metavar="OUT")
    reconcile.add_argument("--tariff", type=Path, metavar="FILE",
                           help="the tariff to price with (default: OUT/ledger/tariff.json)")
    reconcile.set_defaults(func=run_reconcile)


def _describe(values) -> str:
    return "; ".join(map(repr, values))


def run_verify(args: argparse.Namespace) -> int:
    from sinks.verify import verify_output

    report = verify_output(args.output)
    for problem in report.problems:
        print(f"DAMAGED: {problem}", file=sys.stderr)
    if report.problems:
        print(f"{args.output} failed verification: {len(report.problems)} problem(s); nothing was changed",
              file=sys.stderr)
        return 1
    print(f"{args.output}: ledger HEAD at batch {report.head}, {report.files} files checked "
          f"({report.bytes} bytes), every size and sha256 as committed; counts add up")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from expectations.runner import validate_output
    from sinks.ledger_store import LedgerStore

    store = LedgerStore(args.output)
    store.verify(store.head())  # a damaged ledger is refused before anything is validated
    report = validate_output(args.output, args.batch, args.max_quarantine_share,
                             tariff=args.tariff, revalidate=args.all)
    if not report.batches:
        print(f"nothing to validate in {args.output}: every batch has a passing record "
              "(use --all or --batch B to validate again)")
        return 0
    for outcome in report.batches:
        docs = args.output / outcome.data_docs
        if outcome.success:
            print(f"batch {outcome.batch}: passed {len(outcome.suites)} suites; Data Docs: {docs}")
            continue
        failed = ", ".join(name for name, ok in outcome.suites.items() if not ok)
        print(f"batch {outcome.batch}: FAILED {failed}; Data Docs: {docs}")
        for failure in outcome.failures:
            print(f"  {failure.suite}: {failure.expectation}({failure.columns}) -- {failure.description}")
            if failure.error:
                print(f"    could not run: {failure.error}")
            elif failure.unexpected_count is not None:
                print(f"    {failure.unexpected_count} unexpected; values: {_describe(failure.partial_unexpected_list)}")
                for row in failure.offending_rows[:5]:
                    print(f"    at {row}")
            else:
                print(f"    observed: {failure.observed_value!r}")
    if report.catalog_error:
        print(f"warning: {args.output}/catalog.duckdb was not rebuilt: {report.catalog_error}", file=sys.stderr)
    if not report.success:
        print(f"validation failed for batch {', '.join(map(str, report.failed))} of {args.output}",
              file=sys.stderr)
        return 1
    return 0


def run_query(args: argparse.Namespace) -> int:
    from expectations.outputs import batch_numbers
    from sinks import reports
    from sinks.catalog import connect

    if (args.sql is None) == (args.report is None):
        raise UsageError("give either SQL or --report NAME, not both and not neither")
    if args.report is not None:
        name, *rest = args.report
        batch = args.batch
        if rest:
            if name != "batch" or len(rest) != 1 or not rest[0].isdigit():
                raise UsageError(f"--report {' '.join(args.report)}: only `--report batch B` takes an argument")
            batch = int(rest[0])
        query = reports.report_query(name, consumer=args.consumer, batch=batch,
                                     known_batches=batch_numbers(args.output) if name == "batch" else None)
    else:
        query = reports.Query(args.sql.strip().rstrip(";"), {})
    con = connect(args.output)
    try:
        if args.to is not None:
            rows = reports.write_parquet(con, query, args.to)
            print(f"wrote {rows} rows to {args.to}")
            return 0
        result = reports.run_query(con, query)
    finally:
        con.close()
    sys.stdout.write(reports.render(result, args.format))
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    from expectations.reconcile import reconcile_output

    report = reconcile_output(args.output, args.tariff)
    for batch, named in sorted(report.skipped_batches.items()):
        print(f"batch {batch} skipped: priced with tariff {named}, not {report.tariff_hash} "
              "(pass --tariff with that tariff to reconcile it)", file=sys.stderr)
    batches = ", ".join(map(str, report.compared_batches))
    if report.success:
        print(f"reconciled {report.lines_compared} settlement lines of batches {batches}: "
              "every line matches the events and the tariff to the wei")
        return 0
    shown = report.differences[:MAX_SHOWN_DIFFERENCES]
    for difference in shown:
        print(_difference_line(difference))
    more = len(report.differences) - len(shown)
    print(f"{len(report.differences)} settlement lines of batches {batches} differ from the SQL recomputation"
          + (f" ({more} not shown)" if more else ""), file=sys.stderr)
    return 1


def _difference_line(difference: dict) -> str:
    from expectations.reconcile import LINE_KEY

    key = " ".join(f"{name}={difference[name]}" for name in LINE_KEY)
    fields = []
    for name in ("quantity", "amount_wei", "protocol_fee_wei", "provider_wei"):
        recorded, expected = difference[f"recorded_{name}"], difference[f"expected_{name}"]
        if recorded != expected:
            fields.append(f"{name} recorded {'-' if recorded is None else recorded}, "
                          f"expected {'-' if expected is None else expected}")
    return f"{key}: {difference['problem']}: " + "; ".join(fields)
