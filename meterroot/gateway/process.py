"""A gateway as a child process (what the demo and the benchmark start): `meterroot gateway`
with its options, the provider key passed in the environment, never on the command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    """Return once GET url/healthz answers 200; MeterrootError (with the log's tail) otherwise,
    the gateway killed if it is still running."""
    try:
        children.wait_http(url + "/healthz", process, log=log_file, timeout=timeout)
    except MeterrootError:
        if process.poll() is None:
            process.kill()
        raise


def stop(process: subprocess.Popen, *, timeout: float = 15) -> int:
    """SIGTERM (the gateway publishes its open usage file and its permits), SIGKILL after `timeout`."""
    return children.stop(process, timeout=timeout)
