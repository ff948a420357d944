"""What each consumer owes this provider, against the latest SpendPermit it signed for it.

The gateway prices its own usage of a consumer with the settlement core (SPEC §4: tiered cost
per (epoch, unit), the protocol fee taken per line) as if it were the consumer's only provider
of the service: its share of a key is then cost(Q) − fee, exact for a consumer that uses one
provider per service, and an upper bound of the batch's amount when several share a key (the
graduated tiers only get cheaper with volume). A consumer is refused once owed − permitted
exceeds the credit limit.

Memory per consumer is bounded: the quantities of the two newest epochs are kept (usage only
ever lands in the current one, and the one before around a boundary); older epochs are folded
into a settled sum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from settlement.fees import protocol_fee, tiered_cost
from settlement.permits import InvalidPermit, SpendPermit, verify_permit
from settlement.tariff import Tariff

OPEN_EPOCHS = 2


@dataclass
class ConsumerAccount:
    """One consumer's bill at this gateway."""

    folded_wei: int = 0
    """Provider wei of epochs no longer open."""
    open_quantities: dict[tuple[int, str], int] = field(default_factory=dict)
    """(epoch, unit) -> quantity of the open epochs."""
    permit: SpendPermit | None = None
    """The highest valid permit for this provider."""
    treasury_permit: SpendPermit | None = None
    """The highest valid permit for the treasury (kept and handed on, not enforced here)."""


class CreditBook:
    def __init__(self, tariff: Tariff, *, provider: str, contract: str, chain_id: int, registry: str):
        self.tariff = tariff
        self.provider = provider
        self.contract = contract
        self.chain_id = chain_id
        self.registry = registry
        self._accounts: dict[str, ConsumerAccount] = {}
        self._rules = {}

    def _rule(self, unit: str):
        rule = self._rules.get(unit)
        if rule is None:
            rule = self._rules[unit] = self.tariff.price_for(self.contract, unit)
        return rule

    def _provider_wei(self, epoch_unit: tuple[int, str], quantity: int) -> int:
        share = tiered_cost(self._rule(epoch_unit[1]), quantity)
        return protocol_fee(share, self.tariff.protocol_fee_bps)[1]

    def account(self, consumer: str) -> ConsumerAccount:
        account = self._accounts.get(consumer)
        if account is None:
            account = self._accounts[consumer] = ConsumerAccount()
        return account

    def add(self, consumer: str, epoch: int, usage) -> None:
        account = self.account(consumer)
        quantities = account.open_quantities
        for unit, quantity in usage:
            key = (epoch, unit)
            quantities[key] = quantities.get(key, 0) + quantity
        if len({e for e, _ in quantities}) > OPEN_EPOCHS:
            newest = sorted({e for e, _ in quantities})[-OPEN_EPOCHS:]
            for key in [k for k in quantities if k[0] < newest[0]]:
                account.folded_wei += self._provider_wei(key, quantities.pop(key))

    def owed(self, consumer: str) -> int:
        account = self._accounts.get(consumer)
        if account is None:
            return 0
        return account.folded_wei + sum(self._provider_wei(k, q) for k, q in account.open_quantities.items())

    def permitted(self, consumer: str) -> int:
        account = self._accounts.get(consumer)
        return account.permit.cumulative_amount if account and account.permit else 0

    def unpermitted(self, consumer: str) -> int:
        return self.owed(consumer) - self.permitted(consumer)

    def offer_permit(self, permit: SpendPermit, consumer: str) -> bool:
        """Keep `permit` if it is the signed-in consumer's, for this registry, and higher than the
        one kept; InvalidPermit when it is not acceptable. True when it replaced the kept one."""
        if permit.consumer != consumer:
            raise InvalidPermit("bad_address", f"the permit is {permit.consumer}'s, the session is {consumer}'s")
        if permit.payee not in (self.provider, self.tariff.treasury):
            raise InvalidPermit("bad_address", f"the permit pays {permit.payee}; this gateway keeps permits for "
                                               f"its provider {self.provider} and the treasury {self.tariff.treasury}")
        verify_permit(permit, self.chain_id, self.registry)
        account = self.account(consumer)
        slot = "permit" if permit.payee == self.provider else "treasury_permit"
        kept = getattr(account, slot)
        if kept is not None and kept.cumulative_amount >= permit.cumulative_amount:
            return False
        setattr(account, slot, permit)
        return True

    def latest_permits(self) -> list[SpendPermit]:
        """Every kept permit, by consumer then payee."""
        permits = []
        for consumer in sorted(self._accounts):
            account = self._accounts[consumer]
            permits += [p for p in (account.permit, account.treasury_permit) if p is not None]
        return permits
