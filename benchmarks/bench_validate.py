"""`meterroot validate` and `meterroot reconcile` of one batch, timed beside nothing else.

    .venv/bin/python benchmarks/bench_validate.py --events 2000000 --shape wide --format parquet

Settles the benchmark's input once (`meterroot batch --no-validate`, kept under
.cache/bench/out-...), then times `meterroot validate --all` and `meterroot reconcile` of it,
each in its own process, and prints wall time and peak RSS of each (exit 1 when either fails)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_batch import REGISTRY, TARIFF, events_file, warm  # noqa: E402


def timed(cmd: list[str]) -> tuple[float, int, int]:
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--shape", choices=("default", "wide"), default="wide")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="parquet")
    args = parser.parse_args()
    path = events_file(args.events, args.seed, args.cache, args.shape, args.format)
    out = args.cache / f"out-{path.stem}-{args.format}"
    cli = [sys.executable, "-m", "pipelines.cli"]
    if not (out / "batches" / "1" / "manifest.json").exists():
        warm(path)
        seconds, code, peak = timed(cli + ["batch", "--input", str(path), "--tariff", str(TARIFF),
                                           "--output", str(out), "--chain-id", "31337",
                                           "--registry", REGISTRY, "--no-validate"])
        if code:
            print(f"meterroot batch failed (exit {code})", file=sys.stderr)
            return 1
        print(f"batch (once, to have an output): {seconds:.1f} s, peak RSS {peak // 1024:,} MiB")
    status = 0
    for name, extra in (("validate", ["--all"]), ("reconcile", [])):
        seconds, code, peak = timed(cli + [name, "--output", str(out), *extra])
        print(f"{name}: {seconds:.1f} s, peak RSS {peak // 1024:,} MiB, exit {code}")
        status |= code
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
