"""The tariff (SPEC §3): what a unit of work costs, per contract, in graduated tiers."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

import warnings

from settlement.addresses import AddressError, normalize_config_address
from settlement.errors import InvalidTariff

ANY_CONTRACT = "*"
DEFAULT_EPOCH_SECONDS = 3600


@dataclass(frozen=True)
class Tier:
    up_to: int | None
    """Cumulative quantity this tier ends at (inclusive); None for the last, open tier."""
    price_wei: int
    """Price of `per` units in this tier, in wei."""


@dataclass(frozen=True)
class PriceRule:
    contract: str
    """EIP-55 address, or "*" for every contract without a rule of its own."""
    unit: str
    """Unit name as it appears in events."""
    per: int
    """`price_wei` is the price of this many units."""
    tiers: tuple[Tier, ...]
    """Ascending `up_to`; the last tier is open (`up_to` None)."""


@dataclass(frozen=True)
class Tariff:
    version: str
    """Any string naming the tariff; goes into every manifest with the hash."""
    epoch_seconds: int
    """Length of a pricing epoch; tiers restart every epoch."""
    protocol_fee_bps: int
    """Share of every charge that goes to the treasury, in basis points (0..10000)."""
    treasury: str
    """EIP-55 address of the protocol treasury, a payee of every batch with a fee."""
    prices: tuple[PriceRule, ...]
    """Every price rule; an exact contract beats "*"."""
    hash: str
    """sha256 hex of the canonical JSON form: the same tariff written differently hashes alike."""

    def price_for(self, contract: str, unit: str) -> PriceRule | None:
        """The rule pricing `unit` on `contract` (EIP-55), or None when the tariff has none."""
        return self._index.get((contract, unit)) or self._index.get((ANY_CONTRACT, unit))

    @property
    def _index(self) -> dict[tuple[str, str], PriceRule]:
        index = self.__dict__.get("_index_cache")
        if index is None:
            index = {(rule.contract, rule.unit): rule for rule in self.prices}
            object.__setattr__(self, "_index_cache", index)
        return index

    def canonical(self) -> dict:
        return canonical_form(self)


MAX_AMOUNT_WEI = 10**38 - 1
"""The largest amount the DECIMAL(38,0) columns of the outputs hold (SPEC §7)."""
MAX_EPOCH_SECONDS = (2**63 - 1) // 1000
"""Longer epochs would not fit their length in int64 milliseconds (epochs are cut in int64)."""


def _where(path: str | None) -> str:
    return f"tariff {path}: " if path else "tariff: "


def _int_field(value, name: str, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or
                                       (isinstance(value, str) and value.isdigit() and value.isascii())):
        raise InvalidTariff(f"{where}{name} must be an integer (a number or a string of digits), "
                            f"got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidTariff(f"{where}{name} must be {bound}, got {number}")
    return number


def _config_address(text, where: str) -> str:
    address, warning = normalize_config_address(text)
    if warning:
        warnings.warn(f"{where}: {warning}", TariffWarning, stacklevel=2)
    return address


class TariffWarning(UserWarning):
    """Something in the tariff was read in a way its author may not have meant."""


def _parse_rule(entry, i: int, where: str) -> PriceRule:
    at = f"{where}prices[{i}]"
    if not isinstance(entry, dict):
        raise InvalidTariff(f"{at} must be a mapping with contract, unit, per and tiers, got {entry!r}")
    unknown = set(entry) - {"contract", "unit", "per", "tiers"}
    if unknown:
        raise InvalidTariff(f"{at} has unknown keys {sorted(unknown)}; allowed: contract, unit, per, tiers")
    contract = entry.get("contract", ANY_CONTRACT)
    if contract != ANY_CONTRACT:
        try:
            contract = _config_address(contract, f"{at}.contract")
        except AddressError as exc:
            raise InvalidTariff(f"{at}.contract must be \"*\" or an address: {exc}") from None
    unit = entry.get("unit")
    if not isinstance(unit, str) or not unit:
        raise InvalidTariff(f"{at}.unit must be a non-empty string, got {unit!r}")
    per = _int_field(entry.get("per", 1), "per", f"{at}.", 1)
    tiers_in = entry.get("tiers")
    if not isinstance(tiers_in, list) or not tiers_in:
        raise InvalidTariff(f"{at}.tiers must be a non-empty list of {{up_to, price_wei}}, got {tiers_in!r}")
    tiers = []
    previous = 0
    for t, tier in enumerate(tiers_in):
        tat = f"{at}.tiers[{t}]"
        if not isinstance(tier, dict) or set(tier) - {"up_to", "price_wei"} or "price_wei" not in tier:
            raise InvalidTariff(f"{tat} must be {{up_to, price_wei}}, got {tier!r}")
        price = _int_field(tier["price_wei"], "price_wei", f"{tat}.", 0)
        if price > MAX_AMOUNT_WEI:
            raise InvalidTariff(f"{tat}.price_wei {price} has {len(str(price))} digits, more than the 38 of "
                                "the DECIMAL(38,0) amount columns; use a price of at most 10^38 - 1 wei "
                                "(or a larger `per`)")
        up_to = tier.get("up_to")
        last = t == len(tiers_in) - 1
        if up_to is None:
            if not last:
                raise InvalidTariff(f"{tat}.up_to is null but it is not the last tier; "
                                    "only the last tier is open-ended")
        else:
            if last:
                raise InvalidTariff(f"{tat}.up_to is {up_to!r} but the last tier must have up_to: null "
                                    "so that every quantity has a price")
            up_to = _int_field(up_to, "up_to", f"{tat}.", 1)
            if up_to <= previous:
                raise InvalidTariff(f"{tat}.up_to {up_to} must be greater than the previous tier's {previous}")
            previous = up_to
        tiers.append(Tier(up_to, price))
    return PriceRule(contract, unit, per, tuple(tiers))


def parse_tariff(data, path: str | None = None) -> Tariff:
    """Validate a tariff mapping; the first bad entry raises InvalidTariff naming it."""
    where = _where(path)
    if not isinstance(data, dict):
        raise InvalidTariff(f"{where}must be a mapping with version, epoch_seconds, protocol_fee_bps, "
                            f"treasury and prices, got {type(data).__name__}")
    unknown = set(data) - {"version", "epoch_seconds", "protocol_fee_bps", "treasury", "prices"}
    if unknown:
        raise InvalidTariff(f"{where}unknown keys {sorted(unknown)}; allowed: version, epoch_seconds, "
                            "protocol_fee_bps, treasury, prices")
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise InvalidTariff(f"{where}version must be a non-empty string (quote it in YAML), got {version!r}")
    epoch_seconds = _int_field(data.get("epoch_seconds", DEFAULT_EPOCH_SECONDS), "epoch_seconds", where, 1,
                               MAX_EPOCH_SECONDS)
    fee_bps = _int_field(data.get("protocol_fee_bps"), "protocol_fee_bps", where, 0, 10000)
    try:
        treasury = _config_address(data.get("treasury"), f"{where}treasury")
    except AddressError as exc:
        raise InvalidTariff(f"{where}treasury must be an address: {exc}") from None
    prices_in = data.get("prices")
    if not isinstance(prices_in, list) or not prices_in:
        raise InvalidTariff(f"{where}prices must be a non-empty list of price rules")
    rules = []
    seen = {}
    for i, entry in enumerate(prices_in):
        rule = _parse_rule(entry, i, where)
        key = (rule.contract, rule.unit)
        if key in seen:
            raise InvalidTariff(f"{where}prices[{i}] prices unit {rule.unit!r} on contract {rule.contract} "
                                f"again (already priced by prices[{seen[key]}]); keep one rule per pair")
        seen[key] = i
        rules.append(rule)
    draft = Tariff(version, epoch_seconds, fee_bps, treasury, tuple(rules), hash="")
    digest = hashlib.sha256(canonical_json(canonical_form(draft))).hexdigest()
    return Tariff(version, epoch_seconds, fee_bps, treasury, tuple(rules), hash=digest)


def canonical_form(tariff: Tariff) -> dict:
    """Every value in one spelling (ints as decimal strings, EIP-55 addresses), rules sorted."""
    return {
        "version": tariff.version,
        "epoch_seconds": str(tariff.epoch_seconds),
        "protocol_fee_bps": str(tariff.protocol_fee_bps),
        "treasury": tariff.treasury,
        "prices": sorted(
            ({"contract": r.contract, "unit": r.unit, "per": str(r.per),
              "tiers": [{"up_to": None if t.up_to is None else str(t.up_to),
                         "price_wei": str(t.price_wei)} for t in r.tiers]}
             for r in tariff.prices),
            key=lambda r: (r["contract"], r["unit"])),
    }


def canonical_json(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_tariff(path: str | Path) -> Tariff:
    """Read a YAML or JSON tariff file; refuse it whole, naming the bad entry, if anything is off."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidTariff(f"tariff file {path} does not exist; pass --tariff with a YAML or JSON tariff "
                            "(see the README for an example)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidTariff(f"tariff file {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidTariff(f"tariff file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                            f"{exc}") from None
    return parse_tariff(data, str(path))
