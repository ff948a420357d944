"""`meterroot batch`: settle usage files into the next batch of an output directory."""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from sinks.lock import OutputLock


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
    p.add_argument("--token-ids", metavar="FILE",
                   help="consumer -> Counter NFT id mapping (JSON or CSV, from `meterroot chain token-ids`): "
                        "an event naming another token than its consumer's is quarantined bad_token_id")
    p.add_argument("--no-validate", action="store_true", help="skip the data quality suites")
    p.add_argument("--wait-lock", type=_wait_seconds, default=0, metavar="SECONDS",
                   help="when another run holds OUTPUT, wait up to this long for it (default: exit 2 "
                        "at once, naming the holder)")
    p.set_defaults(func=run_batch, accepts_beam_options=True)


def _wait_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400 * 7:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 604800")
    return value


def run_batch(args) -> int:
    from pipelines.batch import settle  # Beam: imported by the commands that run a pipeline only
    from sinks.run_commit import failpoint

    gc.freeze()  # Beam's objects live as long as the process (see pipelines.cli.main)
    # OUT's lock is taken by `settle` once the configuration is checked and held through the
    # steps after the commit point (validation, catalog), so no other run sees them half done.
    lock = OutputLock(Path(args.output), "batch", args.wait_lock)
    try:
        result = settle(args.inputs, args.tariff, args.output, args.chain_id, args.registry,
                        args.beam_args, args.shards, lock=lock, probes=args.probes,
                        token_ids=args.token_ids)
        failpoint("after-run-json")
        run = result.run
        print(f"read {run['read']}, accepted {run['accepted']}, duplicates {run['duplicates']}, "
              f"quarantined {run['quarantined']}")
        print(run["message"])
        return after_commit(args.output, result.batch, validate=not args.no_validate)
    finally:
        lock.release()


def after_commit(output: str, batch: int | None, validate: bool) -> int:
    """The steps after the commit point, for this run's batch and for any committed batch whose
    steps a crash skipped: validation of every batch without a record, and the catalog when
    it is missing or older than the ledger head."""
    from sinks.validation_records import read_record
    from sinks import layout
    from sinks.run_commit import catalog_current

    out = Path(output)
    head = layout.head_batch(out)
    pending = [b for b in range(1, head + 1) if validate and read_record(out, b) is None]
    if batch is not None and batch not in pending:
        pending.append(batch) if validate else None
    stale = head and not catalog_current(out)
    if not pending and not stale and batch is None:
        return 0
    return post_batch(output, sorted(pending), validate=bool(pending))


def post_batch(output: str, batch, validate: bool) -> int:
    """Data quality suites on `batch` (a number or a list) and the DuckDB catalog, when those
    modules are installed."""
    batches = [batch] if isinstance(batch, int) else list(batch)
    status = 0
    try:
        from sinks.catalog import build_catalog
    except ImportError:
        build_catalog = None
    if validate and batches:
        try:
            from expectations.runner import validate_output
        except ImportError:
            validate_output = None
        if validate_output is not None:
            report = validate_output(Path(output), batches=batches)
            if not getattr(report, "success", True):
                failed = ", ".join(map(str, getattr(report, "failed", batches)))
                print(f"validation of batch {failed} FAILED; see {output}/quality/", file=sys.stderr)
                status = 1
    if build_catalog is not None:
        build_catalog(Path(output))
    return status
