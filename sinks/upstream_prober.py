"""The gateway's probes of its own upstream (SPEC §14): `meterroot probe`'s loop as an aiohttp
background task, writing probe records into `<usage-dir>/probes/` (beside the usage files, not
among them: `--input 'usage/*.jsonl'` must not read probes as usage; `--probes 'usage/probes/*.jsonl'`
settles them).

Each probe runs the same blocking check as `meterroot probe` (sinks.chain.probe) on a worker thread,
so a slow upstream never stalls the proxy."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from sinks.chain.probe import HeadTracker, probe
from sinks.probe_writer import ProbeWriter

log = logging.getLogger("meterroot.gateway")
PROBES_FOLDER = "probes"


def probes_dir(usage_dir: Path) -> Path:
    return Path(usage_dir) / PROBES_FOLDER


class UpstreamProber:
    def __init__(self, upstream: str, provider: str, node_id: str, usage_dir: Path, *, probe_seconds: float,
                 timeout_seconds: float = 2.0, stale_seconds: float = 60.0, file_seconds: float = 60.0):
        self.upstream = upstream
        self.writer = ProbeWriter(probes_dir(usage_dir), provider, provider, node_id)
        self.tracker = HeadTracker(stale_seconds)
        self.probe_seconds, self.timeout_seconds, self.file_seconds = probe_seconds, timeout_seconds, file_seconds
        self._task: asyncio.Task | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_file = time.monotonic()
        try:
            while True:
                started = time.monotonic()
                timestamp_ms = int(time.time() * 1000)
                result = await loop.run_in_executor(None, probe, self.upstream, self.timeout_seconds, self.tracker)
                self.writer.add(timestamp_ms, result.ok, result.latency_ms)
                if not result.ok:
                    log.warning("upstream probe not ok: %s", result.detail)
                if time.monotonic() - last_file >= self.file_seconds:
                    await loop.run_in_executor(None, self.writer.flush)
                    last_file = time.monotonic()
                await asyncio.sleep(max(0.0, self.probe_seconds - (time.monotonic() - started)))
        finally:
            self.writer.flush()  # what was probed is published when the gateway stops

    def attach(self, app) -> None:
        """Run with the aiohttp application: started on startup, flushed and stopped on cleanup."""
        async def start(app):
            self._task = asyncio.create_task(self.run())

        async def stop(app):
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        app.on_startup.append(start)
        app.on_cleanup.append(stop)
