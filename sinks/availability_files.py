"""The probe and availability files of a batch (SPEC §14), written beside its settlement files
(paths from sinks.layout): the accepted probes, the refused probe records with their reason, and
availability per (provider, epoch).

Like the batch's other data files they go to their final names fixed by the batch number before
the ledger head is written (HEAD records their digests; a killed run's remains are discarded with
the batch's); what the manifest says about them is staged as availability.json in the run's
staging folder for the driver's commit.
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
from sinks import layout

STAGED = "availability.json"

AVAILABILITY_COLUMNS = tuple((f.name, "BIGINT" if pa.types.is_integer(f.type) else "VARCHAR")
                             for f in AVAILABILITY_SCHEMA)
"""SQL types of the availability view (sinks/catalog.py) while no file exists yet."""


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
    parts = [layout.probes_path(out, b) for b in range(1, head_batch + 1)]
    tables = [pq.read_table(p) for p in parts if p.exists()]
    return pa.concat_tables(tables) if tables else None


@dataclass(frozen=True)
class ProbeOutcome:
    manifest_section: dict
    """What the manifest records under `availability`."""
    availability: pa.Table


def settle_probes(out: Path, paths: list[str], epoch_seconds: int, head_batch: int, batch: int,
                  staging: Path) -> ProbeOutcome:
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

    layout.write_parquet(layout.probes_path(out, batch), accepted)
    layout.write_parquet(layout.probe_quarantine_path(out, batch), quarantine_table(split.quarantined, batch))
    buffer = io.BytesIO()
    pq.write_table(availability, buffer, compression="zstd", store_schema=True)
    layout.write_bytes(layout.availability_path(out, batch), buffer.getvalue())

    for source, entry in split.per_source.items():
        if entry["read"] != entry["accepted"] + entry["duplicates"] + entry["quarantined"]:
            raise InvariantBroken(f"probe counts of {source} do not add up: {entry}")
    counts = {"read": split.read, "accepted": len(split.accepted), "duplicates": split.duplicates,
              "quarantined": len(split.quarantined)}
    section = {
        "file": layout.relative(out, layout.availability_path(out, batch)),
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "probe_counts": counts,
        "probe_inputs": [{"path": path, "sha256": digests[path], **split.per_source[path]}
                         for path in sorted(digests)],
        "epochs": sorted(set(availability.column("epoch").to_pylist())),
        "rows": [{k: row[k] for k in ("provider", "epoch", "probes", "ok_probes", "availability_bps",
                                      "latency_p50_ms", "latency_p99_ms")}
                 for row in availability.to_pylist()],
    }
    layout.write_json(Path(staging) / STAGED, section)
    return ProbeOutcome(section, availability)
