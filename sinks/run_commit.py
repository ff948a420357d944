"""Committing a run (SPEC §7): what the pipeline left in OUT/.staging becomes the batch's
manifest, quarantine and run.json, and the ledger head is written last, the commit point.
Shared by the batch job and the streaming writer."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from settlement.errors import InvariantBroken
from settlement.ledger import LedgerHead
from settlement.manifest import build_manifest, input_counts, totals
from settlement.tariff import Tariff
from sinks import atomic
from sinks.batch_outputs import staging_dir
from sinks.ledger_store import LedgerStore, batch_dir


@dataclass
class RunResult:
    batch: int | None
    """The batch appended, or None when nothing new was settled."""
    run: dict
    """What run.json holds."""
    manifest: dict | None
    """The batch's manifest, when one was appended."""


def _failpoint(name: str) -> None:
    """Tests kill the run here (SIGKILL, as an operator's kill -9 would) to prove a run killed
    at any point leaves the previous complete state: METERROOT_FAILPOINT=<name>."""
    if os.environ.get("METERROOT_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _read_staged(out: Path, name: str, default):
    path = staging_dir(out) / name
    return json.loads(path.read_text()) if path.exists() else default


def commit_run(out: Path, paths: list[str], tariff: Tariff, head: LedgerHead | None, batch: int,
               chain_id: int, registry: str, store: LedgerStore) -> RunResult:
    """Everything the pipeline left in staging becomes the run's outputs; the ledger head last."""
    counts = _read_staged(out, "counts.json", [])
    digests = _read_staged(out, "digests.json", {})
    summary = _read_staged(out, "batch.json", None)
    inputs = input_counts(counts, digests, paths)
    for entry in inputs:
        if entry["read"] != entry["accepted"] + entry["duplicates"] + entry["quarantined"]:
            raise InvariantBroken(f"counts of {entry['path']} do not add up: {entry}")
    total = totals(inputs)
    quarantine = staging_dir(out) / "quarantine.parquet"
    appended = summary is not None
    manifest = None
    if appended:
        if quarantine.exists():
            table = pq.read_table(quarantine)
            table = table.set_column(0, "batch", pa.array([batch] * table.num_rows, pa.int64()))
            atomic.write_parquet(batch_dir(out, "quarantine", batch) / "part-0.parquet", table)
        previous = head.roots.get(head.batch) if head else None
        manifest = build_manifest(summary, tariff, chain_id, registry, inputs, previous)
        availability = _read_staged(out, "availability.json", None)  # sinks/availability_files.py
        if availability is not None:
            manifest["availability"] = availability
        atomic.write_json(batch_dir(out, "batches", batch) / "manifest.json", manifest)
        message = (f"settled batch {batch}: {total['accepted']} events accepted, root {summary['root']}, "
                   f"{summary['leaf_count']} leaves, total {summary['total']} wei")
    else:
        if quarantine.exists() and pq.read_metadata(quarantine).num_rows:
            digest = atomic.dumps_json(inputs)
            name = hashlib.sha256(digest).hexdigest()[:16]
            atomic.write_parquet(Path(out) / "quarantine" / "unbatched" / f"run-{name}.parquet",
                                 pq.read_table(quarantine))
        message = "nothing new to settle: no batch appended"
    _failpoint("before-run-json")
    run = {**total, "batch": batch if appended else None, "inputs": inputs, "message": message,
           "tariff_hash": tariff.hash}
    if appended:
        new_head = LedgerHead(batch=batch, epoch_seconds=tariff.epoch_seconds, chain_id=chain_id,
                              registry=registry, tariff_hash=tariff.hash,
                              roots={**(head.roots if head else {}), batch: summary["root"]})
        quantities = pq.read_table(store.root / "settled_quantities" / f"batch={batch}.parquet")
        cumulative = pq.read_table(store.root / "cumulative" / f"batch={batch}.parquet")
        atomic.write_json(Path(out) / "run.json", run)
        _failpoint("before-ledger-head")
        store.commit(new_head, quantities, cumulative, tariff)
    else:
        atomic.write_json(Path(out) / "run.json", run)
    shutil.rmtree(staging_dir(out), ignore_errors=True)
    return RunResult(batch if appended else None, run, manifest)
