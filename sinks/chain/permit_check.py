"""Asking the chain what only it knows about a permit's signature (settlement.permits.SignatureOracle).

ERC-1271: a contract consumer (a smart wallet) says itself whether a signature is its own,
`isValidSignature(digest, signature) == 0x1626ba7e`, as OpenZeppelin's SignatureChecker asks it.
"""
from __future__ import annotations

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

ERC1271_MAGIC = bytes.fromhex("1626ba7e")
ERC1271_ABI = [{
    "type": "function", "name": "isValidSignature", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "magicValue", "type": "bytes4"}],
}]


class ChainSignatureOracle:
    """Answers settlement.permits.SignatureOracle from a node; `registry` (a sinks.chain.registry
    Registry, optional) answers which signers a consumer authorised."""

    def __init__(self, w3: Web3, registry=None):
        self.w3 = w3
        self.registry = registry

    def has_code(self, address: str) -> bool:
        return bool(self.w3.eth.get_code(to_checksum_address(address)))

    def wallet_accepts(self, wallet: str, digest: bytes, signature: bytes) -> bool:
        contract = self.w3.eth.contract(address=to_checksum_address(wallet), abi=ERC1271_ABI)
        try:
            answer = contract.functions.isValidSignature(digest, signature).call()
        except (ContractLogicError, Web3Exception, ValueError):  # a revert or no such function: not valid
            return False
        return bytes(answer) == ERC1271_MAGIC

    def authorized_signer(self, consumer: str, signer: str) -> bool:
        if self.registry is None:
            return False
        return self.registry.is_authorized_signer(consumer, signer)


class RegistryPermits:
    """The permit views of a v2 SettlementRegistry, from its address alone (no deployment file)."""

    def __init__(self, w3: Web3, address: str):
        from sinks.chain.artifacts import REGISTRY
        from sinks.chain.deployment import contract

        self.contract = contract(w3, REGISTRY, address)

    def permitted(self, consumer: str, payee: str) -> int:
        return self.contract.functions.permitted(to_checksum_address(consumer), to_checksum_address(payee)).call()

    def is_authorized_signer(self, consumer: str, signer: str) -> bool:
        return bool(self.contract.functions.isAuthorizedSigner(
            to_checksum_address(consumer), to_checksum_address(signer)).call())


def registry_reader(w3: Web3, address: str) -> RegistryPermits | None:
    """The registry's permit views; None when no contract lives at `address` on this node."""
    if not w3.eth.get_code(to_checksum_address(address)):
        return None
    return RegistryPermits(w3, address)
