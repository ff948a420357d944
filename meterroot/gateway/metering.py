"""The metering table: what one request to the provider's service is worth, in tariff units.

A table (YAML or JSON) names the service the events bill (`contract`), the units every call
costs by JSON-RPC method, and a default rule for every method it does not list (and for bodies
that are not JSON-RPC at all). Compute units in the style of Pocket Network's relay table:

    contract: "0x00000000000000000000000000000000000E7c01"
    default: {request: 1, compute_unit: 20}
    methods:
      eth_chainId: {request: 1, compute_unit: 1}
      eth_call:    {request: 1, compute_unit: 21}

A JSON-RPC batch (an array of calls) costs the sum of its calls.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from settlement.addresses import AddressError, normalize_config_address
from settlement.errors import UsageError

UNIT_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_QUANTITY = 2**63 - 1
NOT_JSON_RPC = "-"
"""The method name a request without a readable JSON-RPC method is metered under."""


class InvalidMeteringTable(UsageError):
    """The metering table is unreadable or one of its entries breaks the format."""


Usage = tuple[tuple[str, int], ...]
"""(unit, quantity) pairs of one request, units in the table's order, quantities > 0."""


@dataclass(frozen=True)
class MeteringTable:
    """JSON-RPC method -> units of one call."""

    contract: str
    """EIP-55 address of the service consumed: the `contract` of every usage event."""
    default: Usage
    """Units of a call whose method the table does not list."""
    methods: dict[str, Usage]
    """Units per listed method."""

    def units_of_call(self, method: str) -> Usage:
        return self.methods.get(method, self.default)

    def meter(self, body: bytes) -> tuple[Usage, int]:
        """(usage, calls) of one HTTP request body: a JSON-RPC call, a batch of them, or
        anything else (metered by the default rule, as one call)."""
        try:
            payload = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, list) and payload:
            totals: dict[str, int] = {}
            for call in payload:
                for unit, quantity in self.units_of_call(_method(call)):
                    totals[unit] = totals.get(unit, 0) + quantity
            return tuple(totals.items()), len(payload)
        return self.units_of_call(_method(payload)), 1


def _method(call) -> str:
    method = call.get("method") if isinstance(call, dict) else None
    return method if isinstance(method, str) else NOT_JSON_RPC


def _usage(entry, where: str) -> Usage:
    if not isinstance(entry, dict) or not entry:
        raise InvalidMeteringTable(f"{where} must map units to quantities, e.g. {{request: 1, compute_unit: 20}}; "
                                   f"got {entry!r}")
    usage = []
    for unit, quantity in entry.items():
        if not isinstance(unit, str) or not UNIT_PATTERN.match(unit):
            raise InvalidMeteringTable(f"{where}: unit {unit!r} must be 1-64 chars of [A-Za-z0-9._:-]")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
            raise InvalidMeteringTable(f"{where}.{unit} must be a whole number from 1 to 2^63-1, got {quantity!r}")
        usage.append((unit, quantity))
    return tuple(usage)


def parse_metering_table(data, path: str = "metering table") -> MeteringTable:
    if not isinstance(data, dict):
        raise InvalidMeteringTable(f"{path} must be a mapping with contract, default and methods")
    unknown = set(data) - {"contract", "default", "methods"}
    if unknown:
        raise InvalidMeteringTable(f"{path} has unknown keys {sorted(unknown)}; allowed: contract, default, methods")
    try:
        contract, _ = normalize_config_address(data.get("contract"))
    except AddressError as exc:
        raise InvalidMeteringTable(f"{path}: contract must be the address of the service billed: {exc}") from None
    if "default" not in data:
        raise InvalidMeteringTable(f"{path} needs a default rule (units of a method it does not list)")
    methods_in = data.get("methods") or {}
    if not isinstance(methods_in, dict):
        raise InvalidMeteringTable(f"{path}: methods must map JSON-RPC method names to units")
    methods = {str(name): _usage(entry, f"{path}: methods.{name}") for name, entry in methods_in.items()}
    return MeteringTable(contract, _usage(data["default"], f"{path}: default"), methods)


def load_metering_table(path: str | Path) -> MeteringTable:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidMeteringTable(f"metering table {path} does not exist; pass --metering with a YAML or "
                                   f"JSON table (pipelines/defaults/metering.yaml is an example)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidMeteringTable(f"metering table {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidMeteringTable(f"metering table {path} is not valid YAML/JSON: {exc}") from None
    return parse_metering_table(data, f"metering table {path}")
