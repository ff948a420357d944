"""The batch job (SPEC §8): usage files -> one settlement batch, committed to the ledger.

Thin by design: check the configuration before any data is read, wire sources -> SettleUsage ->
sinks, then commit what the pipeline wrote (manifest, run.json, ledger head last)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from settlement.addresses import AddressError, normalize_address
from settlement.errors import InvalidInput, UsageError
from settlement.ledger import check_continuation
from settlement.tariff import Tariff, load_tariff
from sinks.availability_files import discard_unfinished as discard_unfinished_probes
from sinks.availability_files import settle_probes
from sinks.batch_outputs import WriteBatchOutputs, staging_dir
from sinks.ledger_store import LedgerStore
from sinks.run_commit import RunResult, commit_run
from transforms.decoding import format_of
from transforms.read_usage import ReadUsageRecords
from transforms.settle_usage import LedgerState, SettleUsage

DEFAULT_RUNNER = "FnApiRunner"


class BatchOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", dest="inputs", action="append", default=[],
                            help="usage files: a path or glob (*.jsonl, *.csv, *.parquet); repeatable")
        parser.add_argument("--tariff", help="tariff file (YAML or JSON)")
        parser.add_argument("--output", help="output directory (its ledger/ continues across runs)")
        parser.add_argument("--chain-id", dest="chain_id", type=int, help="chain id the leaves name")
        parser.add_argument("--registry", help="settlement registry address the leaves name")
        parser.add_argument("--shards", type=int, default=8, help="dedup shards (parallelism)")
        parser.add_argument("--probes", dest="probes", action="append", default=[],
                            help="probe records (SPEC §14, JSONL): a path or glob; repeatable")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Every file the globs match, sorted; a glob matching nothing is an error."""
    if not patterns:
        raise UsageError("no --input given; pass --input with a usage file or glob, e.g. --input 'usage/*.jsonl'")
    paths = set()
    for pattern in patterns:
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # Beam raises BeamIOError and friends for unknown schemes
            raise InvalidInput(f"input {pattern!r} cannot be listed: {exc}") from None
        files = [m.path for m in matched if not m.path.endswith("/")]
        if not files:
            raise InvalidInput(f"input {pattern!r} matches no file; check the path (quote globs so the "
                               "shell does not expand them)")
        paths.update(files)
    return sorted(paths)


def check_readable(path: str) -> None:
    """Refuse, before anything is written, a file of unknown format or that cannot be opened."""
    fmt = format_of(path)
    try:
        with FileSystems.open(path) as handle:
            if fmt == "parquet":
                pq.read_metadata(handle)
            else:
                handle.read(1)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInput(f"input {path} cannot be read: {exc}; check its permissions and that it is "
                           f"complete {fmt}") from None


def _registry(text: str | None) -> str:
    if not text:
        raise UsageError("--registry is required: the settlement registry address the leaves name")
    try:
        return normalize_address(text)
    except AddressError as exc:
        raise UsageError(f"--registry {exc}") from None


def build_pipeline(p, paths: list[str], tariff: Tariff, state: LedgerState, chain_id: int,
                   registry: str, out: Path, shards: int) -> None:
    records = p | "Inputs" >> beam.Create(paths) | "ReadUsageFiles" >> ReadUsageRecords()
    spill_dir = str(staging_dir(out) / "spill")
    outputs = records.records | "SettleUsage" >> SettleUsage(tariff, state, chain_id, registry, shards,
                                                               spill_dir)
    outputs["digests"] = records.digests
    outputs | "WriteBatchOutputs" >> WriteBatchOutputs(out, state.batch)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    args = list(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.append(f"--runner={DEFAULT_RUNNER}")
    return PipelineOptions(args)


def settle(inputs: list[str], tariff_path: str, output: str, chain_id: int | None, registry: str | None,
           beam_args: list[str] = (), shards: int = 8, probes: list[str] = ()) -> RunResult:
    """Run one batch; raises UsageError (exit 2) for bad configuration before writing anything."""
    tariff = load_tariff(tariff_path) if tariff_path else None
    if tariff is None:
        raise UsageError("--tariff is required: a YAML or JSON tariff file")
    if output is None:
        raise UsageError("--output is required: the output directory")
    if chain_id is None or chain_id <= 0:
        raise UsageError(f"--chain-id must be a positive chain id, got {chain_id}")
    registry = _registry(registry)
    paths = expand_inputs(inputs)
    for path in paths:
        check_readable(path)
    probe_paths = expand_inputs(list(probes)) if probes else []
    for path in probe_paths:
        check_readable(path)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out} is a file; pass a directory")
    store = LedgerStore(out)
    head = store.head()
    check_continuation(head, tariff.epoch_seconds, chain_id, registry, str(store.root))

    out.mkdir(parents=True, exist_ok=True)
    store.discard_unfinished(head)
    shutil.rmtree(staging_dir(out), ignore_errors=True)
    batch = (head.batch if head else 0) + 1
    state = LedgerState(batch=batch, settled_files=store.settled_event_files(head),
                        quantities=store.settled_quantities(head), cumulative=store.cumulative(head))
    discard_unfinished_probes(out, head.batch if head else 0)
    with beam.Pipeline(options=pipeline_options(list(beam_args))) as p:
        build_pipeline(p, paths, tariff, state, chain_id, registry, out, shards)
    if probe_paths and (staging_dir(out) / "batch.json").exists():  # probes ride on a batch
        settle_probes(out, probe_paths, tariff.epoch_seconds, batch - 1, batch)
    return commit_run(out, paths, tariff, head, batch, chain_id, registry, store)


def run(argv: list[str] | None = None) -> RunResult:
    """Entry point for tests and the CLI: meterroot's flags plus any Beam options."""
    options = PipelineOptions(argv if argv is not None else sys.argv[1:])
    mine = options.view_as(BatchOptions)
    known = {"--input", "--tariff", "--output", "--chain-id", "--registry", "--shards", "--probes"}
    beam_args = []
    args = list(argv if argv is not None else sys.argv[1:])
    i = 0
    while i < len(args):
        name = args[i].split("=", 1)[0]
        if name in known:
            i += 1 if "=" in args[i] else 2
            continue
        beam_args.append(args[i])
        i += 1
    return settle(mine.inputs, mine.tariff, mine.output, mine.chain_id, mine.registry, beam_args, mine.shards,
                  mine.probes)
