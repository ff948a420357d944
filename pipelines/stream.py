"""The streaming job (SPEC §9): usage files as they arrive -> one settlement batch per epoch.

Thin by design, like the batch job: check the configuration before anything is read, wire the
feed (transforms.watch_source) -> epoch panes -> the one ledger writer (transforms.stream_batches),
run it on a portable runner, and follow the ledger from the driver: each new batch is printed,
validated and, with --commit, committed on chain, in order.

Runners: Prism (Beam's portable runner, `make prism`) is the default and runs the job here; any
other Beam runner by its options. Flink runs the same settlement as its own PyFlink job
(`--engine flink`, pipelines/flink_job.py), not through Beam.
"""
from __future__ import annotations

import json
import shutil
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.batch import check_readable, expand_inputs
from pipelines.flink_runner import find_prism_binary, prism_pipeline_args
from settlement.addresses import AddressError, normalize_address
from settlement.errors import InvariantBroken, MeterrootError, UsageError
from settlement.ledger import check_continuation
from settlement.tariff import Tariff, load_tariff
from settlement.token_ids import load_token_ids
from sinks.batch_outputs import staging_dir
from sinks.ledger_store import LedgerStore
from transforms.stream_batches import RUN_FILE, LedgerTarget, StreamBatches, StreamTally, write_run
from transforms.watch_source import ReadUsageStream, UsageFeed
from transforms.windowing import EpochWindowing


@dataclass(frozen=True)
class StreamConfig:
    """A checked streaming configuration: everything the job needs before it starts."""

    feed: UsageFeed
    """Where files come from."""
    target: LedgerTarget
    """Output directory, tariff, chain id and registry."""
    windowing: EpochWindowing
    """Epoch length and allowed lateness."""
    out_of_orderness_seconds: int
    """The watermark trails the latest event time seen by this much."""
    settle_seconds: float
    """Pause after a watermark step that fires panes, so they fire before more data comes."""


@dataclass
class StreamResult:
    run: dict
    """What OUT/run.json holds at the end of the stream."""
    batches: list[int]
    """Batches this run appended."""
    follow_errors: list[str] = field(default_factory=list)
    """Validation or commit failures of the driver's follower (the batches are on disk)."""


# --------------------------------------------------------------------------- configuration

def _seconds(value, flag: str, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if value is None or value < 0:
        raise UsageError(f"{flag} must be a number of seconds >= 0, got {value}")
    return value


def check_config(*, tariff: str | None, output: str | None, chain_id: int | None, registry: str | None,
                 watch: str | None = None, replay: str | None = None,
                 allowed_lateness_seconds: int | None = None, max_out_of_orderness_seconds: int = 0,
                 stop_after_idle_seconds: float | None = None, poll_seconds: float = 1.0,
                 settle_seconds: float = 0.3, probes: list[str] | None = None,
                 token_ids: str | None = None) -> StreamConfig:
    """Everything wrong with the configuration raises UsageError here, before any data is read."""
    if not tariff:
        raise UsageError("--tariff is required: a YAML or JSON tariff file")
    loaded: Tariff = load_tariff(tariff)
    mapping = load_token_ids(token_ids) if token_ids else None
    if not output:
        raise UsageError("--output is required: the output directory")
    if Path(output).exists() and not Path(output).is_dir():
        raise UsageError(f"--output {output} is a file; pass a directory")
    if chain_id is None or chain_id <= 0:
        raise UsageError(f"--chain-id must be a positive chain id, got {chain_id}")
    if not registry:
        raise UsageError("--registry is required: the settlement registry address the leaves name")
    try:
        registry = normalize_address(registry)
    except AddressError as exc:
        raise UsageError(f"--registry {exc}") from None
    if (watch is None) == (replay is None):
        raise UsageError("pass exactly one of --watch DIR (files dropped into a folder) or "
                         "--replay GLOB (existing files, replayed in order)")
    lateness = loaded.epoch_seconds if allowed_lateness_seconds is None else allowed_lateness_seconds
    _seconds(lateness, "--allowed-lateness-seconds")
    _seconds(max_out_of_orderness_seconds, "--max-out-of-orderness-seconds")
    idle = _seconds(stop_after_idle_seconds, "--stop-after-idle", allow_none=True)
    if poll_seconds <= 0:
        raise UsageError(f"--poll-seconds must be > 0, got {poll_seconds}")
    if watch is not None:
        if "://" not in watch and not Path(watch).is_dir():
            raise UsageError(f"--watch {watch} is not a folder; create it, then drop usage files into it")
        if Path(watch).resolve() == (Path(output) / "late").resolve():
            raise UsageError("--watch must not be OUT/late: settle late data with `meterroot batch`")
        feed = UsageFeed(folder=watch, poll_seconds=poll_seconds, stop_after_idle_seconds=idle)
    else:
        paths = expand_inputs([replay])
        for path in paths:
            check_readable(path)
        feed = UsageFeed(paths=tuple(paths), poll_seconds=poll_seconds)
    target = LedgerTarget(out=str(Path(output).resolve()), tariff=loaded, chain_id=chain_id,
                          registry=registry, run_id=uuid.uuid4().hex, probes=tuple(probes or ()),
                          token_ids=mapping)
    return StreamConfig(feed=feed, target=target,
                        windowing=EpochWindowing(loaded.epoch_seconds, int(lateness)),
                        out_of_orderness_seconds=int(max_out_of_orderness_seconds),
                        settle_seconds=settle_seconds)


def _has_option(args: list[str], name: str) -> bool:
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in args)


