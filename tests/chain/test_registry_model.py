"""The registry against a Python model of SPEC §6: a seeded mix of deposits, permits (higher and
lower), commits with honest and under-declared totals, and claims of old and new batches. Every
claim pays exactly what the model says, and after every step the registry holds exactly the
deposits plus the stakes (solvent), and has paid out no more than the committed totals."""
from __future__ import annotations

import random

import pytest
from eth_account import Account

from settlement.errors import ChainError
from tests.chain.conftest import MIN_PROVIDER_STAKE, TREASURY
from tests.chain.helpers import claim, commit_tree, finalize, leaf, permit, settlement_tree, stake_providers


class Model:
    def __init__(self, consumers, payees):
        self.deposit = {c.address: 0 for c in consumers}
        self.permitted = {(c.address, p): 0 for c in consumers for p in payees}
        self.collected = dict.fromkeys(self.permitted, 0)
        self.cumulative_totals = [0]  # index: batch
        self.paid_out = 0
        self.highest = 0

    def claim(self, batch, consumer, payee, cumulative):
        """What a claim pays (None: it reverts NothingPayable)."""
        key = (consumer, payee)
        if cumulative <= self.collected[key]:
            return 0
        bound = max(batch, self.highest)
        paid = min(cumulative - self.collected[key], max(self.permitted[key] - self.collected[key], 0),
                   self.deposit[consumer], self.cumulative_totals[bound] - self.paid_out)
        if paid == 0:
            return None
        self.collected[key] += paid
        self.deposit[consumer] -= paid
        self.paid_out += paid
        self.highest = bound
        return paid


@pytest.mark.parametrize("seed", [3, 7])
def test_claims_match_the_model_and_the_registry_stays_solvent(registry, seed):
    rng = random.Random(seed)
    d = registry.deployment
    consumers = [Account.from_key(rng.randbytes(32)) for _ in range(3)]  # from the seed: a determined run
    providers = [Account.from_key(rng.randbytes(32)).address for _ in range(2)]
    payees = providers + [TREASURY]
    stake_providers(registry, providers)
    model = Model(consumers, payees)
    for c in consumers:  # a start: some deposit and some consent for each pair
        registry.deposit_for(c.address, 400, mint=True)
        model.deposit[c.address] = 400
        for p in payees:
            amount = rng.randrange(100, 900)
            registry.submit_permit(permit(registry, c, p, amount))
            model.permitted[(c.address, p)] = amount
    owed = dict.fromkeys(model.permitted, 0)  # cumulative owed through the latest batch
    trees = {}
    outcomes = []  # what each claim did: "paid", "capped" (paid less than owed), "nothing", "reverted"

    def check_solvent():
        held = registry.token_balance(d.registry)
        assert held == sum(registry.deposit_of(c.address) for c in consumers) + MIN_PROVIDER_STAKE * len(providers)
        assert [registry.deposit_of(c.address) for c in consumers] == [model.deposit[c.address] for c in consumers]
        committed, paid_out = registry.totals()
        assert paid_out == model.paid_out <= committed

    for batch in (1, 2, 3, 4):
        rows = []
        for (consumer, payee) in rng.sample(sorted(owed), 4):
            owed[(consumer, payee)] += rng.randrange(50, 400)
            rows.append((consumer, payee, owed[(consumer, payee)]))
        increment = sum(owed.values()) - model.cumulative_totals[-1]
        declared = increment if batch != 2 else increment // 3  # batch 2 under-declares its total
        trees[batch] = settlement_tree(d.chain_id, d.registry, batch, rows)
        commit_tree(registry, batch, trees[batch], total=declared)
        model.cumulative_totals.append(model.cumulative_totals[-1] + declared)
        finalize(registry, batch)

        for _ in range(6):
            action = rng.choice(["deposit", "permit", "claim", "claim", "claim"])
            c = rng.choice(consumers)
            if action == "deposit":
                amount = rng.randrange(100, 600)
                registry.deposit_for(c.address, amount, mint=True)
                model.deposit[c.address] += amount
            elif action == "permit":
                p = rng.choice(payees)
                amount = rng.randrange(0, 1_500)
                if amount > model.permitted[(c.address, p)]:
                    registry.submit_permit(permit(registry, c, p, amount))
                    model.permitted[(c.address, p)] = amount
                else:
                    with pytest.raises(ChainError, match=r"PermitNotHigher"):
                        registry.submit_permit(permit(registry, c, p, amount))
            else:
                number = rng.randint(1, batch)
                tree = trees[number]
                consumer, payee, cumulative = rng.choice([(v[3], v[4], int(v[5])) for v in tree.values])
                before = model.collected[(consumer, payee)]
                expected = model.claim(number, consumer, payee, cumulative)
                outcomes.append("reverted" if expected is None else "nothing" if expected == 0
                                else "capped" if before + expected < cumulative else "paid")
                if expected is None:
                    with pytest.raises(ChainError, match=r"NothingPayable"):
                        claim(registry, number, leaf(tree, consumer, payee))
                else:
                    assert claim(registry, number, leaf(tree, consumer, payee)).paid == expected
            check_solvent()
    assert {"paid", "capped", "reverted"} <= set(outcomes), outcomes  # the seed exercises every limit
