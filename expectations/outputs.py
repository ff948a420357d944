"""Reading what a batch run left in OUT/ (SPEC §7): its batches, manifests, trees and tariff."""
from __future__ import annotations

import json
import re
from pathlib import Path

from settlement.errors import InvalidInput, InvalidTariff
from settlement.tariff import Tariff, load_tariff, parse_tariff

RECORDED_TARIFF = Path("ledger") / "tariff.json"
"""Where `meterroot batch` keeps the canonical JSON of the tariff it used."""


def ledger_head(out_dir: Path) -> int | None:
    """The last settled batch according to OUT/ledger/HEAD.json, None when there is no ledger.

    HEAD is the commit point of a run: files of a later batch are a run that did not finish.
    Read by sinks.layout, the one reader of HEAD.json."""
    from sinks import layout

    head = layout.read_head(out_dir)
    return head.batch if head is not None else None


def batch_numbers(out_dir: Path) -> list[int]:
    """Every committed batch with a manifest (none beyond the ledger HEAD), ascending."""
    head = ledger_head(out_dir)
    found = []
    for manifest in (Path(out_dir) / "batches").glob("*/manifest.json"):
        if re.fullmatch(r"[0-9]+", manifest.parent.name):
            batch = int(manifest.parent.name)
            if head is None or batch <= head:
                found.append(batch)
    return sorted(found)


def require_batches(out_dir: Path, wanted: list[int] | None) -> list[int]:
    """`wanted` (or every batch when None), each checked to exist in OUT."""
    existing = batch_numbers(out_dir)
    if wanted is None:
        return existing
    missing = [b for b in wanted if b not in existing]
    if missing:
        have = f"batches {existing[0]}..{existing[-1]}" if existing else "no batch yet"
        raise InvalidInput(f"batch {', '.join(map(str, missing))} does not exist in {out_dir} ({have}); "
                           "pass a --batch that a `meterroot batch` run wrote")
    return sorted(set(wanted))


def read_json_file(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{what} {path} is not readable JSON: {exc}") from None


def manifest_path(out_dir: Path, batch: int) -> Path:
    return Path(out_dir) / "batches" / str(batch) / "manifest.json"


def tree_path(out_dir: Path, batch: int) -> Path:
    return Path(out_dir) / "batches" / str(batch) / "tree.json"


def read_manifest(out_dir: Path, batch: int) -> dict:
    manifest = read_json_file(manifest_path(out_dir, batch), f"manifest of batch {batch}")
    if not isinstance(manifest, dict):
        raise InvalidInput(f"manifest {manifest_path(out_dir, batch)} is not a JSON object")
    return manifest


def read_tree(out_dir: Path, batch: int) -> dict | None:
    """The standard-v1 dump of a batch, or None when the batch has no tree.json."""
    path = tree_path(out_dir, batch)
    if not path.exists():
        return None
    tree = read_json_file(path, f"tree of batch {batch}")
    if not isinstance(tree, dict) or not isinstance(tree.get("values"), list):
        raise InvalidInput(f"tree {path} is not a standard-v1 dump (no values list)")
    return tree


def recorded_tariff(out_dir: Path, override: Path | None = None) -> Tariff:
    """The tariff to check against: `override` when given, else the one the run recorded."""
    if override is not None:
        return load_tariff(override)
    path = Path(out_dir) / RECORDED_TARIFF
    if not path.exists():
        raise InvalidTariff(f"{path} does not exist: this output has no recorded tariff; "
                            "pass --tariff with the tariff the batches were priced with")
    data = read_json_file(path, "recorded tariff")
    # the run records the canonical form with its hash beside it; the hash must still match
    recorded_hash = data.pop("hash", None) if isinstance(data, dict) else None
    tariff = parse_tariff(data, str(path))
    if recorded_hash is not None and recorded_hash != tariff.hash:
        raise InvalidTariff(f"{path} says its hash is {recorded_hash} but its content hashes to {tariff.hash}: "
                            "the recorded tariff was edited; pass --tariff with the tariff the batches "
                            "were priced with")
    return tariff
