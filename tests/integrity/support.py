"""Running `meterroot` as an operator would, for the integrity tests: real processes, real files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.support.events import CONSUMER, CONSUMER_2, PROVIDER_A, PROVIDER_B, REGISTRY, T0, event, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def command(*args) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *map(str, args)]


def meterroot(*args, env=None, check=None, timeout=300):
    result = subprocess.run(command(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def batch_args(inputs, tariff, out, *extra, validate=False) -> list:
    args = ["batch", "--tariff", tariff, "--output", out, "--chain-id", 31337, "--registry", REGISTRY,
            *([] if validate else ["--no-validate"]), *extra]
    for i in inputs:
        args += ["--input", i]
    return args


def batch(inputs, tariff, out, *extra, check=0, env=None, validate=False):
    return meterroot(*batch_args(inputs, tariff, out, *extra, validate=validate), check=check, env=env)


def usage_file(path: Path, prefix: str, n: int, quantity: int = 7) -> Path:
    """`n` distinct events (ids `prefix-i`) over two providers, two consumers, two epochs, and one
    bad record (quarantined) so each file also exercises the quarantine."""
    records = [event(f"{prefix}-{i}", provider=(PROVIDER_A, PROVIDER_B)[i % 2],
                     consumer=(CONSUMER, CONSUMER_2)[i % 3 == 0], quantity=quantity + i % 5,
                     timestamp=T0 + (i % 2) * 3_600_000 + i) for i in range(n)]
    return write_jsonl(path, records + [event(f"{prefix}-bad", quantity=0)])


def read_json(path):
    return json.loads(Path(path).read_text())


def head(out: Path) -> dict:
    return read_json(Path(out) / "ledger" / "HEAD.json")


def paid_total(out: Path) -> int:
    """Σ amount_wei of every committed settlement line."""
    total = 0
    for b in range(1, head(out)["batch"] + 1):
        lines = pq.read_table(Path(out) / "settlement_lines" / f"batch={b}" / "part-0.parquet")
        total += sum(int(x) for x in lines.column("amount_wei").to_pylist())
    return total


def settled_event_ids(out: Path) -> list[str]:
    ids = []
    for b in range(1, head(out)["batch"] + 1):
        for part in sorted((Path(out) / "events" / f"batch={b}").glob("*.parquet")):
            ids += pq.read_table(part, columns=["event_id"]).column("event_id").to_pylist()
    return ids


BAD_RECORDS = ({"quantity": 0}, {"quantity": -3}, {"timestamp": "yesterday"}, {"consumer": "0xnot-an-address"},
               {"unit": ""})


def seeded_events(rng, prefix: str, n: int) -> list[dict]:
    """`n` distinct events drawn from `rng`: providers, consumers, units, quantities and times
    (over three epochs) vary, so each trial prices other leaves and tiers."""
    return [event(f"{prefix}-{i}", provider=rng.choice((PROVIDER_A, PROVIDER_B)),
                  consumer=rng.choice((CONSUMER, CONSUMER_2)), unit=rng.choice(("request", "request", "byte")),
                  quantity=rng.randint(1, 400), timestamp=T0 + rng.randrange(3 * 3_600_000))
            for i in range(n)]


def seeded_usage_file(path: Path, rng, events: list[dict], bad: int = 1) -> Path:
    """`events` in a shuffled order, with `bad` seeded invalid records (quarantined)."""
    records = list(events) + [event(f"{path.stem}-bad-{k}", **rng.choice(BAD_RECORDS)) for k in range(bad)]
    rng.shuffle(records)
    return write_jsonl(path, records)


def tree_bytes(out: Path, skip=("quality/", "catalog.duckdb", ".meterroot.lock", "run.json")) -> dict[str, bytes]:
    """Every file of OUT by its relative path, but those that hold a time or a pid."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(Path(out).rglob("*"))
            if p.is_file() and not str(p.relative_to(out)).startswith(skip)}
