"""Servers meterroot starts as child processes on loopback (`serve`, the External Adapter, the
gateway), for its demos, tests and benchmarks: waiting until one answers, stopping one."""
from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from settlement.errors import MeterrootError


def wait_http(url: str, process: subprocess.Popen, *, log: Path | None = None, timeout: float = 90) -> None:
    """Return once GET `url` answers; MeterrootError if `process` exits first or `timeout` passes
    (with the tail of its `log`, when it writes one)."""
    def tail() -> str:
        return f": {Path(log).read_text(errors='replace')[-2000:]}" if log is not None and Path(log).exists() else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MeterrootError(f"{url}: the process exited with code {process.returncode}{tail()}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise MeterrootError(f"{url} did not answer within {timeout:g} s{tail()}")


def stop(process: subprocess.Popen | None, *, timeout: float = 10) -> int | None:
    """SIGTERM (a server's own clean shutdown), SIGKILL after `timeout` seconds; its exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
