"""The ledger head (SPEC §2): what an output directory has settled, and the rules for
continuing it. The files behind it are read and written by sinks/ledger_store.py."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from settlement.errors import LedgerMismatch


@dataclass(frozen=True)
class LedgerHead:
    batch: int
    """The last settled batch; 0 for an empty ledger."""
    epoch_seconds: int
    """Epoch length every settled quantity was priced with; a ledger keeps it for life."""
    chain_id: int
    """Chain id the leaves name."""
    registry: str
    """Registry address (EIP-55) the leaves name."""
    tariff_hash: str = ""
    """Hash of the tariff of the last batch."""
    roots: dict = field(default_factory=dict)
    """{batch: root hex} of every settled batch."""

    def to_json(self) -> dict:
        data = asdict(self)
        data["roots"] = {str(k): v for k, v in sorted(self.roots.items())}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LedgerHead":
        return cls(batch=int(data["batch"]), epoch_seconds=int(data["epoch_seconds"]),
                   chain_id=int(data["chain_id"]), registry=data["registry"],
                   tariff_hash=data.get("tariff_hash", ""),
                   roots={int(k): v for k, v in data.get("roots", {}).items()})


def check_continuation(head: LedgerHead | None, epoch_seconds: int, chain_id: int, registry: str,
                       ledger_path: str) -> None:
    """Refuse to extend a ledger with a configuration that would change settled money."""
    if head is None:
        return
    if head.epoch_seconds != epoch_seconds:
        raise LedgerMismatch(
            f"the ledger in {ledger_path} was built with epoch_seconds {head.epoch_seconds} but the "
            f"tariff says {epoch_seconds}; epochs already settled cannot be re-cut: use a tariff with "
            f"epoch_seconds: {head.epoch_seconds}, or a new --output directory")
    if head.chain_id != chain_id or head.registry.lower() != registry.lower():
        raise LedgerMismatch(
            f"the ledger in {ledger_path} settles for chain {head.chain_id} registry {head.registry}, "
            f"not chain {chain_id} registry {registry}; cumulative leaves cannot move to another "
            "registry: pass the same --chain-id and --registry, or a new --output directory")
