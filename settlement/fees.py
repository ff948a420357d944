"""Fee math of SPEC §4: integers only, deterministic, every wei accounted for."""
from __future__ import annotations

from typing import Mapping

from settlement.errors import InvariantBroken
from settlement.tariff import PriceRule


def tiered_cost(rule: PriceRule, quantity: int) -> int:
    """cost(x) = (sum over tiers of units-in-tier * price_wei) // per  (floor: the payer keeps
    the fraction of a wei, which is why charges are always differences of whole costs)."""
    total = 0
    lower = 0
    for tier in rule.tiers:
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if upper <= lower:
            break
        total += (upper - lower) * tier.price_wei
        lower = upper
    return total // rule.per


def marginal_charge(rule: PriceRule, prior: int, quantity: int) -> int:
    """charge = cost(P + Q) - cost(P): late usage lands in the tier it would have on time."""
    return tiered_cost(rule, prior + quantity) - tiered_cost(rule, prior)


def allocate(charge: int, quantities: Mapping[str, int]) -> dict[str, int]:
    """Split `charge` over providers in proportion to their quantities, exactly.

    share_p = charge * q_p // Q (floor); the wei left over go one each to the providers with the
    largest remainder (charge * q_p) mod Q, ties broken by provider address ascending (lowercase).
    """
    total = sum(quantities.values())
    if total <= 0:
        raise InvariantBroken(f"cannot allocate {charge} wei over a total quantity of {total}")
    shares = {}
    remainders = []
    for provider, q in quantities.items():
        share, remainder = divmod(charge * q, total)
        shares[provider] = share
        remainders.append((-remainder, provider.lower(), provider))
    leftover = charge - sum(shares.values())
    for _, _, provider in sorted(remainders)[:leftover]:
        shares[provider] += 1
    if sum(shares.values()) != charge:
        raise InvariantBroken(f"allocation of {charge} wei over {dict(quantities)} sums to "
                              f"{sum(shares.values())}")
    return shares


def protocol_fee(share: int, fee_bps: int) -> tuple[int, int]:
    """(protocol_fee, provider_amount): fee = share * bps // 10000 (floor: the provider keeps the
    fraction), provider gets the rest, so the two always add up to the share."""
    fee = share * fee_bps // 10000
    return fee, share - fee
