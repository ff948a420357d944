"""meterroot batch vs DuckDB SQL computing the same settlement lines, on the same file.

    .venv/bin/python benchmarks/bench_batch.py --events 2000000 [--shape wide] [--format parquet]

Prints meterroot's wall time and events/s, DuckDB's wall time, their ratio, peak memory of the
meterroot run, and checks both give the same lines and total wei (exit 1 when they differ).
`--shape wide` is the high-cardinality shape (nearly every event its own line, ~100k leaves).

Fair to both sides: the file is read once before every timed run (this machine's kernel
reclaims idle page cache, so whichever ran second would otherwise find it warm), and the two
runs alternate for --rounds rounds; the figures are each side's median (range in brackets)."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from settlement.tariff import load_tariff  # noqa: E402

TARIFF = REPO / "pipelines" / "defaults" / "tariff.yaml"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
JSON_COLUMNS = ("{event_id: 'VARCHAR', provider: 'VARCHAR', node_id: 'VARCHAR', consumer: 'VARCHAR', "
                "contract: 'VARCHAR', unit: 'VARCHAR', quantity: 'HUGEINT', timestamp: 'BIGINT', "
                "token_id: 'VARCHAR'}")
TARGETS = {("default", True): 3.5, ("default", False): 2.0, ("wide", True): 3.0, ("wide", False): 3.0}
"""Ratio targets by (shape, events <= 2M) (issue #14)."""


def events_file(n: int, seed: int, cache: Path, shape: str = "default", fmt: str = "jsonl") -> Path:
    tag = "" if shape == "default" else f"{shape}-"
    path = cache / f"events-{tag}{n}-{seed}.{fmt}"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "pipelines.cli", "generate", "--events", str(n),
                        "--output", str(path), "--seed", str(seed), "--shape", shape], check=True, cwd=REPO)
    return path


def warm(path: Path) -> None:
    """Read the file once so that the timed run finds it in the page cache."""
    with open(path, "rb") as handle:
        while handle.read(1 << 24):
            pass


def duckdb_lines(path: Path, threads: int) -> tuple[float, int, int]:
    tariff = load_tariff(TARIFF)
    rows = []
    for rule in tariff.prices:
        lo = 0
        for tier in rule.tiers:
            rows.append((rule.unit, rule.per, lo, tier.up_to, str(tier.price_wei)))
            lo = tier.up_to or lo
    tiers = pa.table({"unit": [r[0] for r in rows], "per": [r[1] for r in rows],
                      "lo": [r[2] for r in rows], "hi": [r[3] for r in rows],
                      "price_wei": pa.array([r[4] for r in rows]).cast(pa.decimal128(38, 0))})
    reader = (f"read_parquet('{path}')" if path.suffix == ".parquet" else
              f"read_json('{path}', format = 'newline_delimited', columns = {JSON_COLUMNS})")
    sql = (REPO / "benchmarks" / "duckdb_lines.sql").read_text().format(
        reader=reader, epoch_ms=tariff.epoch_seconds * 1000, fee_bps=tariff.protocol_fee_bps)
    con = duckdb.connect(config={"threads": threads})
    con.register("tiers", tiers)
    start = time.perf_counter()
    n_lines, total = con.sql(f"SELECT count(*), sum(amount_wei)::VARCHAR FROM ({sql})").fetchall()[0]
    return time.perf_counter() - start, n_lines, int(total)


def meterroot_run(path: Path, out: Path, extra: list[str]) -> tuple[float, int, dict]:
    cmd = [sys.executable, "-m", "pipelines.cli", "batch", "--input", str(path), "--tariff", str(TARIFF),
           "--output", str(out), "--chain-id", "31337", "--registry", REGISTRY, "--no-validate", *extra]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    # the run's own peak (RUSAGE_CHILDREN would report the largest child so far: the generator)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    peak_kb = usage.ru_maxrss
    import json
    manifest = json.loads((out / "batches" / "1" / "manifest.json").read_text())
    return elapsed, peak_kb, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--shape", choices=("default", "wide"), default="default")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    args, extra = parser.parse_known_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    path = events_file(args.events, args.seed, args.cache, args.shape, args.format)
    size_mb = path.stat().st_size / 1e6
    m_times, d_times = [], []
    for _ in range(args.rounds):
        out = Path(tempfile.mkdtemp(prefix="meterroot-bench-"))
        try:
            warm(path)
            m_time, peak_kb, manifest = meterroot_run(path, out, extra)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        warm(path)
        d_time, d_lines, d_total = duckdb_lines(path, threads=2)
        m_times.append(m_time)
        d_times.append(d_time)
    m_time, d_time = statistics.median(m_times), statistics.median(d_times)

    def spread(times):
        return f"[{min(times):.1f}-{max(times):.1f}]" if len(times) > 1 else ""

    print(f"input: {args.events:,} events, {args.shape} shape, {size_mb:,.0f} MB {args.format} ({path}); "
          f"median of {args.rounds} alternating runs")
    print(f"meterroot batch: {m_time:6.1f} s {spread(m_times)}  {args.events / m_time:10,.0f} events/s  "
          f"peak RSS {peak_kb / 1024:,.0f} MiB  lines {manifest['lines']:,}  leaves {manifest['leaf_count']:,}  "
          f"total {manifest['total']} wei")
    print(f"duckdb SQL:      {d_time:6.1f} s {spread(d_times)}  {args.events / d_time:10,.0f} events/s  "
          f"lines {d_lines:,}  total {d_total} wei")
    target = TARGETS[(args.shape, args.events <= 2_000_000)]
    print(f"ratio meterroot/duckdb: {m_time / d_time:.2f} (target <= {target})")
    if int(manifest["total"]) != d_total or manifest["lines"] != d_lines:
        print("MISMATCH: meterroot and DuckDB disagree on the settlement lines", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
