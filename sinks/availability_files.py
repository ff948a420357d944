"""The probe and availability files of a batch (SPEC §14), written beside its settlement files.

  OUT/probes/batch=<B>/part-0.parquet             accepted probes the batch settles
  OUT/probe_quarantine/batch=<B>/part-0.parquet   probe records refused, with their reason
  OUT/availability/batch=<B>/part-0.parquet       availability per (provider, epoch)

Like the batch's other data files they go to their final names fixed by the batch number (a rerun
of a killed run rewrites the same names) before the ledger head is written; what the manifest
says about them is staged in OUT/.staging/availability.json for the driver's commit.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from settlement.availability import AVAILABILITY_SCHEMA, availability_per_epoch
from settlement.errors import InvalidInput, InvariantBroken
from settlement.probes import PROBE_CONTENT, PROBE_KEY, probes_table, quarantine_table, split_probes
from sinks import atomic
from sinks.ledger_store import batch_dir

PROBE_TREES = ("probes", "probe_quarantine", "availability")
STAGED = "availability.json"

AVAILABILITY_COLUMNS = tuple((f.name, "BIGINT" if pa.types.is_integer(f.type) else "VARCHAR")
                             for f in AVAILABILITY_SCHEMA)
"""SQL types of the availability view (sinks/catalog.py) while no file exists yet."""


def availability_file(out: Path, batch: int) -> Path:
    return batch_dir(out, "availability", batch) / "part-0.parquet"


def _read_text(path: str) -> tuple[str, str]:
    """(text, sha256) of a probe file; undecodable UTF-8 refuses the file, naming it."""
    from apache_beam.io.filesystems import FileSystems  # any Beam file system, as --input reads
    with FileSystems.open(path) as handle:
        data = handle.read()
    try:
        return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"probe file {path} is not UTF-8 text ({exc}); probes are JSON lines") from None


def settled_probes(out: Path, head_batch: int) -> pa.Table | None:
    """Every probe settled by batches 1..head_batch, or None."""
    parts = [batch_dir(out, "probes", b) / "part-0.parquet" for b in range(1, head_batch + 1)]
    tables = [pq.read_table(p) for p in parts if p.exists()]
    return pa.concat_tables(tables) if tables else None


def discard_unfinished(out: Path, head_batch: int) -> None:
    """Remove probe outputs of batches beyond the ledger head (a killed run's remains)."""
    for tree in PROBE_TREES:
        base = Path(out) / tree
        for child in base.glob("batch=*") if base.exists() else ():
            number = child.name.removeprefix("batch=")
            if number.isdigit() and int(number) > head_batch:
                for f in child.iterdir():
                    f.unlink()
                child.rmdir()


@dataclass(frozen=True)
class ProbeOutcome:
    manifest_section: dict
    """What the manifest records under `availability`."""
    availability: pa.Table


def settle_probes(out: Path, paths: list[str], epoch_seconds: int, head_batch: int, batch: int) -> ProbeOutcome:
    """Validate the probes of `paths`, write the batch's probe and availability files and stage
    the manifest's section; the commit (manifest, ledger head) is the driver's."""
    previous = settled_probes(out, head_batch)
    settled = {}
    if previous is not None:
        keys = zip(*(previous.column(c).to_pylist() for c in PROBE_KEY))
        contents = zip(*(previous.column(c).to_pylist() for c in PROBE_CONTENT))
        settled = dict(zip(keys, contents))
    texts, digests = [], {}
    for path in paths:
        text, digest = _read_text(path)
        texts.append((path, text))
        digests[path] = digest
    split = split_probes(texts, settled)
    accepted = probes_table(split.accepted, epoch_seconds, batch)
    availability = availability_per_epoch(accepted, previous, batch)

    atomic.write_parquet(batch_dir(out, "probes", batch) / "part-0.parquet", accepted)
    atomic.write_parquet(batch_dir(out, "probe_quarantine", batch) / "part-0.parquet",
                         quarantine_table(split.quarantined, batch))
    buffer = io.BytesIO()
    pq.write_table(availability, buffer, compression="zstd", store_schema=True)
    atomic.write_bytes(availability_file(out, batch), buffer.getvalue())

    for source, entry in split.per_source.items():
        if entry["read"] != entry["accepted"] + entry["duplicates"] + entry["quarantined"]:
            raise InvariantBroken(f"probe counts of {source} do not add up: {entry}")
    counts = {"read": split.read, "accepted": len(split.accepted), "duplicates": split.duplicates,
              "quarantined": len(split.quarantined)}
    section = {
        "file": availability_file(out, batch).relative_to(out).as_posix(),
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "probe_counts": counts,
        "probe_inputs": [{"path": path, "sha256": digests[path], **split.per_source[path]}
                         for path in sorted(digests)],
        "epochs": sorted(set(availability.column("epoch").to_pylist())),
        "rows": [{k: row[k] for k in ("provider", "epoch", "probes", "ok_probes", "availability_bps",
                                      "latency_p50_ms", "latency_p99_ms")}
                 for row in availability.to_pylist()],
    }
    from sinks.batch_outputs import staging_dir  # a Beam module: imported by the batch job only
    atomic.write_json(staging_dir(out) / STAGED, section)
    return ProbeOutcome(section, availability)
