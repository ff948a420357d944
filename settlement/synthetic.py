"""Realistic synthetic usage (SPEC §1 schema) for demos and benchmarks.

Two shapes, deterministic for a seed:
- `default` (low cardinality): many consumers with Zipf-skewed volume, a few providers of unequal
  size, a handful of contracts and units, log-normal quantities, event times spread over a day;
  many events settle into each line.
- `wide` (high cardinality): tens of thousands of consumers of even volume, each served by two of
  many providers, over dozens of contracts: nearly every event is its own settlement line, and a
  batch has about 2.5 leaves per consumer (its two providers and the treasury).
"""
from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from settlement.keccak import keccak256
from settlement.addresses import normalize_address

UNITS = ("request", "compute_unit", "byte", "storage_gb_hour")
UNIT_WEIGHTS = (0.55, 0.25, 0.15, 0.05)
BASE_TIME_MS = 1_795_000_000_000  # 2026-11-19T... UTC; a fixed day keeps outputs reproducible


def _address(tag: str, i: int) -> str:
    return normalize_address("0x" + keccak256(f"{tag}:{i}".encode())[-20:].hex())


def consumer_key(i: int) -> bytes:
    """The private key of generated consumer `i`: keccak256("meterroot demo consumer key:<i>").

    Published, hence worthless: it lets the demo sign each generated consumer's spend permits.
    (A hash of that form is below the secp256k1 order but for a 2^-128 chance.)"""
    return keccak256(f"meterroot demo consumer key:{i}".encode())


@functools.cache
def consumer_addresses(n: int) -> tuple[str, ...]:
    """EIP-55 addresses of the keys of generated consumers 0 … n-1."""
    from eth_account import Account  # key to address: secp256k1, only when events are generated
    return tuple(Account.from_key(consumer_key(i)).address for i in range(n))


def population(n_consumers: int = 2000, n_providers: int = 5, n_contracts: int = 8):
    consumers = list(consumer_addresses(n_consumers))
    providers = [_address("provider", i) for i in range(n_providers)]
    contracts = [_address("contract", i) for i in range(n_contracts)]
    return consumers, providers, contracts


SHAPES = ("default", "wide")
WIDE_POPULATION = {"n_consumers": 40_000, "n_providers": 64, "n_contracts": 48}


def _default_shape(rng, n: int):
    consumers, providers, contracts = population()
    consumer_ix = np.minimum(rng.zipf(1.3, n) - 1, len(consumers) - 1)
    provider_weights = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    provider_ix = rng.choice(len(providers), n, p=provider_weights)
    contract_ix = (consumer_ix * 7 + rng.integers(0, 2, n)) % len(contracts)
    return consumers, providers, contracts, consumer_ix, provider_ix, contract_ix


def _wide_shape(rng, n: int):
    consumers, providers, contracts = population(**WIDE_POPULATION)
    consumer_ix = rng.integers(0, len(consumers), n)
    # each consumer is served by two providers (its own pair), over any of the contracts
    provider_ix = (consumer_ix * 5 + rng.integers(0, 2, n)) % len(providers)
    contract_ix = rng.integers(0, len(contracts), n)
    return consumers, providers, contracts, consumer_ix, provider_ix, contract_ix


def synthetic_events(n: int, seed: int = 7, hours: int = 24, shape: str = "default") -> pa.Table:
    """`n` valid events as an Arrow table with the SPEC §1 columns (timestamp as int ms), of
    one of SHAPES (module docstring)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    rng = np.random.default_rng(seed)
    consumers, providers, contracts, consumer_ix, provider_ix, contract_ix = (
        _wide_shape if shape == "wide" else _default_shape)(rng, n)
    unit_ix = rng.choice(len(UNITS), n, p=UNIT_WEIGHTS)
    quantity = np.maximum(1, rng.lognormal(3.0, 1.5, n)).astype(np.int64)
    timestamp = BASE_TIME_MS + rng.integers(0, hours * 3_600_000, n)
    seq = np.arange(n)
    token = np.where(rng.random(n) < 0.3, consumer_ix + 1, -1)
    event_id = pc.binary_join_element_wise(
        pa.array(np.char.add("evt-", provider_ix.astype(str))),
        pa.array(seq.astype(str)), ":")
    return pa.table({
        "event_id": event_id,
        "provider": pa.array(np.array(providers)[provider_ix]),
        "node_id": pa.array(np.char.add(np.array(["node-"] * 1)[0], (provider_ix * 10 + seq % 7).astype(str))),
        "consumer": pa.array(np.array(consumers)[consumer_ix]),
        "contract": pa.array(np.array(contracts)[contract_ix]),
        "unit": pa.array(np.array(UNITS)[unit_ix]),
        "quantity": pa.array(quantity),
        "timestamp": pa.array(timestamp),
        "token_id": pa.array(token, mask=token < 0),
    })
