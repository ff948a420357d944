"""Small hand-made usage for the streaming tests: one-minute epochs and a tariff whose tiers
make marginal pricing visible (the first 10 requests of an epoch cost 100 wei each, the rest 10).
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq


EPOCH = 60
TARIFF = """\
version: "stream-test"
epoch_seconds: 60
protocol_fee_bps: 250
treasury: "0x000000000000000000000000000000000000fee5"
prices:
  - contract: "*"
    unit: request
    tiers:
      - {up_to: 10, price_wei: "100"}
      - {up_to: null, price_wei: "10"}
"""
TREASURY = "0x000000000000000000000000000000000000Fee5"  # EIP-55
PROVIDER_A = "0x1111111111111111111111111111111111111111"
PROVIDER_B = "0x2222222222222222222222222222222222222222"
CONSUMER_X = "0x3333333333333333333333333333333333333333"
CONSUMER_Y = "0x4444444444444444444444444444444444444444"
CONTRACT = "0x5555555555555555555555555555555555555555"
REGISTRY = "0x6666666666666666666666666666666666666666"
CHAIN_ID = 31337


def write_tariff(folder: Path) -> Path:
    path = Path(folder) / "tariff.yaml"
    path.write_text(TARIFF)
    return path


def event(event_id: str, seconds: int, quantity: int, consumer: str = CONSUMER_X,
          provider: str = PROVIDER_A) -> dict:
    return {"event_id": event_id, "provider": provider, "node_id": "node-1", "consumer": consumer,
            "contract": CONTRACT, "unit": "request", "quantity": quantity, "timestamp": seconds * 1000}


def write_files(folder: Path, files: dict[str, list]) -> Path:
    """{name: [event dict or raw line]} -> JSONL files in `folder` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in files.items():
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def common_args(tariff: Path, out: Path) -> list[str]:
    return ["--tariff", str(tariff), "--output", str(out), "--chain-id", str(CHAIN_ID),
            "--registry", REGISTRY]


def settlement_lines(out: Path) -> list[dict]:
    """Every settlement line of OUT (each batch's file holds its batch column)."""
    return [row for path in sorted(Path(out).glob("settlement_lines/batch=*/*.parquet"))
            for row in pq.read_table(path, partitioning=None).to_pylist()]


def lines_of(out: Path) -> list[dict]:
    """Every settlement line of OUT, without its batch, in a fixed order."""
    rows = [{k: v for k, v in row.items() if k != "batch"} for row in settlement_lines(out)]
    return sorted(rows, key=lambda r: (r["epoch"], r["consumer"], r["contract"], r["provider"], r["unit"]))


def lines_by_batch(out: Path) -> dict[int, list[tuple]]:
    """{batch: [(epoch, consumer, provider, quantity, amount_wei)]}."""
    batches: dict[int, list[tuple]] = {}
    for row in sorted(settlement_lines(out), key=lambda r: (r["batch"], r["epoch"], r["consumer"], r["provider"])):
        batches.setdefault(row["batch"], []).append(
            (row["epoch"], row["consumer"], row["provider"], int(row["quantity"]), int(row["amount_wei"])))
    return batches


def head(out: Path) -> dict:
    return json.loads((Path(out) / "ledger" / "HEAD.json").read_text())


def cumulative(out: Path) -> dict[tuple[str, str], int]:
    """{(consumer, payee): cumulative wei} through the ledger's last batch."""
    last = head(out)["batch"]
    table = pq.read_table(Path(out) / "ledger" / "cumulative" / f"batch={last}.parquet")
    return {(r["consumer"], r["payee"]): int(r["cumulative_wei"]) for r in table.to_pylist()}


def manifest(out: Path, batch: int) -> dict:
    return json.loads((Path(out) / "batches" / str(batch) / "manifest.json").read_text())


def run_json(out: Path) -> dict:
    return json.loads((Path(out) / "run.json").read_text())
