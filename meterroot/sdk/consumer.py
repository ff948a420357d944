"""A consumer with a wallet key and a deposit: its chain actions, its meter and its permits."""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from meterroot.sdk.meter import Meter
from settlement.errors import UsageError
from settlement.permits import SpendPermit, sign_permit
from settlement.tariff import Tariff, load_tariff

DEFAULT_TARIFF = Path(__file__).resolve().parents[2] / "pipelines" / "defaults" / "tariff.yaml"
KEYSTORE_PASSWORD_ENV = "METERROOT_KEYSTORE_PASSWORD"


@dataclass(frozen=True)
class Balance:
    """The consumer's money, as the chain holds it."""

    deposit: int
    """Deposited and not yet paid out or withdrawn."""
    available: int
    """Deposit minus the pending withdrawal: what gateways serve against."""
    pending_withdrawal: int
    """A requested withdrawal not yet withdrawn (0: none)."""
    unlock_at: int
    """When that withdrawal may be withdrawn (0: none)."""
    wallet: int
    """Tokens in the wallet itself."""


def load_account(key: str | None = None, keystore: str | Path | None = None,
                 password: str | None = None) -> LocalAccount:
    """The consumer's account from a hex private key, or from an encrypted JSON keystore
    (password given or in METERROOT_KEYSTORE_PASSWORD)."""
    if (key is None) == (keystore is None):
        raise UsageError("give the consumer either key=<hex private key> or keystore=<keystore JSON file>")
    if key is not None:
        from sinks.chain.keys import account_from_key
        return account_from_key(key)
    password = password if password is not None else os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        raise UsageError(f"the keystore {keystore} needs its password: pass password= or set {KEYSTORE_PASSWORD_ENV}")
    try:
        return Account.from_key(Account.decrypt(json.loads(Path(keystore).read_text()), password))
    except FileNotFoundError:
        raise UsageError(f"keystore file {keystore} does not exist") from None
    except ValueError:  # wrong password or not a keystore; the message never holds the key
        raise UsageError(f"keystore {keystore} cannot be opened: wrong password or not a keystore file") from None


class Consumer:
    """`Consumer(key="0x…", registry="0x…", rpc_url="http://…")`, then `deposit`, `sign_in`,
    `balance`, `counter`, `request_withdrawal`.

    Every session of this consumer records its receipts in one meter; `sign_permits()` signs,
    for every payee owed more than its last permit, a SpendPermit for the cumulative amount and
    appends them to `permit_file` (the permit file form of `meterroot permits`).
    """

    def __init__(self, key: str | None = None, *, keystore: str | Path | None = None, password: str | None = None,
                 registry: str, rpc_url: str, tariff: str | Path | Tariff | None = None,
                 permit_file: str | Path | None = None):
        from sinks.chain.consumer_wallet import ConsumerWallet
        from sinks.chain.rpc import connect
        self.account = load_account(key, keystore, password)
        self.w3 = connect(rpc_url)
        self.rpc_url = rpc_url
        self.wallet = ConsumerWallet(self.w3, registry, self.account)
        self.registry = self.wallet.registry
        self.chain_id = self.w3.eth.chain_id
        self.tariff = tariff if isinstance(tariff, Tariff) else load_tariff(tariff or DEFAULT_TARIFF)
        self.meter = Meter(self.tariff)
        self.permit_file = Path(permit_file) if permit_file is not None else None
        self._signed: dict[str, int] = {}
        self._permits: dict[str, SpendPermit] = {}
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.account.address

    # ------------------------------------------------------------------ chain
    def deposit(self, amount: int, *, mint: bool = False) -> str:
        """Deposit `amount` wei of the registry's token; the tx hash. `mint`: test token only."""
        return self.wallet.deposit(amount, mint=mint).tx_hash

    def request_withdrawal(self, amount: int) -> str:
        return self.wallet.request_withdrawal(amount).tx_hash

    def withdraw(self) -> str:
        return self.wallet.withdraw().tx_hash

    def balance(self) -> Balance:
        s = self.wallet.standing()
        return Balance(s.deposit, s.available, s.pending_withdrawal, s.unlock_at, self.wallet.token_balance())

    def collected(self, payee: str) -> int:
        """What `payee` has collected from this consumer so far."""
        return self.wallet.collected(payee)

    def permitted(self, payee: str) -> int:
        """The permit amount the registry holds for `payee`."""
        return self.wallet.permitted(payee)

    def counter(self):
        """The consumer's Counter NFT (token id, wei paid, claims, last batch, tokenURI metadata);
        None before its first deposit."""
        return self.wallet.counter()

    # ------------------------------------------------------------------ meter and permits
    def owed(self) -> dict[str, int]:
        """Payee -> cumulative wei owed for everything metered so far (SPEC §4)."""
        return self.meter.owed()

    def sign_permits(self) -> list[SpendPermit]:
        """SpendPermits for every payee owed more than it was last permitted; appended to
        `permit_file`. Returns the new ones (the latest of every payee is `latest_permits()`)."""
        with self._lock:
            fresh = []
            for payee, amount in sorted(self.owed().items()):
                if amount > self._signed.get(payee, 0):
                    permit = sign_permit(self.account.key, self.chain_id, self.registry, self.address, payee, amount)
                    fresh.append(permit)
                    self._signed[payee] = amount
                    self._permits[payee] = permit
            if fresh and self.permit_file is not None:
                self._append_permits(fresh)
            return fresh

    def latest_permits(self) -> list[SpendPermit]:
        with self._lock:
            return [self._permits[p] for p in sorted(self._permits)]

    def _append_permits(self, permits: list[SpendPermit]) -> None:
        """One write of whole lines, fsynced: a reader sees each line whole or not at all."""
        self.permit_file.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(json.dumps(p.to_json(), separators=(",", ":")).encode() + b"\n" for p in permits)
        with open(self.permit_file, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    # ------------------------------------------------------------------ gateways
    def sign_in(self, gateway_url: str, *, lifetime_seconds: int = 3600, permit_every_requests: int = 100,
                permit_every_seconds: float = 30.0, timeout: float = 30.0):
        """A Session with the gateway at `gateway_url`: signs an EIP-4361 message for the
        gateway's nonce, domain and chain; signs permits every N requests or S seconds."""
        from meterroot.sdk.session import Session
        return Session.open(self, gateway_url, lifetime_seconds=lifetime_seconds,
                            permit_every_requests=permit_every_requests,
                            permit_every_seconds=permit_every_seconds, timeout=timeout)