def runner_args(beam_args: list[str]) -> list[str]:
    """Beam options for a streaming run: Prism from the cache unless another runner is named.

    A missing Prism binary is a UsageError naming its make target."""
    args = list(beam_args)
    runner = PipelineOptions(args).view_as(StandardOptions).runner
    name = (runner or "PrismRunner").rsplit(".", 1)[-1]
    endpoint = _has_option(args, "job_endpoint")
    if name == "PrismRunner":
        extra = ["--runner=PrismRunner", "--streaming"]
        if not endpoint and not _has_option(args, "prism_location"):
            extra = prism_pipeline_args(find_prism_binary())
        elif not _has_option(args, "environment_type"):
            extra.append("--environment_type=LOOPBACK")
        return extra + args
    if name == "FlinkRunner":
        raise UsageError("Beam's FlinkRunner needs a Beam Flink job server jar this project does "
                         "not fetch: run on Flink with `meterroot stream --engine flink`")
    return args + ["--streaming"]


def prepare_output(config: StreamConfig) -> None:
    """Refuse a ledger this configuration cannot continue; clear what a killed run left."""
    target = config.target
    out = Path(target.out)
    store = LedgerStore(out)
    head = store.head()
    check_continuation(head, target.tariff.epoch_seconds, target.chain_id, target.registry,
                       str(store.root))
    store.verify(head)
    out.mkdir(parents=True, exist_ok=True)
    store.discard_unfinished(head)
    store.discard_temp_files()
    shutil.rmtree(staging_dir(out), ignore_errors=True)


def build_pipeline(p, config: StreamConfig):
    read = p | "ReadUsageStream" >> ReadUsageStream(
        config.feed, config.target.tariff, config.windowing, config.out_of_orderness_seconds,
        config.settle_seconds, config.target.token_ids)
    return read | "StreamBatches" >> StreamBatches(config.target, config.windowing)


# ----------------------------------------------------------------------------- the follower

class BatchFollower(threading.Thread):
    """Follows OUT/ledger/HEAD.json from the driver; for each new batch, in order: print it,
    validate it (the data quality suites, like `meterroot batch`) and, with a registry, commit
    every batch not yet on chain. Failures are kept and reported at the end; the batches stay
    on disk for `meterroot validate` / `meterroot chain commit`."""

    def __init__(self, out: Path, *, validate: bool, registry=None, poll_seconds: float = 0.5,
                 say=print):
        super().__init__(name="meterroot-batch-follower", daemon=True)
        self.out = Path(out)
        self.validate = validate
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.say = say
        head = LedgerStore(self.out).head()
        self.seen = head.batch if head else 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.poll_seconds):
            self.follow()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.follow()

    def follow(self) -> None:
        try:
            head = LedgerStore(self.out).head()
        except MeterrootError as exc:
            self._fail(str(exc))
            return
        while head is not None and self.seen < head.batch and not self.errors:
            self.seen += 1
            self._announce(self.seen)
            self._check(self.seen)
        if self.registry is not None and self.seen and not self.errors:
            self._commit()

    def _announce(self, batch: int) -> None:
        manifest = json.loads((self.out / "batches" / str(batch) / "manifest.json").read_text())
        self.say(f"batch {batch}: epochs {manifest['epochs']}, {manifest['counts']['accepted']} events "
                 f"accepted, total {manifest['total']} wei, {manifest['leaf_count']} leaves, "
                 f"root {manifest['root']}")

    def _check(self, batch: int) -> None:
        from pipelines.batch_cli import post_batch

        try:
            if post_batch(str(self.out), batch, validate=self.validate) != 0:
                self._fail(f"batch {batch} failed validation; see {self.out}/quality/")
        except MeterrootError as exc:
            self._fail(f"batch {batch}: {exc}")

    def _writer_ahead(self) -> bool:
        """Whether the writer has files of a batch not yet followed (committed to the ledger or
        not): `commit_output` commits every batch on disk, so it waits for the next round."""
        from sinks.chain.batch_files import batch_numbers

        return max(batch_numbers(self.out), default=0) > self.seen

    def _commit(self) -> None:
        from sinks.chain.settle import COMMITTED, commit_output

        if self._writer_ahead():
            return
        try:
            for outcome in commit_output(self.out, self.registry):
                if outcome.action == COMMITTED:
                    self.say(f"batch {outcome.batch}: committed root {outcome.root} in tx "
                             f"{outcome.tx_hash}")
        except MeterrootError as exc:
            if self._writer_ahead():
                return  # the writer started a batch meanwhile; the next round commits it
            self._fail(f"commit: {exc}; the batches are on disk: commit them later with "
                       f"`meterroot chain commit --output {self.out} --deployment FILE`")

    def _fail(self, message: str) -> None:
        self.errors.append(message)
        print(f"meterroot stream: {message}", file=sys.stderr)


