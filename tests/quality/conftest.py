"""A small, consistent output directory in the layout of SPEC §7, written without the pipeline.

Lines are priced with settlement/fees.py, trees built with settlement/merkle.py; everything else
(counts, ledger snapshots, manifests) follows from the events. Tests copy the good output and
break one thing in it.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eth_utils import to_checksum_address

from settlement.fees import allocate, marginal_charge, protocol_fee
from settlement.merkle import SETTLEMENT_LEAF_ENCODING, StandardMerkleTree, settlement_value
from settlement.tariff import canonical_form, canonical_json, parse_tariff

CHAIN_ID = 31337
REGISTRY = to_checksum_address("0x" + "5e" * 20)
EPOCH_SECONDS = 3600
FIRST_EPOCH = 494_000  # 2026-05-10


def address(n: int) -> str:
    return to_checksum_address("0x" + hashlib.sha256(str(n).encode()).hexdigest()[:40])


PROVIDERS = [address(i) for i in (1, 2, 3)]
CONSUMERS = [address(i) for i in (11, 12)]
CONTRACTS = [address(i) for i in (21, 22)]
TREASURY = to_checksum_address("0x000000000000000000000000000000000000fee5")

TARIFF = {
    "version": "test-1",
    "epoch_seconds": EPOCH_SECONDS,
    "protocol_fee_bps": 250,
    "treasury": TREASURY,
    "prices": [
        {"contract": "*", "unit": "request", "per": 10,
         "tiers": [{"up_to": 50, "price_wei": "7000000000001"}, {"up_to": None, "price_wei": "3000000000007"}]},
        {"contract": CONTRACTS[1], "unit": "request", "per": 1,
         "tiers": [{"up_to": None, "price_wei": "999999999999999999"}]},
        {"contract": "*", "unit": "gb_second", "per": 3,
         "tiers": [{"up_to": 10, "price_wei": "100000000000000000001"},
                   {"up_to": 40, "price_wei": "50000000000000000003"},
                   {"up_to": None, "price_wei": "1"}]},
    ],
}

EVENTS_SCHEMA = pa.schema([
    ("batch", pa.int64()), ("provider", pa.string()), ("event_id", pa.string()), ("node_id", pa.string()),
    ("consumer", pa.string()), ("contract", pa.string()), ("unit", pa.string()), ("quantity", pa.int64()),
    ("timestamp_ms", pa.int64()), ("epoch", pa.int64()), ("token_id", pa.decimal128(38, 0)),
    ("source", pa.string()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("batch", pa.int64()), ("reason", pa.string()), ("detail", pa.string()), ("source", pa.string()),
    ("record", pa.string()),
])
WEI = pa.decimal128(38, 0)
LINES_SCHEMA = pa.schema([
    ("batch", pa.int64()), ("epoch", pa.int64()), ("consumer", pa.string()), ("contract", pa.string()),
    ("provider", pa.string()), ("unit", pa.string()), ("quantity", WEI), ("amount_wei", WEI),
    ("protocol_fee_wei", WEI), ("provider_wei", WEI),
])
CUMULATIVE_SCHEMA = pa.schema([("consumer", pa.string()), ("payee", pa.string()), ("cumulative_wei", WEI)])


@dataclass
class BatchInput:
    events: list[dict]
    quarantine: list[dict] = field(default_factory=list)
    duplicates: int = 0


def make_events(rng: random.Random, batch: int, count: int, epochs: list[int]) -> list[dict]:
    events = []
    for i in range(count):
        epoch = rng.choice(epochs)
        contract = rng.choice(CONTRACTS)
        unit = rng.choice(["request", "gb_second"])
        events.append({
            "provider": rng.choice(PROVIDERS),
            "event_id": f"b{batch}-e{i}",
            "node_id": f"node-{rng.randrange(4)}",
            "consumer": rng.choice(CONSUMERS),
            "contract": contract,
            "unit": unit,
            "quantity": rng.randrange(1, 30),
            "timestamp_ms": epoch * EPOCH_SECONDS * 1000 + rng.randrange(EPOCH_SECONDS * 1000),
            "token_id": rng.choice([None, 7, 2**70]),
        })
    return events


def default_inputs() -> list[BatchInput]:
    rng = random.Random(20261124)
    first = make_events(rng, 1, 36, [FIRST_EPOCH, FIRST_EPOCH + 1])
    # batch 2 has late usage of epoch FIRST_EPOCH (P > 0 for its keys) and a new epoch
    second = make_events(rng, 2, 14, [FIRST_EPOCH, FIRST_EPOCH + 2])
    bad = {"reason": "bad_quantity", "detail": "quantity 1.5 is a float", "source": "input-1.jsonl",
           "record": '{"quantity": 1.5}'}
    return [BatchInput(first, [bad], duplicates=2), BatchInput(second)]


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def price_batch(tariff, events, settled_quantity, batch):
    """Settlement lines of one batch with settlement/fees.py (SPEC §4)."""
    by_key = defaultdict(lambda: defaultdict(int))
    for e in events:
        key = (e["epoch"], e["consumer"], e["contract"], e["unit"])
        by_key[key][e["provider"]] += e["quantity"]
    lines = []
    for key in sorted(by_key):
        epoch, consumer, contract, unit = key
        quantities = dict(by_key[key])
        prior = settled_quantity[key]
        total = sum(quantities.values())
        charge = marginal_charge(tariff.price_for(contract, unit), prior, total)
        for provider, share in sorted(allocate(charge, quantities).items()):
            fee, rest = protocol_fee(share, tariff.protocol_fee_bps)
            lines.append({"batch": batch, "epoch": epoch, "consumer": consumer, "contract": contract,
                          "provider": provider, "unit": unit, "quantity": quantities[provider],
                          "amount_wei": share, "protocol_fee_wei": fee, "provider_wei": rest})
        settled_quantity[key] = prior + total
    return lines


def write_output(out: Path, inputs: list[BatchInput] | None = None, tariff_data: dict = TARIFF) -> Path:
    """Write a complete, consistent output directory for `inputs` (one BatchInput per batch)."""
    inputs = default_inputs() if inputs is None else inputs
    tariff = parse_tariff(tariff_data)
    write_json(out / "ledger" / "tariff.json", json.loads(canonical_json(canonical_form(tariff))))
    settled_quantity = defaultdict(int)
    cumulative = defaultdict(int)
    settled_events = []
    for batch, batch_input in enumerate(inputs, start=1):
        events = [dict(e, batch=batch, epoch=e["timestamp_ms"] // 1000 // tariff.epoch_seconds,
                       source=f"input-{batch}.jsonl") for e in batch_input.events]
        write_parquet(out / "events" / f"batch={batch}" / "part-0.parquet", events, EVENTS_SCHEMA)
        if batch_input.quarantine:
            write_parquet(out / "quarantine" / f"batch={batch}" / "part-0.parquet",
                          [dict(q, batch=batch) for q in batch_input.quarantine], QUARANTINE_SCHEMA)
        lines = price_batch(tariff, events, settled_quantity, batch)
        write_parquet(out / "settlement_lines" / f"batch={batch}" / "part-0.parquet", lines, LINES_SCHEMA)

        owed = defaultdict(int)
        for line in lines:
            owed[(line["consumer"], line["provider"])] += line["provider_wei"]
            owed[(line["consumer"], tariff.treasury)] += line["protocol_fee_wei"]
        values = []
        for (consumer, payee), amount in sorted(owed.items()):
            if amount:
                cumulative[(consumer, payee)] += amount
                values.append(settlement_value(CHAIN_ID, REGISTRY, batch, consumer, payee,
                                               cumulative[(consumer, payee)]))
        tree = StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING)
        write_json(out / "batches" / str(batch) / "tree.json", tree.dump())

        accepted, quarantined = len(events), len(batch_input.quarantine)
        counts = {"read": accepted + batch_input.duplicates + quarantined, "accepted": accepted,
                  "duplicates": batch_input.duplicates, "quarantined": quarantined}
        write_json(out / "batches" / str(batch) / "manifest.json", {
            "batch": batch, "root": "0x" + tree.root.hex(), "leaf_count": len(values),
            "total": str(sum(line["amount_wei"] for line in lines)),
            "protocol_fee_total": str(sum(line["protocol_fee_wei"] for line in lines)),
            "epochs": sorted({line["epoch"] for line in lines}),
            "tariff_hash": tariff.hash, "tariff_version": tariff.version,
            "chain_id": CHAIN_ID, "registry": REGISTRY,
            "inputs": [{"path": f"input-{batch}.jsonl", "sha256": hashlib.sha256(b"%d" % batch).hexdigest(),
                        **counts}],
            "counts": counts, "code_version": "test", "created_by": "tests/quality/conftest.py",
        })

        write_parquet(out / "ledger" / "cumulative" / f"batch={batch}.parquet",
                      [{"consumer": c, "payee": p, "cumulative_wei": v} for (c, p), v in sorted(cumulative.items())],
                      CUMULATIVE_SCHEMA)
        settled_events += events
        write_parquet(out / "ledger" / "settled_events" / f"batch={batch}.parquet",
                      [{k: e[k] for k in ("provider", "event_id", "node_id", "consumer", "contract", "unit",
                                          "quantity", "timestamp_ms", "token_id")} for e in settled_events],
                      pa.schema([f for f in EVENTS_SCHEMA if f.name not in ("batch", "epoch", "source")]))
        write_parquet(out / "ledger" / "settled_quantities" / f"batch={batch}.parquet",
                      [{"epoch": k[0], "consumer": k[1], "contract": k[2], "unit": k[3], "quantity": v}
                       for k, v in sorted(settled_quantity.items())],
                      pa.schema([("epoch", pa.int64()), ("consumer", pa.string()), ("contract", pa.string()),
                                 ("unit", pa.string()), ("quantity", WEI)]))
        write_json(out / "ledger" / "HEAD.json", {"batch": batch, "epoch_seconds": tariff.epoch_seconds,
                                                   "chain_id": CHAIN_ID, "registry": REGISTRY,
                                                   "tariff_hash": tariff.hash})
        write_json(out / "run.json", {**counts, "batch": batch, "inputs": [f"input-{batch}.jsonl"]})
    return out


@pytest.fixture(scope="session")
def good_template(tmp_path_factory) -> Path:
    return write_output(tmp_path_factory.mktemp("template") / "OUT")


@pytest.fixture
def good_output(good_template, tmp_path) -> Path:
    """A fresh copy of the good output, free to break."""
    out = tmp_path / "OUT"
    shutil.copytree(good_template, out)
    return out


def rewrite_parquet(path: Path, change) -> None:
    """Apply `change(rows) -> rows` to a Parquet file, keeping its schema."""
    table = pq.read_table(path)
    pq.write_table(pa.Table.from_pylist(change(table.to_pylist()), schema=table.schema), path)


def rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    write_json(path, change(data) or data)
