"""`meterroot stream --engine flink`: the PyFlink job (pipelines/flink_job.py) run from the CLI.

The job runs with the Flink environment's interpreter (.venv-flink: PyFlink pins an older Beam
and pyarrow than this environment), embedded or submitted to --flink-master. The driver here does
what it does for the Beam stream: it follows the ledger while the job runs, prints and validates
each new batch and, with --commit, commits it on chain.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.flink_runner import run_flink_job
from settlement.errors import MeterrootError, UsageError
from sinks import layout


def job_args(args) -> list[str]:
    """pipelines/flink_job.py's flags from `meterroot stream`'s."""
    if args.watch:
        raise UsageError("--engine flink replays files (--replay GLOB); a watched folder runs on "
                         "--engine beam for now")
    if args.beam_args:
        raise UsageError(f"--engine flink takes no Beam options: {' '.join(args.beam_args)}")
    out = [
        "--replay", args.replay, "--tariff", args.tariff, "--output", args.output,
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
    if getattr(args, "token_ids", None):
        out += ["--token-ids", str(Path(args.token_ids).resolve())]
    return [str(Path(a).resolve()) if a in (args.tariff, args.output) else a for a in out]


def run_flink_stream(args) -> int:
    from pipelines.stream import BatchFollower

    if args.commit and not args.deployment:
        raise UsageError("--commit needs --deployment FILE (written by `meterroot chain deploy`)")
    command_args = job_args(args)
    registry = None
    if args.commit:
        from pipelines.stream import check_config, connect_deployment

        config = check_config(tariff=args.tariff, output=args.output, chain_id=args.chain_id,
                              registry=args.registry, replay=args.replay)
        registry = connect_deployment(args.deployment, config, args.rpc_url)
    where = args.flink_master or "an embedded mini-cluster"
    print(f"meterroot stream --engine flink: replaying {args.replay} on {where}", flush=True)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    follower = BatchFollower(Path(args.output), validate=not args.no_validate, registry=registry,
                             say=lambda line: print(line, flush=True))
    follower.start()
    try:
        code = run_flink_job(command_args, args.flink_master)
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
