"""The consumer SDK (SPEC §13): a wallet key and a deposit are all a consumer needs.

    from meterroot.sdk import Consumer

    consumer = Consumer(key=KEY, registry=REGISTRY, rpc_url=RPC_URL, permit_file="permits.jsonl")
    consumer.deposit(10**18)
    with consumer.sign_in("http://127.0.0.1:8600") as session:
        for _ in range(100):
            session.rpc("eth_blockNumber")
    print(consumer.owed(), consumer.balance(), consumer.counter())

Names load on first use (web3 and httpx are imported only then); nothing here imports Beam.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meterroot.sdk.consumer import Balance, Consumer
    from meterroot.sdk.meter import Meter, Receipt
    from meterroot.sdk.session import GatewayRefused, Session

_NAMES = {
    "Consumer": "meterroot.sdk.consumer", "Balance": "meterroot.sdk.consumer",
    "Meter": "meterroot.sdk.meter", "Receipt": "meterroot.sdk.meter",
    "Session": "meterroot.sdk.session", "GatewayRefused": "meterroot.sdk.session",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'meterroot.sdk' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)
