"""`meterroot stream`: settle usage files as they arrive, one batch per epoch (SPEC §9)."""
from __future__ import annotations

import argparse

from settlement.errors import UsageError
from sinks.lock import holds_output_lock


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _whole_seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(text)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stream", help="settle usage files as they arrive, one batch per epoch",
        description="Read usage files from a watched folder (or replay existing ones), window them "
                    "by epoch in event time, and append one settlement batch to OUTPUT's ledger each "
                    "time an epoch closes (the watermark passes its end); late data within the allowed "
                    "lateness rides on the next batch, later data goes to OUTPUT/late/ for `meterroot "
                    "batch`. Runs on Beam's Prism runner (`make prism`) unless --runner names another; "
                    "--runner FlinkRunner uses the Flink job server of `make flink`. Other options go "
                    "to Beam.")
    add_arguments(p)
    p.set_defaults(func=holds_output_lock("stream")(run_stream), accepts_beam_options=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    feed = p.add_mutually_exclusive_group(required=True)
    feed.add_argument("--watch", metavar="DIR",
                      help="folder to watch: each complete usage file dropped into it is read once "
                           "(write elsewhere or to a .tmp name, then rename into DIR)")
    p.add_argument("--probes", action="append", default=[], metavar="GLOB",
                   help="probe records (SPEC §14): read at every cut, what is new settles with it; repeatable")
    feed.add_argument("--replay", metavar="GLOB",
                      help="replay existing usage files in path order, then end (backfills, tests)")
    p.add_argument("--tariff", required=True, metavar="FILE", help="tariff (YAML or JSON)")
    p.add_argument("--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--chain-id", dest="chain_id", type=int, required=True, metavar="N")
    p.add_argument("--registry", required=True, metavar="ADDR")
    p.add_argument("--allowed-lateness-seconds", type=_whole_seconds, metavar="S",
                   help="an epoch takes late data this long after its end (default: one epoch)")
    p.add_argument("--max-out-of-orderness-seconds", type=_whole_seconds, default=0, metavar="S",
                   help="the watermark trails the latest event time seen by this much (default 0)")
    p.add_argument("--stop-after-idle", type=_seconds, metavar="SECONDS",
                   help="with --watch: end cleanly after no new file for this long (default: run "
                        "until interrupted); a replay always ends after its last file")
    p.add_argument("--poll-seconds", type=float, default=1.0, metavar="S",
                   help="how often the watched folder is listed (default 1)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the data quality suites on each new batch")
    p.add_argument("--commit", action="store_true",
                   help="commit each new batch on chain as it is written (needs --deployment)")
    p.add_argument("--deployment", metavar="FILE", help="deployment file written by `chain deploy`")
    p.add_argument("--rpc-url", metavar="URL",
                   help="JSON-RPC endpoint for --commit (default: the deployment's node); the key "
                        "comes from METERROOT_PRIVATE_KEY (anvil's dev key on chain 31337)")


def run_stream(args) -> int:
    from pipelines.stream import check_config, connect_deployment, runner_args, stream

    if args.commit and not args.deployment:
        raise UsageError("--commit needs --deployment FILE (written by `meterroot chain deploy`)")
    config = check_config(
        tariff=args.tariff, output=args.output, chain_id=args.chain_id, registry=args.registry,
        watch=args.watch, replay=args.replay, allowed_lateness_seconds=args.allowed_lateness_seconds,
        max_out_of_orderness_seconds=args.max_out_of_orderness_seconds,
        stop_after_idle_seconds=args.stop_after_idle, poll_seconds=args.poll_seconds, probes=args.probes)
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
