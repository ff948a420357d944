"""Realistic synthetic usage (SPEC §1 schema) for demos and benchmarks.

Many consumers with Zipf-skewed volume, a few providers of unequal size, a handful of contracts
and units, log-normal quantities, event times spread over a day. Deterministic for a seed.
"""
from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

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


def synthetic_events(n: int, seed: int = 7, hours: int = 24) -> pa.Table:
    """`n` valid events as an Arrow table with the SPEC §1 columns (timestamp as int ms)."""
    rng = np.random.default_rng(seed)
    consumers, providers, contracts = population()
    consumer_ix = np.minimum(rng.zipf(1.3, n) - 1, len(consumers) - 1)
    provider_weights = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    provider_ix = rng.choice(len(providers), n, p=provider_weights)
    contract_ix = (consumer_ix * 7 + rng.integers(0, 2, n)) % len(contracts)
    unit_ix = rng.choice(len(UNITS), n, p=UNIT_WEIGHTS)
    quantity = np.maximum(1, rng.lognormal(3.0, 1.5, n)).astype(np.int64)
    timestamp = BASE_TIME_MS + rng.integers(0, hours * 3_600_000, n)
    seq = np.arange(n)
    token = np.where(rng.random(n) < 0.3, consumer_ix + 1, -1)
    event_id = pa.compute.binary_join_element_wise(
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
