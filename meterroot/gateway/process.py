"""A gateway as a child process (what the demo and the benchmark start): `meterroot gateway`
with its options, the provider key passed in the environment, never on the command line."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from meterroot import children
from meterroot.gateway.server import PROVIDER_KEY_ENV
from settlement.errors import MeterrootError

REPO = Path(__file__).resolve().parents[2]


def launch(options: list[str], provider_key: str, log_file: Path) -> subprocess.Popen:
    env = {**os.environ, PROVIDER_KEY_ENV: provider_key}
    with open(log_file, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "meterroot.gateway", *options], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen, log_file: Path, *, timeout: float = 120) -> None:
    """Return once GET url/healthz answers 200; MeterrootError (with the log's tail) otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MeterrootError(f"the gateway exited with code {process.returncode}: "
                                 f"{Path(log_file).read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise MeterrootError(f"the gateway did not answer at {url} within {timeout:g} s; see {log_file}")


def stop(process: subprocess.Popen, *, timeout: float = 15) -> int:
    """SIGTERM (the gateway publishes its open usage file and its permits), SIGKILL after `timeout`."""
    return children.stop(process, timeout=timeout)