def connect_deployment(deployment_file: str, config: StreamConfig, rpc_url: str | None = None):
    """The registry to commit to; refused when it is not the one the leaves name."""
    from sinks.chain.deployment import Deployment
    from sinks.chain.local import connect_registry

    deployment = Deployment.read(Path(deployment_file))
    target = config.target
    if deployment.chain_id != target.chain_id or deployment.registry.lower() != target.registry.lower():
        raise UsageError(
            f"--deployment {deployment_file} is registry {deployment.registry} on chain "
            f"{deployment.chain_id}, but the leaves name registry {target.registry} on chain "
            f"{target.chain_id}: pass the deployment's --chain-id and --registry")
    return connect_registry(deployment, rpc_url=rpc_url)


# --------------------------------------------------------------------------------- running

def finish_run(config: StreamConfig) -> dict:
    """The run's run.json; written here when the writer never saw a file (nothing to settle)."""
    path = Path(config.target.out) / RUN_FILE
    run = json.loads(path.read_text()) if path.exists() else {}
    if run.get("run_id") != config.target.run_id:
        write_run(config.target, StreamTally(), finished=True)
        run = json.loads(path.read_text())
    if not run.get("finished"):
        raise InvariantBroken(f"the stream ended but its writer never finished {path}: {run.get('message')}")
    if run["pending"]:
        raise InvariantBroken(f"the stream ended with {run['pending']} records read but never settled, "
                              f"quarantined or sent to late/: {path}")
    return run


def stream(config: StreamConfig, beam_args: list[str] = (), *, validate: bool = True,
           registry=None, say=print) -> StreamResult:
    """Run the streaming job until its feed ends (replay done, or idle for --stop-after-idle);
    a watched folder without --stop-after-idle runs until interrupted."""
    options = PipelineOptions(runner_args(list(beam_args)))
    prepare_output(config)
    follower = BatchFollower(Path(config.target.out), validate=validate, registry=registry, say=say)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config)
    follower.start()
    result = pipeline.run()
    try:
        result.wait_until_finish()
    except KeyboardInterrupt:
        result.cancel()
        raise
    finally:
        follower.stop()
    run = finish_run(config)
    return StreamResult(run=run, batches=list(run["batches"]), follow_errors=list(follower.errors))


# ------------------------------------------------------------------------- run(argv) for tests

def run(argv: list[str] | None = None) -> StreamResult:
    """Entry point for tests: `meterroot stream`'s flags plus any Beam options; the follower
    prints and checks nothing (no validation, no commit: the CLI adds those)."""
    import argparse

    from pipelines.stream_options import add_arguments

    parser = argparse.ArgumentParser(prog="meterroot stream")
    add_arguments(parser)
    args, beam_args = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    config = check_config(
        tariff=args.tariff, output=args.output, chain_id=args.chain_id, registry=args.registry,
        watch=args.watch, replay=args.replay, allowed_lateness_seconds=args.allowed_lateness_seconds,
        max_out_of_orderness_seconds=args.max_out_of_orderness_seconds,
        stop_after_idle_seconds=args.stop_after_idle, poll_seconds=args.poll_seconds,
        token_ids=args.token_ids)
    return stream(config, beam_args, validate=False, say=lambda line: None)
