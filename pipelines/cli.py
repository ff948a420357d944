"""The `meterroot` command line: one subcommand per job, each registered by its own module.

Exit codes: 0 success, 2 bad usage or configuration, 1 anything else.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys

from settlement.errors import MeterrootError, UsageError

# Each module has `register(subparsers)`; its subcommands set `func(args) -> int`.
COMMAND_MODULES = (
    "pipelines.generate_cli",
    "pipelines.batch_cli",
    "pipelines.demo_cli",
    "pipelines.chain_cli",
    "pipelines.permits_cli",
    "pipelines.quality_cli",
    "pipelines.stream_cli",
    "pipelines.flink_cli",
    "pipelines.gateway_cli",
    "pipelines.probe_cli",
    "pipelines.serve_cli",
    "pipelines.oracle_cli",
)


def quiet_logging() -> None:
    """Beam and its optional GCP imports log warnings at import time that mean nothing for a
    local run; meterroot prints what matters itself. METERROOT_LOG=INFO shows them."""
    import os
    level = os.environ.get("METERROOT_LOG", "ERROR").upper()
    logging.basicConfig(level=level)
    for name in ("apache_beam", "PrismRunner"):  # Prism's job server logs at INFO by itself
        logging.getLogger(name).setLevel(level)


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks instead of returning them to the OS at once.

    The pipeline allocates and frees blocks of tens of MB per record block; by default each
    one is a fresh mmap, and touching it again costs page faults: measured, a third of the
    batch job's CPU time went to the kernel. Peak memory is unchanged (it is still bounded by
    the largest blocks in flight); freed memory is reused instead of re-faulted."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    mallopt(m_mmap_threshold, 32 << 20)   # glibc's largest allowed mmap threshold on 64-bit
    mallopt(m_trim_threshold, 1 << 30)
    # glibc gives each thread that allocates its own arena (up to 8 per core), each keeping its
    # freed blocks: with the runner's and the block pools' threads, copies of the kept memory.
    # Two arenas for two cores (measured at 2M wide events: peak RSS 2,394 -> 2,197 MiB).
    mallopt(m_arena_max, 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterroot",
        description="Turn node usage events into Merkle-rooted settlement batches.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command is not part of this build
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_logging()
    keep_freed_memory()
    parser = build_parser()
    # Everything imported so far (Beam, pandas, protobuf: millions of objects) lives as long as
    # the process: out of the cyclic collector's sight, it is neither walked by every full
    # collection during the run nor by the last one at exit (measured: 0.4 s at exit alone).
    gc.freeze()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_beam_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"meterroot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MeterrootError as exc:
        print(f"meterroot {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"meterroot {args.command}: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
