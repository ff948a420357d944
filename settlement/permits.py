"""Spend permits (SPEC §6 v2): a consumer's EIP-712 consent that a payee may collect up to a
cumulative amount from its deposit, over all batches.

    domain  {name: "meterroot", version: "2", chainId, verifyingContract: registry}
    type    SpendPermit(address consumer,address payee,uint256 cumulativeAmount)

Pure: typed data, signing with a local key and checking an EOA signature (eth_account). An
ERC-1271 wallet's signature can only be checked by asking the wallet, on chain
(sinks/chain/permit_check.py). One permit is one line of a permit file (`to_json` / `from_json`):

    {"consumer": "0x…", "payee": "0x…", "cumulative_amount": "1000",
     "chain_id": 31337, "registry": "0x…", "signature": "0x…"}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import is_address, to_checksum_address

from settlement.errors import UsageError
from settlement.keccak import keccak256

DOMAIN_NAME = "meterroot"
DOMAIN_VERSION = "2"
PRIMARY_TYPE = "SpendPermit"
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    PRIMARY_TYPE: [
        {"name": "consumer", "type": "address"},
        {"name": "payee", "type": "address"},
        {"name": "cumulativeAmount", "type": "uint256"},
    ],
}
UINT256_MAX = 2**256 - 1

# secp256k1 group order; OpenZeppelin's ECDSA refuses s in the upper half (malleable copies).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ECDSA_SIGNATURE_BYTES = 65

FIELDS = ("consumer", "payee", "cumulative_amount", "chain_id", "registry", "signature")
"""The keys of one permit line, in the order they are written."""


class InvalidPermit(UsageError):
    """A permit line is ill-formed, or its signature is not the consumer's for this registry."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        """One of the REASONS: what a quarantined permit is filed under."""


REASONS = ("malformed", "bad_address", "bad_amount", "wrong_chain", "wrong_registry",
           "bad_signature", "unverified_wallet")
"""Why a permit is quarantined, in the order they are checked."""


@dataclass(frozen=True)
class SpendPermit:
    """One signed SpendPermit."""

    consumer: str
    """Whose deposit pays (EIP-55)."""
    payee: str
    """Who may collect (a provider or the treasury, EIP-55)."""
    cumulative_amount: int
    """Wei the payee may collect from the consumer in total, over all batches."""
    chain_id: int
    """Chain id of the EIP-712 domain."""
    registry: str
    """SettlementRegistry the permit is for: the domain's verifyingContract (EIP-55)."""
    signature: bytes
    """65-byte r‖s‖v ECDSA signature, or an ERC-1271 wallet's signature bytes."""

    @property
    def key(self) -> tuple[str, str]:
        """(consumer, payee): a higher permit of the same key supersedes a lower one."""
        return self.consumer, self.payee

    def typed_data(self) -> dict:
        return typed_data(self.chain_id, self.registry, self.consumer, self.payee, self.cumulative_amount)

    def digest(self) -> bytes:
        """The EIP-712 hash the signature signs (what ERC-1271 `isValidSignature` is asked)."""
        return eip712_digest(self.chain_id, self.registry, self.consumer, self.payee, self.cumulative_amount)

    def recover_signer(self) -> str | None:
        """The EOA whose ECDSA signature this is; None when it is no valid ECDSA signature
        (wrong length, malleable upper-half s, bad v, or no point recovers)."""
        return recover_signer(self.digest_message(), self.signature)

    def digest_message(self) -> SignableMessage:
        return encode_typed_data(full_message=self.typed_data())

    def to_json(self) -> dict:
        return {
            "consumer": self.consumer,
            "payee": self.payee,
            "cumulative_amount": str(self.cumulative_amount),
            "chain_id": self.chain_id,
            "registry": self.registry,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data) -> "SpendPermit":
        """Parse one permit line's object; InvalidPermit (malformed / bad_address / bad_amount)."""
        if not isinstance(data, dict):
            raise InvalidPermit("malformed", f"a permit is a JSON object, not {type(data).__name__}")
        missing = [name for name in FIELDS if data.get(name) is None]
        if missing:
            raise InvalidPermit("malformed", f"missing field(s) {', '.join(missing)}; a permit has "
                                             f"{', '.join(FIELDS)}")
        return cls(
            consumer=_address(data["consumer"], "consumer"),
            payee=_address(data["payee"], "payee"),
            cumulative_amount=_uint(data["cumulative_amount"], "cumulative_amount", "bad_amount"),
            chain_id=_uint(data["chain_id"], "chain_id", "malformed"),
            registry=_address(data["registry"], "registry"),
            signature=_hex_bytes(data["signature"]),
        )


def typed_data(chain_id: int, registry: str, consumer: str, payee: str, cumulative_amount: int) -> dict:
    """The full EIP-712 message, as `eth_account`'s `encode_typed_data(full_message=…)` and a
    wallet's `eth_signTypedData_v4` take it."""
    return {
        "types": TYPES,
        "primaryType": PRIMARY_TYPE,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": to_checksum_address(registry)},
        "message": {"consumer": to_checksum_address(consumer), "payee": to_checksum_address(payee),
                    "cumulativeAmount": cumulative_amount},
    }


def eip712_digest(chain_id: int, registry: str, consumer: str, payee: str, cumulative_amount: int) -> bytes:
    """keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash): the hash that is signed."""
    message = encode_typed_data(full_message=typed_data(chain_id, registry, consumer, payee, cumulative_amount))
    return keccak256(b"\x19" + message.version + message.header + message.body)


