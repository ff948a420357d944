"""Which key signs: `--private-key`, else METERROOT_PRIVATE_KEY, else anvil's first dev key on 31337.

A key is never printed or logged: errors about a key say what is wrong with it, not what it is.
"""
from __future__ import annotations

import os

from eth_account import Account
from eth_account.signers.local import LocalAccount

from settlement.errors import UsageError

KEY_ENV = "METERROOT_PRIVATE_KEY"
ANVIL_CHAIN_ID = 31337
DEV_CHAIN_IDS = frozenset({ANVIL_CHAIN_ID, 1337})
"""Chain ids of local development nodes (anvil, hardhat, ganache): test tokens and time travel."""

# Account 0 of the mnemonic every anvil node starts with ("test test ... junk"): published in
# Foundry's documentation, funded on every fresh local chain, worthless anywhere else.
_ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def resolve_account(private_key: str | None, chain_id: int) -> LocalAccount:
    """The account that signs this command's transactions."""
    key = private_key or os.environ.get(KEY_ENV)
    if key:
        return account_from_key(key)
    if chain_id == ANVIL_CHAIN_ID:
        return Account.from_key(_ANVIL_DEV_KEY)
    raise UsageError(
        f"no key to sign with on chain {chain_id}: set {KEY_ENV} (or pass --private-key); "
        f"only a local anvil chain ({ANVIL_CHAIN_ID}) has a default development key")


def account_from_key(key: str) -> LocalAccount:
    try:
        return Account.from_key(key.strip())
    except ValueError:  # its message could echo the key: replace it, do not chain it
        raise UsageError(
            "the private key is not a 32-byte hex key (64 hex digits, optionally 0x-prefixed); "
            f"check --private-key or {KEY_ENV}") from None


def anvil_dev_account() -> LocalAccount:
    """Anvil's funded account 0 (deployer, committer and governance of local chains)."""
    return Account.from_key(_ANVIL_DEV_KEY)
