"""`meterroot flink up|down`: a standalone Flink cluster on loopback (SPEC §11)."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "flink", help="start or stop a standalone Flink cluster on loopback",
        description="Start (up) or stop (down) a standalone Flink cluster — a JobManager and "
                    "TaskManagers, each its own process, bound to 127.0.0.1 — from the Flink "
                    "distribution inside the PyFlink package of .venv-flink. Its configuration, "
                    "logs and pid files live under --dir. Submit to it with `meterroot stream "
                    "--engine flink --flink-master 127.0.0.1:PORT`.")
    verbs = p.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("up", help="start the cluster; returns once every TaskManager registered")
    start.add_argument("--dir", required=True, metavar="D", help="folder for conf/, log/, pid/")
    start.add_argument("--port", type=int, metavar="P",
                       help="the REST port --flink-master names (default: a free one)")
    start.add_argument("--taskmanagers", type=int, default=1, metavar="N")
    start.add_argument("--slots", type=int, default=2, metavar="S", help="slots per TaskManager")
    start.set_defaults(func=run_up)
    stop = verbs.add_parser("down", help="stop the cluster started from --dir")
    stop.add_argument("--dir", required=True, metavar="D")
    stop.set_defaults(func=run_down)


def run_up(args) -> int:
    from pipelines.flink_cluster import up

    cluster = up(Path(args.dir), args.port, args.taskmanagers, args.slots)
    print(f"Flink cluster up: JobManager REST on {cluster.master}, {cluster.taskmanagers} "
          f"TaskManagers x {cluster.slots} slots; logs in {cluster.folder / 'log'}\n"
          f"submit with: meterroot stream --engine flink --flink-master {cluster.master} …",
          flush=True)
    return 0


def run_down(args) -> int:
    from pipelines.flink_cluster import down

    stopped = down(Path(args.dir))
    print(f"Flink cluster in {args.dir} down ({stopped} processes stopped)")
    return 0
