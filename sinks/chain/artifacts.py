"""The compiled contracts (contracts/build/<Name>.json) and the decoding of their reverts.

The artifacts are committed, so deploying needs no compiler; `make contracts` rebuilds them and
tests/chain/test_artifacts.py proves the committed ones match the sources.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector

from settlement.errors import InvariantBroken

BUILD_DIR = Path(__file__).resolve().parents[2] / "contracts" / "build"

REGISTRY = "SettlementRegistry"
COUNTER_NFT = "CounterNFT"
TEST_TOKEN = "TestToken"
TEST_WALLET = "TestWallet"
"""A minimal ERC-1271 wallet (tests only)."""
FEE_TOKEN = "FeeToken"
"""An ERC-20 that burns 1% of each transfer (tests only: the registry refuses it)."""

# Solidity's built-in revert payloads.
_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")
_PANIC = function_signature_to_4byte_selector("Panic(uint256)")


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    """Contract name, e.g. SettlementRegistry."""
    abi: list
    """The contract's ABI (functions, events, errors)."""
    bytecode: str
    """Creation bytecode, 0x-prefixed."""
    compiler: str
    """solc version it was built with."""
    input_hash: str
    """sha256 of the compiler settings and every source file that went in."""


@functools.cache
def load_artifact(name: str) -> Artifact:
    path = BUILD_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvariantBroken(f"contract artifact {path} is missing; rebuild it with `make contracts`") from None
    return Artifact(name=data["contractName"], abi=data["abi"], bytecode=data["bytecode"],
                    compiler=data["compiler"]["version"], input_hash=data["inputHash"])


def _signature(entry: dict) -> str:
    return f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple'):]}"
    return param["type"]


@functools.cache
def _known_errors() -> dict[bytes, dict]:
    """Selector -> ABI entry of every custom error our contracts (and OpenZeppelin's) can raise."""
    errors = {}
    for name in sorted(path.stem for path in BUILD_DIR.glob("*.json")):  # every compiled contract
        for entry in load_artifact(name).abi:
            if entry["type"] == "error":
                errors[function_signature_to_4byte_selector(_signature(entry))] = entry
    return errors


def _format_value(value) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def decode_revert(data) -> str:
    """A readable reason for revert data: `BatchOutOfOrder(batch=3, expected=2)`.

    Unknown payloads are shown as hex, so nothing is lost.
    """
    raw = _revert_bytes(data)
    if not raw:
        return "reverted without a reason"
    selector, payload = raw[:4], raw[4:]
    try:
        if selector == _ERROR_STRING:
            return f"Error({abi_decode(['string'], payload)[0]!r})"
        if selector == _PANIC:
            return f"Panic(0x{abi_decode(['uint256'], payload)[0]:02x})"
        entry = _known_errors().get(selector)
        if entry is not None:
            values = abi_decode([_abi_type(i) for i in entry["inputs"]], payload)
            args = ", ".join(f"{i['name']}={_format_value(v)}" for i, v in zip(entry["inputs"], values))
            return f"{entry['name']}({args})"
    except DecodingError:
        pass
    return f"unknown revert data 0x{raw.hex()}"


def _revert_bytes(data) -> bytes:
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        data = data.get("data")
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    text = str(data)
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return text.encode()
    return text.encode()
