"""The manifest of a batch (SPEC §5): what a batch is, where its numbers came from, and the
counts that prove nothing was lost. Deterministic: no wall clock, sorted keys."""
from __future__ import annotations

from importlib import metadata

from settlement.merkle import SETTLEMENT_LEAF_ENCODING
from settlement.tariff import Tariff

FORMAT = "meterroot-manifest-v1"
CATEGORIES = ("read", "accepted", "duplicates", "quarantined")


def code_version() -> str:
    try:
        return f"meterroot {metadata.version('meterroot')}"
    except metadata.PackageNotFoundError:
        return "meterroot (not installed)"


def input_counts(counts: list, digests: dict[str, str], paths: list[str]) -> list[dict]:
    """Per input file: path, sha256 and its four counts (zero where nothing was counted)."""
    per_source = {path: dict.fromkeys(CATEGORIES, 0) for path in paths}
    for source, category, n in counts:
        per_source.setdefault(source, dict.fromkeys(CATEGORIES, 0))[category] += n
    return [{"path": path, "sha256": digests.get(path, ""), **per_source[path]} for path in sorted(per_source)]


def totals(inputs: list[dict]) -> dict[str, int]:
    return {category: sum(entry[category] for entry in inputs) for category in CATEGORIES}


def build_manifest(summary: dict, tariff: Tariff, chain_id: int, registry: str, inputs: list[dict],
                   previous_root: str | None) -> dict:
    return {
        "format": FORMAT,
        "batch": summary["batch"],
        "root": summary["root"],
        "previous_root": previous_root,
        "leaf_count": summary["leaf_count"],
        "leaf_encoding": list(SETTLEMENT_LEAF_ENCODING),
        "total": summary["total"],
        "protocol_fee_total": summary["protocol_fee_total"],
        "lines": summary["lines"],
        "epochs": summary["epochs"],
        "epoch_seconds": tariff.epoch_seconds,
        "tariff_hash": tariff.hash,
        "tariff_version": tariff.version,
        "chain_id": chain_id,
        "registry": registry,
        "inputs": inputs,
        "counts": totals(inputs),
        "code_version": code_version(),
    }
