"""EIP-712 SpendPermits (SPEC §6 v2): what a consumer signs so that a payee may collect from it.

    permit = sign_permit(consumer_account, chain_id, registry, consumer, payee, cumulative_amount)
    recover_signer(permit) == consumer_account.address

The domain is `{name: "meterroot", version: "2", chainId, verifyingContract: registry}` and the
type `SpendPermit(address consumer,address payee,uint256 cumulativeAmount)`, exactly as
SettlementRegistry.permitDigest computes it (tests/chain prove the two digests equal on a real
node). Only eth_account: no web3, no node. ERC-1271 wallets are checked on chain (the registry's
SignatureChecker); off chain `recover_signer` names the EOA key that signed.
"""
from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, to_checksum_address

from settlement.errors import UsageError

DOMAIN_NAME = "meterroot"
DOMAIN_VERSION = "2"
PRIMARY_TYPE = "SpendPermit"
TYPES = {
    "SpendPermit": [
        {"name": "consumer", "type": "address"},
        {"name": "payee", "type": "address"},
        {"name": "cumulativeAmount", "type": "uint256"},
    ],
}
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True)
class SpendPermit:
    """One signed consent: `payee` may collect up to `cumulative_amount` wei from `consumer` in
    total, on registry `registry` of chain `chain_id`."""

    chain_id: int
    """Chain id of the EIP-712 domain."""
    registry: str
    """The SettlementRegistry the permit is for (the domain's verifyingContract), EIP-55."""
    consumer: str
    """Whose deposit pays (EIP-55)."""
    payee: str
    """Who may collect (a provider or the treasury), EIP-55."""
    cumulative_amount: int
    """Total wei over all batches the payee may collect from the consumer."""
    signature: bytes
    """65-byte r||s||v signature (or whatever the consumer's ERC-1271 wallet accepts)."""

    def to_json(self) -> dict:
        """A JSON object: amounts as decimal strings, bytes as 0x hex."""
        return {"chain_id": self.chain_id, "registry": self.registry, "consumer": self.consumer,
                "payee": self.payee, "cumulative_amount": str(self.cumulative_amount),
                "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, data: dict) -> "SpendPermit":
        """The inverse of to_json; UsageError naming the bad field otherwise."""
        if not isinstance(data, dict):
            raise UsageError(f"a permit must be a JSON object, not {type(data).__name__}")
        try:
            amount, signature = str(data["cumulative_amount"]), str(data["signature"])
            chain_id = data["chain_id"]
            consumer, payee, registry = data["consumer"], data["payee"], data["registry"]
        except KeyError as exc:
            raise UsageError(f"a permit lacks the field {exc.args[0]!r}") from None
        if not amount.isdigit() or int(amount) > MAX_UINT256:
            raise UsageError(f"permit cumulative_amount {amount!r} is not a whole number of wei below 2^256")
        if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
            raise UsageError(f"permit chain_id {chain_id!r} is not a positive integer")
        if not signature.startswith("0x"):
            raise UsageError("permit signature must be 0x-prefixed hex")
        try:
            raw = bytes.fromhex(signature[2:])
        except ValueError:
            raise UsageError("permit signature is not hex") from None
        return cls(chain_id=chain_id, registry=_address(registry, "registry"),
                   consumer=_address(consumer, "consumer"), payee=_address(payee, "payee"),
                   cumulative_amount=int(amount), signature=raw)


def _address(value, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise UsageError(f"permit {what} {value!r} is not an address (0x + 40 hex, EIP-55 if mixed case)")
    return to_checksum_address(value)


def typed_data(chain_id: int, registry: str, consumer: str, payee: str, cumulative_amount: int) -> dict:
    """The EIP-712 structured data of a permit (eth_account's full-message form)."""
    if not 0 <= cumulative_amount <= MAX_UINT256:
        raise UsageError(f"a permit's cumulative amount must be 0..2^256-1 wei, not {cumulative_amount}")
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **TYPES,
        },
        "primaryType": PRIMARY_TYPE,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": _address(registry, "registry")},
        "message": {"consumer": _address(consumer, "consumer"), "payee": _address(payee, "payee"),
                    "cumulativeAmount": cumulative_amount},
    }


def digest(chain_id: int, registry: str, consumer: str, payee: str, cumulative_amount: int) -> bytes:
    """The 32-byte EIP-712 hash a permit signature signs (= SettlementRegistry.permitDigest)."""
    from eth_utils import keccak

    message = encode_typed_data(full_message=typed_data(chain_id, registry, consumer, payee, cumulative_amount))
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_permit(account, chain_id: int, registry: str, consumer: str, payee: str,
                cumulative_amount: int) -> SpendPermit:
    """`account` (the consumer, its ERC-1271 wallet's owner key, or an authorised signer) signs."""
    message = encode_typed_data(full_message=typed_data(chain_id, registry, consumer, payee, cumulative_amount))
    signed = account.sign_message(message)
    return SpendPermit(chain_id=chain_id, registry=to_checksum_address(registry),
                       consumer=to_checksum_address(consumer), payee=to_checksum_address(payee),
                       cumulative_amount=cumulative_amount, signature=bytes(signed.signature))


def recover_signer(permit: SpendPermit) -> str:
    """The EOA that signed `permit` (EIP-55); UsageError when the signature is malformed."""
    message = encode_typed_data(full_message=typed_data(
        permit.chain_id, permit.registry, permit.consumer, permit.payee, permit.cumulative_amount))
    try:
        return Account.recover_message(message, signature=permit.signature)
    except (ValueError, TypeError) as exc:  # eth_keys' BadSignature is a ValueError
        raise UsageError(f"the permit signature of {permit.consumer} -> {permit.payee} cannot be recovered "
                         f"({type(exc).__name__}); is it a 65-byte EOA signature?") from None
