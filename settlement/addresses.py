"""EVM addresses: what SPEC §1 accepts and the EIP-55 form every output uses."""
from __future__ import annotations

import re
from functools import lru_cache

from settlement.keccak import keccak256_raw

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
_UPPER_NIBBLES = frozenset("89abcdef")


def to_checksum_address(text: str) -> str:
    """EIP-55 form of a 0x + 40-hex address (eth_utils.to_checksum_address, which costs ~7x as
    much: the batch job checksums every distinct consumer; equal on any input, tests hold)."""
    digits = text[2:].lower()
    nibbles = keccak256_raw(digits.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if n in _UPPER_NIBBLES else c for c, n in zip(digits, nibbles))


class AddressError(ValueError):
    """Why an address text is not accepted (the text is the detail of a `bad_address`)."""


@lru_cache(maxsize=1 << 16)
def normalize_address(text: str) -> str:
    """EIP-55 form of `text`; all-lowercase or all-uppercase hex is accepted, mixed case must
    already be the checksum form (a mixed-case typo would otherwise pass as another address)."""
    if not isinstance(text, str) or not _HEX40.fullmatch(text):
        raise AddressError(f"{text!r} is not 0x followed by 40 hex digits")
    digits = text[2:]
    checksummed = to_checksum_address("0x" + digits.lower())
    if digits != digits.lower() and digits != digits.upper() and digits != checksummed[2:]:
        raise AddressError(f"{text!r} has mixed case but fails the EIP-55 checksum "
                           f"(did you mean {checksummed}?)")
    return checksummed


def normalize_config_address(text: str) -> tuple[str, str | None]:
    """(EIP-55 form, warning or None) for an address typed into configuration (the tariff).

    Configuration is refused only for addresses that are not 40 hex digits; a mixed-case
    spelling that fails the checksum is accepted with a warning, because SPEC §3's own example
    treasury (0x…fEE5) is such a spelling and tariffs are written by hand from it."""
    try:
        return normalize_address(text), None
    except AddressError:
        if not isinstance(text, str) or not _HEX40.fullmatch(text):
            raise
        checksummed = to_checksum_address("0x" + text[2:].lower())
        return checksummed, f"{text} is not in EIP-55 checksum form; read as {checksummed}"

