"""Probe records to JSONL files (SPEC §14), each written whole or not at all.

Files are named `probes-<prober>-<first probe ms>-<run>.jsonl` in the folder given, and appear
only by rename, so `meterroot batch --probes 'DIR/*.jsonl'` (or a watcher) never reads half a
file. A writer numbers its probes `<run>.<n>`, the run being its start time and pid, so ids stay
unique per prober across restarts.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from settlement.probes import Probe, probe_json
from sinks import atomic


class ProbeWriter:
    def __init__(self, folder: Path, prober: str, provider: str, node_id: str):
        self.folder = Path(folder)
        self.prober, self.provider, self.node_id = prober, provider, node_id
        self.run = f"{int(time.time() * 1000)}.{os.getpid()}"
        self.sequence = 0
        self.pending: list[Probe] = []
        self.written: list[Path] = []

    def add(self, timestamp_ms: int, ok: bool, latency_ms: int) -> Probe:
        self.sequence += 1
        probe = Probe(prober=self.prober, probe_id=f"{self.run}.{self.sequence}", provider=self.provider,
                      node_id=self.node_id, timestamp_ms=timestamp_ms, ok=ok, latency_ms=latency_ms)
        self.pending.append(probe)
        return probe

    def flush(self) -> Path | None:
        """Write the pending probes as one new file; None when there were none."""
        if not self.pending:
            return None
        first = self.pending[0]
        name = f"probes-{self.prober.lower()}-{first.timestamp_ms}-{self.run}.jsonl"
        lines = "".join(json.dumps(probe_json(p), separators=(",", ":")) + "\n" for p in self.pending)
        path = self.folder / name
        atomic.write_bytes(path, lines.encode())
        self.pending = []
        self.written.append(path)
        return path
