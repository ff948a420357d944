"""`meterroot batch`: settle usage files into the next batch of an output directory."""
from __future__ import annotations

import sys

from pipelines.batch import settle


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch", help="settle usage files into the next settlement batch",
        description="Read usage files, validate, dedup, price, and append one settlement batch "
                    "(Merkle tree + manifest) to OUTPUT's ledger. Other options go to Beam "
                    "(default --runner=FnApiRunner).")
    p.add_argument("--input", dest="inputs", action="append", required=True, metavar="GLOB",
                   help="usage files (JSONL, CSV, Parquet by extension); repeatable")
    p.add_argument("--tariff", required=True, metavar="FILE", help="tariff (YAML or JSON)")
    p.add_argument("--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--chain-id", dest="chain_id", type=int, required=True, metavar="N")
    p.add_argument("--registry", required=True, metavar="ADDR")
    p.add_argument("--shards", type=int, default=8, help="dedup shards (default 8)")
    p.add_argument("--probes", action="append", default=[], metavar="GLOB",
                   help="probe records (JSONL, SPEC §14): availability per (provider, epoch); repeatable")
    p.add_argument("--no-validate", action="store_true", help="skip the data quality suites")
    p.set_defaults(func=run_batch, accepts_beam_options=True)


def run_batch(args) -> int:
    result = settle(args.inputs, args.tariff, args.output, args.chain_id, args.registry,
                    args.beam_args, args.shards, args.probes)
    run = result.run
    print(f"read {run['read']}, accepted {run['accepted']}, duplicates {run['duplicates']}, "
          f"quarantined {run['quarantined']}")
    print(run["message"])
    status = 0
    if result.batch is not None:
        status = post_batch(args.output, result.batch, validate=not args.no_validate)
    return status


def post_batch(output: str, batch: int, validate: bool) -> int:
    """Data quality suites and the DuckDB catalog, when those modules are installed."""
    from pathlib import Path
    status = 0
    try:
        from sinks.catalog import build_catalog
    except ImportError:
        build_catalog = None
    if validate:
        try:
            from expectations.suites import validate_output
        except ImportError:
            validate_output = None
        if validate_output is not None:
            report = validate_output(Path(output), batches=[batch])
            if not getattr(report, "success", True):
                print(f"validation of batch {batch} FAILED; see {output}/quality/", file=sys.stderr)
                status = 1
    if build_catalog is not None:
        build_catalog(Path(output))
    return status
