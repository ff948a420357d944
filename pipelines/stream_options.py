"""The flags of `meterroot stream`, shared by the CLI (pipelines/stream_cli.py) and the test entry
point `pipelines.stream.run`: argparse only, so neither imports the other."""
from __future__ import annotations

import argparse

ENGINES = ("beam", "flink")


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    feed = p.add_mutually_exclusive_group(required=True)
    feed.add_argument("--watch", metavar="DIR",
                      help="folder to watch: each complete usage file dropped into it is read once "
                           "(write elsewhere or to a .tmp name, then rename into DIR)")
    feed.add_argument("--replay", metavar="GLOB",
                      help="replay existing usage files in path order, then end (backfills, tests)")
    p.add_argument("--probes", action="append", default=[], metavar="GLOB",
                   help="probe records (SPEC §14): read at every cut, what is new settles with it; repeatable")
    p.add_argument("--tariff", required=True, metavar="FILE", help="tariff (YAML or JSON)")
    p.add_argument("--token-ids", metavar="FILE",
                   help="consumer -> Counter NFT id mapping (JSON or CSV, from `meterroot chain token-ids`): "
                        "an event naming another token than its consumer's is quarantined bad_token_id")
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
    p.add_argument("--engine", choices=ENGINES, default="beam",
                   help="beam: the Beam stream on Prism (or --runner …); flink: the PyFlink job "
                        "(.venv-flink), embedded mini-cluster unless --flink-master")
    p.add_argument("--flink-master", metavar="HOST:PORT",
                   help="with --engine flink: submit to this Flink cluster (its REST port), e.g. "
                        "one `meterroot flink up` started")
    p.add_argument("--checkpoint-interval-seconds", type=float, default=10.0, metavar="S",
                   help="with --engine flink: checkpoint the job's state this often (default 10)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="with --engine flink: checkpoint storage (default OUT/.flink-checkpoints; "
                        "on a real cluster, storage every TaskManager reaches)")
    p.add_argument("--parallelism", type=int, default=2, metavar="N",
                   help="with --engine flink: parallelism of the windows (default 2)")
    p.add_argument("--settle-seconds", type=_seconds, default=None, metavar="S",
                   help="pause after a file that closes an epoch, so its panes fire before more "
                        "data comes (default 0.3 on beam, 0.5 on flink; more on a loaded machine)")
