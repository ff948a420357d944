"""`meterroot verify --output OUT` (SPEC §10): check a whole output directory against its ledger
head without changing anything. Every problem is listed, each naming its file."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from settlement.errors import MeterrootError
from settlement.manifest import CATEGORIES
from sinks import layout
from sinks.ledger_store import LedgerStore


@dataclass
class VerifyReport:
    head: int = 0
    """The batch HEAD.json names (0 without a ledger)."""
    files: int = 0
    """Files checked against HEAD."""
    bytes: int = 0
    """Their total size."""
    problems: list = field(default_factory=list)
    """One sentence per problem, naming the file and how to restore it."""


def _read_json(path: Path, problems: list):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        problems.append(f"{path} is missing")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{path} is not readable JSON ({exc})")
    return None


def _check_manifest(out: Path, batch: int, root: str | None, problems: list) -> None:
    path = layout.manifest_path(out, batch)
    manifest = _read_json(path, problems)
    if not isinstance(manifest, dict):
        return
    if manifest.get("batch") != batch:
        problems.append(f"{path} names batch {manifest.get('batch')!r}, not {batch}")
    if root is not None and manifest.get("root") != root:
        problems.append(f"{path} has root {manifest.get('root')} but HEAD.json committed {root}")
    for entry in manifest.get("inputs", []):
        try:
            read, parts = entry["read"], [entry[c] for c in CATEGORIES[1:]]
        except (KeyError, TypeError):
            problems.append(f"{path}: an input entry lacks its counts: {entry!r}")
            continue
        if read != sum(parts):
            problems.append(f"{path}: counts of {entry.get('path')} do not add up (read {read} != "
                            f"accepted + duplicates + quarantined {sum(parts)})")
    lines = layout.lines_path(out, batch)
    if lines.exists():
        try:
            amounts = pq.read_table(lines, columns=["amount_wei"]).column("amount_wei")
            total = pc.sum(amounts.cast(pa.decimal128(38, 0))).as_py() if len(amounts) else 0
        except (OSError, pa.ArrowInvalid) as exc:
            problems.append(f"{lines} cannot be read as Parquet ({exc})")
            return
        if str(int(total or 0)) != str(manifest.get("total")):
            problems.append(f"{lines} sums to {int(total or 0)} wei but {path} says total {manifest.get('total')}")


def verify_output(out: Path) -> VerifyReport:
    out = Path(out)
    report = VerifyReport()
    problems = report.problems
    if not out.is_dir():
        problems.append(f"{out} is not a directory")
        return report
    store = LedgerStore(out)
    try:
        head = store.head()
    except MeterrootError as exc:
        problems.append(str(exc))
        return report
    if head is None:
        problems.append(f"{layout.head_path(out)} is missing: {out} has no ledger (run `meterroot batch "
                        f"--output {out}` first, or restore OUT/ledger from a backup)")
        return report
    report.head = head.batch
    if head.batch and not head.files:
        problems.append(f"{layout.head_path(out)} records no file digests (written by an older meterroot); "
                        "the next `meterroot batch` run records them")
    report.files = len(head.files)
    report.bytes = sum(d.size for d in head.files.values())
    problems.extend(store.damage(head))
    for batch in range(1, head.batch + 1):
        _check_manifest(out, batch, head.roots.get(batch), problems)
    run = layout.run_path(out)
    if run.exists():
        data = _read_json(run, problems)
        if isinstance(data, dict):
            claimed = data.get("batch")
            if isinstance(claimed, int) and claimed > head.batch:
                problems.append(f"{run} claims batch {claimed}, above the ledger HEAD (batch {head.batch})")
    return report
