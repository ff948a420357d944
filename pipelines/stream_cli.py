"""`meterroot stream`: settle usage files as they arrive, one batch per epoch (SPEC §9)."""
from __future__ import annotations

import argparse

from pipelines.stream_options import add_arguments
from settlement.errors import UsageError
from sinks.lock import holds_output_lock


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stream", help="settle usage files as they arrive, one batch per epoch",
        description="Read usage files from a watched folder (or replay existing ones), window them "
                    "by epoch in event time, and append one settlement batch to OUTPUT's ledger each "
                    "time an epoch closes (the watermark passes its end); late data within the allowed "
                    "lateness rides on the next batch, later data goes to OUTPUT/late/ for `meterroot "
                    "batch`. --engine beam (default) runs on Beam's Prism runner (`make prism`) unless --runner "
                    "names another (other options go to Beam); --engine flink runs the PyFlink job, "
                    "in an embedded mini-cluster or on --flink-master HOST:PORT.")
    add_arguments(p)
    p.set_defaults(func=holds_output_lock("stream", create=True)(run_stream), accepts_beam_options=True)


FLINK_ONLY = ("flink_master", "checkpoint_dir")


def run_stream(args) -> int:
    if args.engine == "flink":
        from pipelines.stream_flink import run_flink_stream

        return run_flink_stream(args)
    for name in FLINK_ONLY:
        if getattr(args, name):
            raise UsageError(f"--{name.replace('_', '-')} needs --engine flink")
    from pipelines.stream import check_config, connect_deployment, runner_args, stream

    if args.commit and not args.deployment:
        raise UsageError("--commit needs --deployment FILE (written by `meterroot chain deploy`)")
    config = check_config(
        tariff=args.tariff, output=args.output, chain_id=args.chain_id, registry=args.registry,
        watch=args.watch, replay=args.replay, allowed_lateness_seconds=args.allowed_lateness_seconds,
        max_out_of_orderness_seconds=args.max_out_of_orderness_seconds,
        stop_after_idle_seconds=args.stop_after_idle, poll_seconds=args.poll_seconds, probes=args.probes,
        token_ids=args.token_ids,
        **({} if args.settle_seconds is None else {"settle_seconds": args.settle_seconds}))
    beam_args = runner_args(args.beam_args)  # a missing Prism or Flink jar is refused up front
    registry = connect_deployment(args.deployment, config, args.rpc_url) if args.commit else None
    source = f"watching {args.watch}" if args.watch else f"replaying {len(config.feed.paths)} files"
    print(f"meterroot stream: {source}; epochs of {config.windowing.epoch_seconds} s, allowed lateness "
          f"{config.windowing.allowed_lateness_seconds} s, out-of-orderness "
          f"{config.out_of_orderness_seconds} s", flush=True)
    result = stream(config, beam_args, validate=not args.no_validate, registry=registry,
                    say=lambda line: print(line, flush=True))
    run = result.run
    print(f"read {run['read']}, accepted {run['accepted']}, duplicates {run['duplicates']}, "
          f"quarantined {run['quarantined']}, too late {run['too_late']}"
          + (f" (in {args.output}/late/: settle with `meterroot batch --input "
             f"'{args.output}/late/*.jsonl'`)" if run["too_late"] else ""))
    for entry in run["unreadable"]:
        print(f"unreadable file {entry['path']}: {entry['error']}")
    print(run["message"])
    return 1 if result.follow_errors or run["unreadable"] else 0
