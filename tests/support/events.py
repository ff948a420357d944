"""Small hand-made usage events and tariffs for pipeline and end-to-end tests."""
from __future__ import annotations

import json
from pathlib import Path

PROVIDER_A = "0x1000000000000000000000000000000000000001"
PROVIDER_B = "0x2000000000000000000000000000000000000002"
CONSUMER = "0x3000000000000000000000000000000000000003"
CONSUMER_2 = "0x4000000000000000000000000000000000000004"
CONTRACT = "0x5000000000000000000000000000000000000005"
TREASURY = "0x000000000000000000000000000000000000Fee5"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
EPOCH_MS = 3_600_000
T0 = 1_795_514_400_000  # 2026-11-24T10:00:00Z, the start of an epoch

TARIFF = {
    "version": "test-1",
    "epoch_seconds": 3600,
    "protocol_fee_bps": 250,
    "treasury": TREASURY,
    "prices": [
        {"contract": "*", "unit": "request", "per": 10,
         "tiers": [{"up_to": 100, "price_wei": "1000"}, {"up_to": None, "price_wei": "500"}]},
        {"contract": "*", "unit": "byte", "tiers": [{"up_to": None, "price_wei": "3"}]},
    ],
}


def event(event_id: str, provider: str = PROVIDER_A, quantity=10, timestamp=T0, consumer: str = CONSUMER,
          unit: str = "request", **extra) -> dict:
    return {"event_id": event_id, "provider": provider, "node_id": "node-1", "consumer": consumer,
            "contract": CONTRACT, "unit": unit, "quantity": quantity, "timestamp": timestamp, **extra}


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def write_tariff(path: Path, tariff: dict = TARIFF) -> Path:
    path.write_text(json.dumps(tariff))
    return path
