"""EIP-1559 fees within the operator's caps, and the bump that replaces a stuck transaction.

A first attempt offers the node's suggested priority fee and a max fee of twice the latest base
fee plus that tip (room for six full blocks of base-fee rise), each cut to its cap. A replacement
raises both by 12.5% (nodes require at least 10% to accept a replacement at the same nonce), and
the max fee to at least twice the current base fee plus the new tip; when the caps leave no room
for a 10% rise, the transaction is not replaced and waits (a rerun with higher caps replaces it).
All in integer wei.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from settlement.errors import UsageError

log = logging.getLogger("meterroot.chain")

GWEI = 10**9
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8
"""A replacement offers 9/8 of the previous fees, rounded up."""
MIN_REPLACEMENT_PERCENT = 10
"""geth's and anvil's minimum price bump for a replacement at the same nonce."""
FALLBACK_PRIORITY_FEE = GWEI
"""Tip when the node cannot suggest one (eth_maxPriorityFeePerGas unsupported)."""


@dataclass(frozen=True)
class FeeCaps:
    """What the operator allows per gas (None: no cap)."""

    max_fee: int | None = None
    """--max-fee-gwei, in wei: the most a transaction may ever pay per gas, base fee included."""
    priority_fee: int | None = None
    """--priority-fee-gwei, in wei: the most it may tip the block builder per gas."""

    def __post_init__(self):
        for name, value in (("--max-fee-gwei", self.max_fee), ("--priority-fee-gwei", self.priority_fee)):
            if value is not None and value <= 0:
                raise UsageError(f"{name} must be positive")
        if self.max_fee is not None and self.priority_fee is not None and self.priority_fee > self.max_fee:
            raise UsageError("--priority-fee-gwei cannot exceed --max-fee-gwei (the tip is part of the max fee)")

    @classmethod
    def from_gwei(cls, max_fee_gwei: str | None, priority_fee_gwei: str | None) -> "FeeCaps":
        return cls(gwei_to_wei(max_fee_gwei, "--max-fee-gwei"), gwei_to_wei(priority_fee_gwei, "--priority-fee-gwei"))


@dataclass(frozen=True)
class Fees:
    """The fee fields of one attempt."""

    max_fee: int
    priority_fee: int
    legacy: bool = False
    """A chain without EIP-1559: max_fee is the gasPrice."""

    def fields(self) -> dict:
        if self.legacy:
            return {"gasPrice": self.max_fee}
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.priority_fee}

    def describe(self) -> str:
        if self.legacy:
            return f"gas price {format_gwei(self.max_fee)} gwei"
        return f"max fee {format_gwei(self.max_fee)} gwei, tip {format_gwei(self.priority_fee)} gwei"


def gwei_to_wei(text: str | None, what: str) -> int | None:
    """'1.5' gwei -> 1_500_000_000 wei, exactly (decimal text, at most 9 decimals)."""
    if text is None:
        return None
    whole, _, fraction = str(text).strip().partition(".")
    if not (whole or fraction) or not (whole or "0").isdigit() or (fraction and not fraction.isdigit()) \
            or len(fraction) > 9:
        raise UsageError(f"{what} {text!r} is not a number of gwei (e.g. 30 or 1.5, at most 9 decimals)")
    return int(whole or "0") * GWEI + int(fraction.ljust(9, "0") or "0")


def format_gwei(wei: int) -> str:
    whole, rest = divmod(wei, GWEI)
    return f"{whole}.{rest:09d}".rstrip("0").rstrip(".")


def _cap(value: int, cap: int | None) -> int:
    return value if cap is None else min(value, cap)


def _up(value: int) -> int:
    """value × 9/8, rounded up, and at least one wei more (so even a zero tip rises)."""
    return max(-(-value * BUMP_NUMERATOR // BUMP_DENOMINATOR), value + 1)


def initial_fees(base_fee: int | None, suggested_tip: int | None, gas_price: int | None, caps: FeeCaps) -> Fees:
    """Fees of a first attempt; `base_fee` None means a chain without EIP-1559."""
    if base_fee is None:
        return Fees(_cap(gas_price or 0, caps.max_fee), _cap(gas_price or 0, caps.max_fee), legacy=True)
    tip = _cap(suggested_tip if suggested_tip is not None else FALLBACK_PRIORITY_FEE, caps.priority_fee)
    max_fee = _cap(2 * base_fee + tip, caps.max_fee)
    tip = min(tip, max_fee)
    if max_fee < base_fee + tip:
        log.warning("the max fee cap %s gwei is below the base fee %s gwei plus the tip: the transaction "
                    "waits until the base fee falls", format_gwei(max_fee), format_gwei(base_fee))
    return Fees(max_fee, tip)


def bumped_fees(previous: Fees, base_fee: int | None, caps: FeeCaps) -> Fees | None:
    """Fees of a replacement, or None when the caps leave no room for a 10% rise."""
    if previous.legacy:
        price = _cap(max(_up(previous.max_fee), _up(base_fee or 0)), caps.max_fee)
        return Fees(price, price, legacy=True) if _enough(previous.max_fee, price) else None
    tip = _cap(_up(previous.priority_fee), caps.priority_fee)
    max_fee = _cap(max(_up(previous.max_fee), 2 * (base_fee or 0) + tip), caps.max_fee)
    tip = min(tip, max_fee)
    if not (_enough(previous.max_fee, max_fee) and _enough(previous.priority_fee, tip)):
        return None
    return Fees(max_fee, tip)


def _enough(old: int, new: int) -> bool:
    return new * 100 >= old * (100 + MIN_REPLACEMENT_PERCENT) and new > old
