"""One deployed AvailabilityFeed (contracts/AvailabilityFeed.sol): deploy, submit a round, read.

The feed file (`oracle deploy --out FILE`) records where it is: chain id, feed address, the
provider it reports on, epoch_seconds, and the oracle and admin addresses.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3

from settlement.errors import UsageError
from sinks import atomic
from sinks.chain.deployment import checksum, contract
from sinks.chain.rpc import Sender, TxResult

FEED = "AvailabilityFeed"


@dataclass(frozen=True)
class FeedDeployment:
    chain_id: int
    """Chain the feed lives on."""
    feed: str
    """Its address (EIP-55)."""
    provider: str
    """The provider whose availability it reports."""
    epoch_seconds: int
    """Epoch length, as in the settlement tariff."""
    oracle: str
    """Who may write rounds (ORACLE_ROLE)."""
    admin: str
    """Who may grant and revoke roles (DEFAULT_ADMIN_ROLE)."""
    rpc_url: str | None = None
    """The node it was deployed through."""

    def write(self, path: Path) -> None:
        atomic.write_json(Path(path), asdict(self))

    @classmethod
    def read(cls, path: Path) -> "FeedDeployment":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except FileNotFoundError:
            raise UsageError(f"feed file {path} does not exist; write it with `meterroot oracle deploy --out`") from None
        except (ValueError, TypeError) as exc:
            raise UsageError(f"feed file {path} is not a feed deployment ({exc})") from None


@dataclass(frozen=True)
class Round:
    round_id: int
    answer: int
    """Availability in basis points."""
    started_at: int
    """Start of the epoch reported."""
    updated_at: int
    """When the round was written."""


def deploy_feed(sender: Sender, provider: str, epoch_seconds: int, *, oracle: str | None = None,
                admin: str | None = None, description: str | None = None,
                rpc_url: str | None = None) -> FeedDeployment:
    provider = checksum(provider, "--provider")
    oracle = checksum(oracle, "--oracle") if oracle else sender.address
    admin = checksum(admin, "--admin") if admin else sender.address
    if not 0 < epoch_seconds < 2**64:
        raise UsageError(f"--epoch-seconds must be a positive number of seconds, got {epoch_seconds}")
    text = description or f"meterroot availability of {provider} (bps per epoch of {epoch_seconds} s)"
    result = sender.send(contract(sender.w3, FEED).constructor(admin, oracle, provider, epoch_seconds, text),
                         f"deploy {FEED} for {provider}")
    return FeedDeployment(chain_id=sender.chain_id, feed=result.receipt["contractAddress"], provider=provider,
                          epoch_seconds=epoch_seconds, oracle=oracle, admin=admin, rpc_url=rpc_url)


class Feed:
    def __init__(self, w3: Web3, deployment: FeedDeployment, sender: Sender | None = None):
        self.w3 = w3
        self.deployment = deployment
        self.sender = sender
        self.contract = contract(w3, FEED, deployment.feed)

    def require_code(self) -> "Feed":
        if not self.w3.eth.get_code(self.deployment.feed):
            raise UsageError(f"no contract at feed {self.deployment.feed} on chain {self.deployment.chain_id}")
        return self

    def round_of_epoch(self, epoch: int) -> Round | None:
        round_id = self.contract.functions.roundOfEpoch(epoch).call()
        return self.round(round_id) if round_id else None

    def round(self, round_id: int) -> Round:
        rid, answer, started, updated, _ = self.contract.functions.getRoundData(round_id).call()
        return Round(rid, answer, started, updated)

    def latest(self) -> Round | None:
        latest = self.contract.functions.latestRound().call()
        return self.round(latest) if latest else None

    def submit(self, epoch: int, availability_bps: int) -> TxResult:
        if self.sender is None:
            raise UsageError("this feed was opened read-only; pass a key to write rounds")
        return self.sender.send(self.contract.functions.submit(epoch, availability_bps),
                                f"submit epoch {epoch} = {availability_bps} bps to feed {self.deployment.feed}")
