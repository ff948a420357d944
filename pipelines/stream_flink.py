"""`meterroot stream --engine flink`: the PyFlink job (pipelines/flink_job.py) run from the CLI.

The job runs with the Flink environment's interpreter (.venv-flink: PyFlink pins an older Beam
and pyarrow than this environment), embedded or submitted to --flink-master. The driver here does
what it does for the Beam stream: it follows the ledger while the job runs, prints and validates
each new batch and, with --commit, commits it on chain.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from pipelines.flink_runner import run_flink_job
from settlement.errors import MeterrootError, UsageError
from sinks import layout


def job_args(args, run_id: str) -> list[str]:
    """pipelines/flink_job.py's flags from `meterroot stream`'s."""
    if args.beam_args:
        raise UsageError(f"--engine flink takes no Beam options: {' '.join(args.beam_args)}")
    feed = ["--watch", args.watch] if args.watch else ["--replay", args.replay]
    out = [
        *feed, "--tariff", args.tariff, "--output", args.output, "--run-id", run_id,
        "--chain-id", str(args.chain_id), "--registry", args.registry,
        "--max-out-of-orderness-seconds", str(args.max_out_of_orderness_seconds),
        "--checkpoint-interval-seconds", str(args.checkpoint_interval_seconds),
        "--parallelism", str(args.parallelism),
    ]
    if args.allowed_lateness_seconds is not None:
        out += ["--allowed-lateness-seconds", str(args.allowed_lateness_seconds)]
    if args.settle_seconds is not None:
        out += ["--settle-seconds", str(args.settle_seconds)]
    if args.checkpoint_dir:
        out += ["--checkpoint-dir", str(Path(args.checkpoint_dir).resolve())]
    if args.watch:
        out += ["--poll-seconds", str(args.poll_seconds)]
        if args.stop_after_idle is not None:
            out += ["--stop-after-idle", str(args.stop_after_idle)]
    for pattern in args.probes:
        out += ["--probes", pattern]
    if getattr(args, "token_ids", None):
        out += ["--token-ids", str(Path(args.token_ids).resolve())]
    paths = (args.tariff, args.output, args.watch)
    return [str(Path(a).resolve()) if a and a in paths else a for a in out]


def run_flink_stream(args) -> int:
    from pipelines.stream import BatchFollower

    if args.commit and not args.deployment:
        raise UsageError("--commit needs --deployment FILE (written by `meterroot chain deploy`)")
    run_id = uuid.uuid4().hex
    command_args = job_args(args, run_id)
    registry = None
    if args.commit:
        from pipelines.stream import check_config, connect_deployment

        config = check_config(tariff=args.tariff, output=args.output, chain_id=args.chain_id,
                              registry=args.registry, replay=args.replay, watch=args.watch)
        registry = connect_deployment(args.deployment, config, args.rpc_url)
    where = args.flink_master or "an embedded mini-cluster"
    source = f"watching {args.watch}" if args.watch else f"replaying {args.replay}"
    print(f"meterroot stream --engine flink: {source} on {where}", flush=True)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    follower = BatchFollower(Path(args.output), validate=not args.no_validate, registry=registry,
                             say=lambda line: print(line, flush=True))
    follower.start()
    try:
        # Ctrl-C here asks the job to drain (what is read settles), as its idle end does
        code = run_flink_job(command_args, args.flink_master,
                             stop_file=layout.watch_stop_path(Path(args.output), run_id)
                             if args.watch else None)
    finally:
        follower.stop()
    if code != 0:
        return code
    run_file = layout.run_path(Path(args.output))
    try:
        run = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise MeterrootError(f"the Flink job ended without a readable {run_file}: {exc}") from None
    if not run.get("finished") or run.get("pending"):
        raise MeterrootError(f"the Flink job ended but {run_file} is not finished or has "
                             f"{run.get('pending')} records read but never settled: {run.get('message')}")
    print(f"read {run['read']}, accepted {run['accepted']}, duplicates {run['duplicates']}, "
          f"quarantined {run['quarantined']}, too late {run['too_late']}"
          + (f" (in {args.output}/late/: settle with `meterroot batch --input "
             f"'{args.output}/late/*.jsonl'`)" if run["too_late"] else ""))
    print(run["message"])
    return 1 if follower.errors else 0
