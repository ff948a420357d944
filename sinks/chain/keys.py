"""Which key signs: an encrypted keystore, or (local chains only) a raw key.

    --keystore FILE [--password-file FILE]   a Web3 Secret Storage v3 file (what geth, foundry's
                                             `cast wallet` and MetaMask export); the password is
                                             read from the file, else asked on the terminal
    --private-key HEX                        local development chain (31337) only: argv is
                                             readable by every local user (`ps`, /proc/*/cmdline)
    METERROOT_PRIVATE_KEY                    the same key from the environment
    (nothing)                                anvil's first development key, on 31337 only

A key or password is never printed, logged or stored: errors about one say what is wrong with
it, never what it is, and do not chain the library's exception (its text could carry it).
"""
from __future__ import annotations

import getpass
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from settlement.errors import UsageError

KEY_ENV = "METERROOT_PRIVATE_KEY"
ANVIL_CHAIN_ID = 31337
DEV_CHAIN_IDS = frozenset({ANVIL_CHAIN_ID, 1337})
"""Chain ids of local development nodes (anvil, hardhat, ganache): test tokens and time travel."""

# Account 0 of the mnemonic every anvil node starts with ("test test ... junk"): published in
# Foundry's documentation, funded on every fresh local chain, worthless anywhere else.
_ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

_KEY_HEX = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

KEYSTORE_KDFS = ("scrypt", "pbkdf2")
"""Key derivation functions a new keystore can use (scrypt is what geth and foundry write)."""


def resolve_account(private_key: str | None, chain_id: int, *, keystore: Path | None = None,
                    password_file: Path | None = None) -> LocalAccount:
    """The account that signs this command's transactions."""
    if keystore is not None:
        if private_key:
            raise UsageError("pass either --keystore or --private-key, not both")
        return load_keystore(keystore, read_password(password_file, keystore))
    if private_key:
        if chain_id != ANVIL_CHAIN_ID:
            raise UsageError(
                f"--private-key is refused on chain {chain_id}: a key on the command line is readable "
                f"by every local user (ps, /proc/<pid>/cmdline) and lands in shell history; use "
                f"--keystore FILE --password-file FILE (create one with `meterroot chain key new` or "
                f"`meterroot chain key import`)")
        return account_from_key(private_key, "--private-key")
    key = os.environ.get(KEY_ENV)
    if key:
        return account_from_key(key, KEY_ENV)
    if chain_id == ANVIL_CHAIN_ID:
        return Account.from_key(_ANVIL_DEV_KEY)
    raise UsageError(
        f"no key to sign with on chain {chain_id}: pass --keystore FILE --password-file FILE "
        f"(or set {KEY_ENV}); only a local anvil chain ({ANVIL_CHAIN_ID}) has a default development key")


def parse_private_key(key: str, what: str = "the private key") -> bytes:
    """The 32 bytes of a hex key: exactly 64 hex digits, optionally 0x-prefixed, in 1 .. n-1.

    Stricter than eth_account, which left-pads a short key into another, valid-looking account.
    """
    text = key.strip()
    if not _KEY_HEX.fullmatch(text):
        raise UsageError(f"{what} is not a 32-byte hex key (exactly 64 hex digits, optionally "
                         f"0x-prefixed; it has {len(text.removeprefix('0x'))} characters)")
    raw = bytes.fromhex(text.removeprefix("0x").removeprefix("0X"))
    if not 0 < int.from_bytes(raw, "big") < _SECP256K1_ORDER:
        raise UsageError(f"{what} is outside the secp256k1 key range (zero or too large)")
    return raw


def account_from_key(key: str, what: str = "the private key") -> LocalAccount:
    return Account.from_key(parse_private_key(key, what))


def anvil_dev_account() -> LocalAccount:
    """Anvil's funded account 0 (deployer, committer and governance of local chains)."""
    return Account.from_key(_ANVIL_DEV_KEY)


# ------------------------------------------------------------------------------- keystores
def read_password(password_file: Path | None, keystore: Path) -> str:
    """The keystore password: the file's first line, else a prompt when stdin is a terminal."""
    if password_file is not None:
        try:
            text = Path(password_file).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read --password-file {password_file} ({exc.strerror})") from None
        password = text.splitlines()[0] if text else ""
        if not password:
            raise UsageError(f"--password-file {password_file} is empty; write the keystore's password in it")
        return password
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"password for {keystore}: ")
    raise UsageError(f"no password for --keystore {keystore}: pass --password-file FILE (no terminal to ask on)")


def read_keystore(path: Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--keystore {path} does not exist; create one with `meterroot chain key new`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--keystore {path} is not a JSON keystore ({type(exc).__name__})") from None
    crypto = data.get("crypto") or data.get("Crypto") if isinstance(data, dict) else None
    if not isinstance(crypto, dict) or data.get("version") != 3:
        raise UsageError(f"--keystore {path} is not a Web3 Secret Storage v3 keystore "
                         f"(needs \"version\": 3 and a \"crypto\" section)")
    return data


def load_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypt a v3 keystore (scrypt or pbkdf2, as geth, foundry, MetaMask or eth_account write it)."""
    data = read_keystore(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        reason = "wrong password" if "MAC mismatch" in str(exc) else "cannot be decrypted"
        raise UsageError(f"--keystore {path}: {reason}; check --password-file") from None
    except (KeyError, TypeError):
        raise UsageError(f"--keystore {path} has missing or malformed crypto parameters") from None
    account = Account.from_key(key)
    stated = data.get("address")
    if stated and to_checksum_address("0x" + str(stated).lower().removeprefix("0x")) != account.address:
        raise UsageError(f"--keystore {path} says address {stated} but its key is {account.address}; "
                         f"the file was altered")
    return account


def keystore_address(path: Path, password_file: Path | None = None) -> str:
    """The keystore's address: its "address" field, else (foundry writes none) by decrypting it."""
    data = read_keystore(path)
    stated = data.get("address")
    if stated and password_file is None:
        return to_checksum_address("0x" + str(stated).lower().removeprefix("0x"))
    return load_keystore(path, read_password(password_file, path)).address


def write_keystore(path: Path, key: bytes, password: str, *, kdf: str = "scrypt",
                   iterations: int | None = None) -> str:
    """Encrypt `key` into a new v3 keystore at `path` (mode 0600, never overwritten); its address."""
    path = Path(path)
    if path.exists():
        raise UsageError(f"--keystore {path} exists; keystores are never overwritten: choose another file")
    if kdf not in KEYSTORE_KDFS:
        raise UsageError(f"--kdf {kdf!r} is not one of {', '.join(KEYSTORE_KDFS)}")
    if iterations is not None and (iterations < 2 or (kdf == "scrypt" and iterations & (iterations - 1))):
        raise UsageError(f"--kdf-iterations {iterations}: scrypt needs a power of two, pbkdf2 at least 2")
    data = Account.encrypt(key, password, kdf=kdf, iterations=iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
        handle.write("\n")
    try:
        os.link(tmp, path)  # fails if someone created `path` meanwhile: never overwrite
    except FileExistsError:
        raise UsageError(f"--keystore {path} exists; keystores are never overwritten") from None
    finally:
        os.unlink(tmp)
    return to_checksum_address("0x" + data["address"])
