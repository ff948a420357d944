"""Fee math of SPEC §4 against hand-computed examples."""
import pytest

from settlement.errors import InvariantBroken
from settlement.fees import allocate, marginal_charge, protocol_fee, tiered_cost
from settlement.tariff import PriceRule, Tier

SPEC_RULE = PriceRule("*", "request", 1000, (Tier(100_000, 2_000_000_000_000), Tier(None, 1_000_000_000_000)))


def test_cost_within_first_tier_is_quantity_times_price_over_per():
    assert tiered_cost(SPEC_RULE, 1000) == 2_000_000_000_000
    assert tiered_cost(SPEC_RULE, 100_000) == 200_000_000_000_000


def test_cost_across_tier_boundary_prices_each_part_at_its_tier():
    # 100000 units at 2e12 per 1000, then 500 units at 1e12 per 1000
    assert tiered_cost(SPEC_RULE, 100_500) == 200_000_000_000_000 + 500_000_000_000


def test_marginal_charge_continues_tiers_from_prior_quantity():
    # P = 99500, Q = 1000: 500 units in tier 1 (1e12) + 500 units in tier 2 (0.5e12)
    assert marginal_charge(SPEC_RULE, 99_500, 1000) == 1_500_000_000_000


def test_late_usage_costs_the_same_as_on_time():
    on_time = marginal_charge(SPEC_RULE, 0, 150_000)
    split = marginal_charge(SPEC_RULE, 0, 60_000) + marginal_charge(SPEC_RULE, 60_000, 90_000)
    assert on_time == split


def test_per_granularity_floors_the_whole_cost_not_each_unit():
    rule = PriceRule("*", "byte", 1000, (Tier(None, 3),))
    assert tiered_cost(rule, 999) == 2          # 2997 // 1000
    assert marginal_charge(rule, 0, 1) == 0
    assert sum(marginal_charge(rule, p, 1) for p in range(1000)) == tiered_cost(rule, 1000) == 3


def test_zero_price_tier_costs_nothing():
    rule = PriceRule("*", "u", 1, (Tier(10, 0), Tier(None, 5)))
    assert tiered_cost(rule, 10) == 0
    assert tiered_cost(rule, 12) == 10


def test_allocation_is_proportional_when_it_divides():
    assert allocate(100, {"0xb": 3, "0xa": 1}) == {"0xb": 75, "0xa": 25}


def test_remainder_goes_to_largest_remainders_first():
    # 10 * q mod 7: a -> 10*1 % 7 = 3, b -> 10*2 % 7 = 6, c -> 10*4 % 7 = 5; floors 1, 2, 5 = 8
    shares = allocate(10, {"0xa": 1, "0xb": 2, "0xc": 4})
    assert shares == {"0xa": 1, "0xb": 3, "0xc": 6}


def test_remainder_ties_break_by_lowercase_address_ascending():
    shares = allocate(10, {"0xBB": 1, "0xaa": 1, "0xCC": 1})
    assert shares == {"0xaa": 4, "0xBB": 3, "0xCC": 3}


def test_allocation_of_zero_total_quantity_is_a_bug():
    with pytest.raises(InvariantBroken):
        allocate(5, {"0xa": 0})


def test_protocol_fee_rounds_down_and_provider_keeps_the_rest():
    assert protocol_fee(999, 250) == (24, 975)
    assert protocol_fee(10_000, 250) == (250, 9750)
    assert protocol_fee(7, 0) == (0, 7)
    assert protocol_fee(7, 10_000) == (7, 0)
