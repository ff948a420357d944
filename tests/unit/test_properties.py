"""Properties of the fee math that must hold for every input (hypothesis)."""
from hypothesis import given, settings, strategies as st

from settlement.fees import allocate, marginal_charge, protocol_fee, tiered_cost
from settlement.tariff import PriceRule, Tier

providers = st.dictionaries(st.from_regex(r"0x[0-9a-f]{4}", fullmatch=True),
                            st.integers(1, 10**12), min_size=1, max_size=6)


@st.composite
def rules(draw):
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**6), max_size=3))))
    prices = draw(st.lists(st.integers(0, 10**18), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    tiers = tuple(Tier(b, p) for b, p in zip(bounds, prices)) + (Tier(None, prices[-1]),)
    return PriceRule("*", "u", draw(st.integers(1, 10**6)), tiers)


@given(charge=st.integers(0, 10**30), quantities=providers)
def test_shares_always_sum_to_the_charge(charge, quantities):
    shares = allocate(charge, quantities)
    assert sum(shares.values()) == charge
    assert all(s >= 0 for s in shares.values())


@given(share=st.integers(0, 10**30), bps=st.integers(0, 10_000))
def test_fee_and_provider_amount_add_up_to_the_share(share, bps):
    fee, rest = protocol_fee(share, bps)
    assert fee + rest == share and fee >= 0 and rest >= 0


@settings(max_examples=200)
@given(rule=rules(), parts=st.lists(st.integers(1, 10**7), min_size=1, max_size=6))
def test_splitting_usage_over_runs_never_changes_the_total_charge(rule, parts):
    settled = 0
    charged = 0
    for q in parts:
        charged += marginal_charge(rule, settled, q)
        settled += q
    assert charged == tiered_cost(rule, sum(parts))
