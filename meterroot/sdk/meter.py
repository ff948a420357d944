"""The consumer's own meter: usage as the gateways' receipts report it, priced by SPEC §4.

Quantities are kept per (epoch, contract, unit, provider) — the keys of a batch's usage — and
priced with the settlement core exactly as one batch holding all of them: per pricing key the
tiered charge cost(Q) (settlement.fees), split over providers by largest remainder, the
protocol fee per line; what the consumer owes each payee is the sum over its lines (the
treasury's is the sum of the fees). That is the §5 cumulative amount of every leaf of the
consumer when its usage is settled in one batch.

When the same usage is split over several batches, each line's fee is floored per batch: the
treasury may then be owed up to one wei less per line and batch, and the provider as much
more, than this single-batch figure (SPEC §4 is exact per batch, not across batch cuts).
"""
from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass

from settlement.errors import UsageError
from settlement.fees import allocate, marginal_charge, protocol_fee
from settlement.tariff import Tariff


@dataclass(frozen=True)
class Receipt:
    """One gateway answer's metering receipt."""

    request_id: str
    """The gateway's id of the request (its events' ids start with it)."""
    timestamp_ms: int
    """The events' timestamp."""
    usage: tuple[tuple[str, int], ...]
    """(unit, quantity) the gateway wrote for the request."""

    @classmethod
    def parse(cls, header: str) -> "Receipt":
        try:
            data = json.loads(header)
            usage = tuple((str(u), int(q)) for u, q in data["usage"].items())
            receipt = cls(str(data["id"]), int(data["t"]), usage)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UsageError(f"the gateway's metering receipt {header[:200]!r} is not "
                             '{"id", "t", "usage": {unit: quantity}}') from None
        if any(q <= 0 for _, q in usage):
            raise UsageError(f"the gateway's metering receipt {header[:200]!r} has a quantity below 1")
        return receipt


class Meter:
    """Thread-safe: sessions of one consumer on several threads share it."""

    def __init__(self, tariff: Tariff):
        self.tariff = tariff
        self._lock = threading.Lock()
        self._quantities: dict[tuple[int, str, str, str], int] = defaultdict(int)
        self.requests = 0
        """Receipts recorded."""

    def record(self, receipt: Receipt, *, contract: str, provider: str) -> None:
        epoch = receipt.timestamp_ms // 1000 // self.tariff.epoch_seconds
        with self._lock:
            for unit, quantity in receipt.usage:
                self._quantities[(epoch, contract, unit, provider)] += quantity
            self.requests += 1

    def quantities(self) -> dict[tuple[int, str, str, str], int]:
        """(epoch, contract, unit, provider) -> quantity metered so far."""
        with self._lock:
            return dict(self._quantities)

    def owed(self) -> dict[str, int]:
        """Payee -> wei the consumer owes it in total (providers, and the treasury's fees)."""
        keys: dict[tuple[int, str, str], dict[str, int]] = defaultdict(dict)
        for (epoch, contract, unit, provider), quantity in self.quantities().items():
            keys[(epoch, contract, unit)][provider] = quantity
        owed: dict[str, int] = defaultdict(int)
        bps = self.tariff.protocol_fee_bps
        for (epoch, contract, unit), by_provider in sorted(keys.items()):
            rule = self.tariff.price_for(contract, unit)
            if rule is None:
                raise UsageError(f"the tariff {self.tariff.version!r} has no price for unit {unit!r} on "
                                 f"{contract}: the gateway meters units this tariff does not publish")
            charge = marginal_charge(rule, 0, sum(by_provider.values()))
            for provider, share in allocate(charge, by_provider).items():
                fee, rest = protocol_fee(share, bps)
                owed[provider] += rest
                owed[self.tariff.treasury] += fee
        return {payee: amount for payee, amount in owed.items() if amount}
