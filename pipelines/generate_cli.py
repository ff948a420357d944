"""`meterroot generate`: realistic synthetic usage for demos and benchmarks."""
from __future__ import annotations

from pathlib import Path

from settlement.errors import UsageError

# Kept here so that `meterroot --help` imports no numpy/Arrow: sinks.event_files.FORMATS and
# settlement.synthetic.SHAPES (tests hold them equal).
FORMATS = ("jsonl", "csv", "parquet")
SHAPES = ("default", "wide")


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="write synthetic usage events",
                              description="Many consumers (Zipf-skewed), a few providers and contracts, "
                                          "several units, log-normal quantities over one day; --shape wide: "
                                          "tens of thousands of consumers, many providers and dozens of "
                                          "contracts, nearly every event its own settlement line.")
    p.add_argument("--events", type=int, required=True, metavar="N")
    p.add_argument("--output", required=True, metavar="FILE")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="default: from the file extension, else jsonl")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--shape", choices=SHAPES, default="default",
                   help="default: few lines per many events; wide: nearly one line per event")
    p.set_defaults(func=run_generate)


def run_generate(args) -> int:
    from settlement.synthetic import synthetic_events
    from sinks.event_files import write_events
    if args.events < 1:
        raise UsageError(f"--events must be at least 1, got {args.events}")
    path = Path(args.output)
    fmt = args.format or {".csv": "csv", ".parquet": "parquet"}.get(path.suffix, "jsonl")
    write_events(synthetic_events(args.events, seed=args.seed, shape=args.shape), path, fmt)
    print(f"wrote {args.events} events to {path} ({fmt}, {args.shape} shape)")
    return 0
