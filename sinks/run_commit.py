"""Committing a run (SPEC §7, §10): what the pipeline left in the run's staging folder becomes
the batch's manifest and quarantine; the ledger head, recording the digest of every file, is the
commit point; run.json is written after it and describes it. Shared by the batch job and the
streaming writer."""
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
from sinks import atomic, layout
from sinks.batch_outputs import staging_dir
from sinks.ledger_store import LedgerStore, file_digest


@dataclass
class RunResult:
    batch: int | None
    """The batch appended, or None when nothing new was settled."""
    run: dict
    """What run.json holds."""
    manifest: dict | None
    """The batch's manifest, when one was appended."""


def failpoint(name: str) -> None:
    """Tests kill the run here (SIGKILL, as an operator's kill -9 would) to prove a run killed
    at any point leaves the previous complete state: METERROOT_FAILPOINT=<name>. With
    METERROOT_FAILPOINT_ACTION=stop the run stops itself there instead (SIGSTOP, until a
    SIGCONT): a run that provably holds OUT's lock, for the tests of the commands it excludes."""
    if os.environ.get("METERROOT_FAILPOINT") == name:
        stop = os.environ.get("METERROOT_FAILPOINT_ACTION") == "stop"
        os.kill(os.getpid(), signal.SIGSTOP if stop else signal.SIGKILL)


def _read_staged(staging: Path, name: str, default):
    path = staging / name
    return json.loads(path.read_text()) if path.exists() else default


def run_record(total: dict, batch: int | None, head: int, inputs: list, message: str, tariff_hash: str,
               token_ids_hash: str | None = None) -> dict:
    """What run.json holds: the run's counts, the batch it appended and the ledger head after it
    (and the digest of the consumer -> token id mapping, when the run had one)."""
    return {**total, "batch": batch, "head": head, "inputs": inputs, "message": message,
            "tariff_hash": tariff_hash, **({"token_ids_hash": token_ids_hash} if token_ids_hash else {})}


def catalog_current(out: Path) -> bool:
    """Whether OUT/catalog.duckdb was built after the ledger head was written: the catalog is
    the last step after a commit, so a stale one means a crash skipped the steps after it."""
    try:
        return layout.catalog_path(out).stat().st_mtime_ns >= layout.head_path(out).stat().st_mtime_ns
    except FileNotFoundError:
        return False


def interrupted_after_commit(out: Path, head: LedgerHead | None, paths: list[str]) -> dict | None:
    """The manifest of HEAD's batch when the run that committed it was killed before it was done
    (run.json does not describe HEAD, or the steps after the commit did not reach the catalog)
    and `paths` are that run's inputs again, unchanged (same paths and sha256): this run is its
    rerun, and only has to finish it."""
    if head is None or head.batch == 0:
        return None
    try:
        run = json.loads(layout.run_path(out).read_text())
        described = run.get("head", run.get("batch"))
    except (OSError, ValueError, AttributeError):
        described = None
    if described == head.batch and catalog_current(out):
        return None
    try:
        manifest = json.loads(layout.manifest_path(out, head.batch).read_text())
    except (OSError, ValueError):
        return None
    recorded = {entry["path"]: entry["sha256"] for entry in manifest.get("inputs", [])}
    if sorted(recorded) != sorted(paths):
        return None
    if any(not os.path.exists(p) or file_digest(Path(p)).sha256 != recorded[p] for p in paths):
        return None
    return manifest


def finish_interrupted(out: Path, manifest: dict, head: LedgerHead) -> RunResult:
    """Write the run.json the interrupted run would have written for its committed batch."""
    batch = manifest["batch"]
    message = (f"settled batch {batch}: committed by an earlier run over these same inputs that was "
               f"interrupted after its commit point; finished it (root {manifest['root']}, "
               f"{manifest['leaf_count']} leaves, total {manifest['total']} wei)")
    run = run_record(manifest["counts"], batch, head.batch, manifest["inputs"], message,
                     manifest["tariff_hash"], manifest.get("token_ids_hash"))
    atomic.write_json(layout.run_path(out), run)
    return RunResult(batch, run, manifest)


def commit_run(out: Path, paths: list[str], tariff: Tariff, head: LedgerHead | None, batch: int,
               chain_id: int, registry: str, store: LedgerStore, staging: Path | None = None,
               token_ids_hash: str | None = None) -> RunResult:
    """Everything the pipeline left in staging becomes the run's outputs; the ledger head is the
    commit point, and run.json (which describes HEAD) is written after it. `token_ids_hash`: the
    digest of the run's consumer -> token id mapping (settlement.token_ids), recorded in both."""
    staging = Path(staging) if staging is not None else staging_dir(out)
    counts = _read_staged(staging, "counts.json", [])
    digests = _read_staged(staging, "digests.json", {})
    summary = _read_staged(staging, "batch.json", None)
    inputs = input_counts(counts, digests, paths)
    for entry in inputs:
        if entry["read"] != entry["accepted"] + entry["duplicates"] + entry["quarantined"]:
            raise InvariantBroken(f"counts of {entry['path']} do not add up: {entry}")
    total = totals(inputs)
    quarantine = staging / "quarantine.parquet"
    appended = summary is not None
    manifest = None
    committed = head
    if appended:
        if quarantine.exists() and pq.read_metadata(quarantine).num_rows:
            table = pq.read_table(quarantine)
            table = table.set_column(0, "batch", pa.array([batch] * table.num_rows, pa.int64()))
            atomic.write_parquet(layout.quarantine_path(out, batch), table)
        previous = head.roots.get(head.batch) if head else None
        manifest = build_manifest(summary, tariff, chain_id, registry, inputs, previous)
        availability = _read_staged(staging, "availability.json", None)  # sinks/availability_files.py
        if availability is not None:
            manifest["availability"] = availability
        if token_ids_hash:
            manifest["token_ids_hash"] = token_ids_hash
        atomic.write_json(layout.manifest_path(out, batch), manifest)
        message = (f"settled batch {batch}: {total['accepted']} events accepted, root {summary['root']}, "
                   f"{summary['leaf_count']} leaves, total {summary['total']} wei")
        failpoint("before-ledger-head")
        new_head = LedgerHead(batch=batch, epoch_seconds=tariff.epoch_seconds, chain_id=chain_id,
                              registry=registry, tariff_hash=tariff.hash,
                              roots={**(head.roots if head else {}), batch: summary["root"]})
        committed = store.commit(new_head, head, tariff.canonical() | {"hash": tariff.hash})
        failpoint("after-ledger-head")
    else:
        if quarantine.exists() and pq.read_metadata(quarantine).num_rows:
            digest = atomic.dumps_json(inputs)
            name = hashlib.sha256(digest).hexdigest()[:16]
            atomic.write_parquet(layout.unbatched_quarantine_dir(out) / f"run-{name}.parquet",
                                 pq.read_table(quarantine))
        message = "nothing new to settle: no batch appended"
    failpoint("before-run-json")
    run = run_record(total, batch if appended else None, committed.batch if committed else 0, inputs,
                     message, tariff.hash, token_ids_hash)
    atomic.write_json(layout.run_path(out), run)
    shutil.rmtree(staging, ignore_errors=True)
    return RunResult(batch if appended else None, run, manifest)