def sign_permit(signer, chain_id: int, registry: str, consumer: str, payee: str,
                cumulative_amount: int) -> SpendPermit:
    """Sign a SpendPermit with a local key (the consumer's, its wallet owner's, or a signer it
    authorised): `signer` is the private key, or an eth_account LocalAccount."""
    private_key = getattr(signer, "key", signer)
    if not 0 <= cumulative_amount <= UINT256_MAX:
        raise UsageError(f"a permit's cumulative amount must fit in uint256, not {cumulative_amount}")
    data = typed_data(chain_id, registry, consumer, payee, cumulative_amount)
    signed = Account.sign_typed_data(private_key, full_message=data)
    return SpendPermit(consumer=to_checksum_address(consumer), payee=to_checksum_address(payee),
                       cumulative_amount=cumulative_amount, chain_id=chain_id,
                       registry=to_checksum_address(registry), signature=bytes(signed.signature))


def recover_signer(message: SignableMessage, signature: bytes) -> str | None:
    if len(signature) != ECDSA_SIGNATURE_BYTES:
        return None
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if s > _SECP256K1_N // 2 or v not in (27, 28):  # what OpenZeppelin's ECDSA.recover refuses
        return None
    try:
        return Account.recover_message(message, signature=signature)
    except (ValueError, TypeError):  # eth_keys' BadSignature is a ValueError
        return None


def check_domain(permit: SpendPermit, chain_id: int, registry: str) -> None:
    """Refuse a permit signed for another chain or registry (it pays nothing here)."""
    if permit.chain_id != chain_id:
        raise InvalidPermit("wrong_chain", f"the permit is for chain id {permit.chain_id}, this output "
                                           f"settles on chain id {chain_id}; sign it for chain {chain_id}")
    if permit.registry.lower() != registry.lower():
        raise InvalidPermit("wrong_registry", f"the permit is for registry {permit.registry}, this output "
                                              f"settles on registry {to_checksum_address(registry)}; "
                                              f"sign it for that registry")


def check_eoa_signature(permit: SpendPermit) -> bool:
    """True when the consumer itself signed with its key; False when the signature is not an
    ECDSA signature of the consumer (it may still be the consumer's ERC-1271 wallet's)."""
    return permit.recover_signer() == permit.consumer


class SignatureOracle(Protocol):
    """What only the chain can answer about a signature (sinks/chain/permit_check.py)."""

    def has_code(self, address: str) -> bool:
        """True when `address` is a contract (an ERC-1271 wallet may be asked)."""

    def wallet_accepts(self, wallet: str, digest: bytes, signature: bytes) -> bool:
        """ERC-1271: does `wallet.isValidSignature(digest, signature)` return the magic value?"""

    def authorized_signer(self, consumer: str, signer: str) -> bool:
        """Has `consumer` authorised `signer` (`authorizeSigner`) to sign its permits?"""


EOA = "eoa"
WALLET = "erc1271"
AUTHORIZED = "authorized signer"


def verify_permit(permit: SpendPermit, chain_id: int, registry: str,
                  chain: SignatureOracle | None = None) -> str:
    """How the permit is signed (EOA, WALLET or AUTHORIZED), as the registry's
    SignatureChecker would accept it; InvalidPermit otherwise.

    Without `chain` only the consumer's own ECDSA signature can be checked: a wallet's
    signature, or one by a signer the consumer authorised, needs the chain to ask."""
    check_domain(permit, chain_id, registry)
    signer = permit.recover_signer()
    if signer == permit.consumer:
        return EOA
    if chain is None:
        by = f"it recovers to {signer}" if signer else "it is no valid ECDSA signature"
        raise InvalidPermit("unverified_wallet" if signer is None else "bad_signature",
                            f"the signature is not the consumer {permit.consumer}'s ({by}); if the consumer "
                            f"is an ERC-1271 wallet or authorised that signer, ingest it with --rpc-url "
                            f"so the chain can be asked")
    if chain.has_code(permit.consumer):
        if chain.wallet_accepts(permit.consumer, permit.digest(), permit.signature):
            return WALLET
        raise InvalidPermit("bad_signature", f"the consumer {permit.consumer} is a contract whose "
                                             f"ERC-1271 isValidSignature refuses this signature")
    if signer is not None and chain.authorized_signer(permit.consumer, signer):
        return AUTHORIZED
    by = f"it is signed by {signer}" if signer else "it is no valid ECDSA signature"
    raise InvalidPermit("bad_signature", f"the signature is not the consumer {permit.consumer}'s ({by}, "
                                         f"which the consumer has not authorised); have the consumer sign it")


def _address(value, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidPermit("bad_address", f"{what} {value!r} is not an address (0x + 40 hex digits, "
                                           f"EIP-55 if mixed case)")
    return to_checksum_address(value)


def _uint(value, what: str, reason: str) -> int:
    """A JSON integer or a string of decimal digits (amounts beyond 2^53 need the string)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidPermit(reason, f"{what} {value!r} is not a whole number (an integer or a string of digits)")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InvalidPermit(reason, f"{what} {value!r} is not a string of decimal digits")
        value = int(value)
    if not 0 <= value <= UINT256_MAX:
        raise InvalidPermit(reason, f"{what} {value} does not fit in uint256")
    return value


def _hex_bytes(value) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidPermit("bad_signature", f"signature {value!r} is not 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidPermit("bad_signature", f"signature {value!r} is not hex") from None
    if not raw:
        raise InvalidPermit("bad_signature", "the signature is empty")
    return raw
