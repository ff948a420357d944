"""The ledger head (SPEC §2): what an output directory has settled, and the rules for
continuing it. The files behind it are read and written by sinks/ledger_store.py."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from settlement.errors import LedgerMismatch, MeterrootError


class LedgerDamaged(MeterrootError, RuntimeError):
    """A file the ledger relies on is missing, truncated or changed (exit 1): continuing would
    settle events twice or lose them. The message names the file and how to restore it."""


@dataclass(frozen=True)
class FileDigest:
    """What a file of the ledger must still be."""
    size: int
    """Its length in bytes."""
    sha256: str
    """sha256 of its bytes, lowercase hex."""

    @classmethod
    def from_json(cls, data: dict) -> "FileDigest":
        size, sha256 = data["size"], data["sha256"]
        if (not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(sha256, str)
                or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256)):
            raise ValueError(f"file digest {data!r} is not {{size: bytes, sha256: 64 hex digits}}")
        return cls(size, sha256)


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
    files: dict = field(default_factory=dict)
    """{path relative to OUT: FileDigest} of every file the ledger relies on (settled events,
    snapshots, tariff) and every output of every settled batch (lines, quarantine, tree,
    manifest): what a run and `meterroot verify` check before trusting the directory."""

    def to_json(self) -> dict:
        data = asdict(self)
        data["roots"] = {str(k): v for k, v in sorted(self.roots.items())}
        data["files"] = {name: {"size": d.size, "sha256": d.sha256} for name, d in sorted(self.files.items())}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LedgerHead":
        return cls(batch=int(data["batch"]), epoch_seconds=int(data["epoch_seconds"]),
                   chain_id=int(data["chain_id"]), registry=data["registry"],
                   tariff_hash=data.get("tariff_hash", ""),
                   roots={int(k): v for k, v in data.get("roots", {}).items()},
                   files={str(name): FileDigest.from_json(d) for name, d in data.get("files", {}).items()})


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
