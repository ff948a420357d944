"""The batch job (SPEC §8): usage files -> one settlement batch, committed to the ledger.

Thin by design: check the configuration before any data is read, wire sources -> SettleUsage ->
sinks, then commit what the pipeline wrote (manifest, run.json, ledger head last)."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
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
from settlement.token_ids import TokenIds, load_token_ids
from sinks import layout
from sinks.availability_files import settle_probes
from transforms.write_batch_outputs import WriteBatchOutputs
from sinks.ledger_store import LedgerStore
from sinks.lock import OutputLock, check_output_path
from sinks.run_commit import RunResult, commit_run, finish_interrupted, interrupted_after_commit
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
        parser.add_argument("--token-ids", dest="token_ids",
                            help="consumer -> Counter NFT id mapping (JSON or CSV): bad_token_id")


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
                   registry: str, out: Path, shards: int, staging: Path,
                   token_ids: TokenIds | None = None) -> None:
    records = p | "Inputs" >> beam.Create(paths) | "ReadUsageFiles" >> ReadUsageRecords()
    spill_dir = str(staging / "spill")
    outputs = records.records | "SettleUsage" >> SettleUsage(tariff, state, chain_id, registry, shards,
                                                               spill_dir, token_ids)
    outputs["digests"] = records.digests
    outputs | "WriteBatchOutputs" >> WriteBatchOutputs(out, state.batch, staging)


MAX_SHARDS = 4096
MAX_CHAIN_ID = 2**256 - 1


def check_chain_id(chain_id) -> int:
    if chain_id is None or isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise UsageError(f"--chain-id must be a positive chain id, got {chain_id}")
    if chain_id > MAX_CHAIN_ID:
        raise UsageError(f"--chain-id {chain_id} does not fit the uint256 the leaves encode it in; pass "
                         "the chain id of the chain the registry is deployed on")
    return chain_id


def check_shards(shards) -> int:
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise UsageError(f"--shards must be a whole number from 1 to {MAX_SHARDS}, got {shards}")
    return shards


def new_run_id() -> str:
    return f"run-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def clear_staging(out: Path) -> None:
    """Remove every staging folder: with OUT's lock held, they are the remains of dead runs."""
    root = layout.staging_root(out)
    if root.is_dir():
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def quiet_runner_errors() -> None:
    """A refused input raises InvalidInput inside a DoFn; Beam's runner logs the traceback of
    it at ERROR before re-raising, and the CLI then prints the one clear message. The runner's
    own log is for debugging: METERROOT_LOG=ERROR (or lower) shows it again."""
    if "METERROOT_LOG" in os.environ:
        return
    for name in ("apache_beam.runners", "apache_beam.runners.common", "apache_beam.runners.worker",
                 "apache_beam.runners.portability", "apache_beam.runners.worker.sdk_worker",
                 "apache_beam.runners.portability.fn_api_runner"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    args = list(beam_args)
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.append(f"--runner={DEFAULT_RUNNER}")
    return PipelineOptions(args)


def settle(inputs: list[str], tariff_path: str, output: str, chain_id: int | None, registry: str | None,
           beam_args: list[str] = (), shards: int = 8, lock: OutputLock | None = None,
           probes: list[str] = (), token_ids: str | None = None) -> RunResult:
    """Run one batch; raises UsageError (exit 2) for bad configuration before writing anything.

    `lock`: OUT's lock, taken here once the configuration is checked (the caller may hold it
    longer, for the steps after the commit); by default one held for this call only.
    `probes`: globs of probe records (SPEC §14), settled with the batch.
    `token_ids`: a consumer -> Counter NFT id file (settlement.token_ids): `bad_token_id`."""
    tariff = load_tariff(tariff_path) if tariff_path else None
    if tariff is None:
        raise UsageError("--tariff is required: a YAML or JSON tariff file")
    if output is None:
        raise UsageError("--output is required: the output directory")
    mapping = load_token_ids(token_ids) if token_ids else None
    check_chain_id(chain_id)
    check_shards(shards)
    registry = _registry(registry)
    out = check_output_path(Path(output))
    pipeline_options(list(beam_args))
    paths = expand_inputs(inputs)
    for path in paths:
        check_readable(path)
    probe_paths = expand_inputs(list(probes)) if probes else []
    for path in probe_paths:
        check_readable(path)
    owned = lock is None
    lock = lock or OutputLock(out, "batch")
    lock.acquire()
    try:
        return _settle_locked(out, paths, tariff, chain_id, registry, beam_args, shards, probe_paths, mapping)
    finally:
        if owned:
            lock.release()


def _settle_locked(out: Path, paths: list[str], tariff: Tariff, chain_id: int, registry: str,
                   beam_args, shards: int, probe_paths: list[str] = (),
                   token_ids: TokenIds | None = None) -> RunResult:
    store = LedgerStore(out)
    head = store.head()
    check_continuation(head, tariff.epoch_seconds, chain_id, registry, str(store.root))
    store.verify(head)
    store.discard_unfinished(head)
    store.discard_temp_files()
    clear_staging(out)
    interrupted = interrupted_after_commit(out, head, paths)
    if interrupted is not None:  # killed after its commit point: finish it, settle nothing again
        return finish_interrupted(out, interrupted, head)
    staging = layout.run_staging(out, new_run_id())
    staging.mkdir(parents=True)
    batch = (head.batch if head else 0) + 1
    state = LedgerState(batch=batch, settled_files=store.settled_event_files(head),
                        quantities=store.settled_quantities(head), cumulative=store.cumulative(head))
    quiet_runner_errors()
    with beam.Pipeline(options=pipeline_options(list(beam_args))) as p:
        build_pipeline(p, paths, tariff, state, chain_id, registry, out, shards, staging, token_ids)
    if probe_paths and (staging / "batch.json").exists():  # probes ride on a batch
        settle_probes(out, probe_paths, tariff.epoch_seconds, batch - 1, batch, staging)
    return commit_run(out, paths, tariff, head, batch, chain_id, registry, store, staging,
                      token_ids_hash=token_ids.hash if token_ids else None)


def run(argv: list[str] | None = None) -> RunResult:
    """Entry point for tests and the CLI: meterroot's flags plus any Beam options."""
    options = PipelineOptions(argv if argv is not None else sys.argv[1:])
    mine = options.view_as(BatchOptions)
    known = {"--input", "--tariff", "--output", "--chain-id", "--registry", "--shards", "--probes", "--token-ids"}
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
                  probes=mine.probes, token_ids=mine.token_ids)
