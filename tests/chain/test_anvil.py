"""`chain up` / `chain down` bookkeeping: taken ports, stale pid files."""
from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import urlparse

import pytest

from settlement.errors import ChainError, UsageError
from sinks.chain import anvil


def test_a_taken_port_is_refused(tmp_path, anvil_url):
    taken = urlparse(anvil_url).port
    with pytest.raises(UsageError, match=f"port {taken} on 127.0.0.1 is taken"):
        anvil.start(tmp_path, port=taken)
    assert anvil.running(tmp_path) is None


def test_anvil_exiting_at_start_fails_naming_the_log(tmp_path, anvil_url):
    taken = urlparse(anvil_url).port  # launch() itself does not look: anvil fails to bind and exits
    log_file = tmp_path / "anvil.log"
    process = anvil.launch(taken, log_file)
    with pytest.raises(ChainError, match=r"anvil exited with code 1 before answering .*is the port taken\?"):
        anvil.wait_ready(f"http://127.0.0.1:{taken}", process, log_file)
    assert "Address already in use" in log_file.read_text()


def test_the_platform_binary_is_run_not_the_npm_wrapper():
    assert anvil.anvil_binary().endswith("bin/anvil") and "/.bin/" not in anvil.anvil_binary()


def test_a_stale_record_is_not_a_running_chain(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    record = {"pid": int(finished.stdout), "url": "http://127.0.0.1:1", "port": 1, "chain_id": 31337,
              "state_file": str(tmp_path / "chain" / "anvil-state.json"), "log_file": "anvil.log"}
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "anvil.json").write_text(json.dumps(record))
    assert anvil.running(tmp_path) is None
    assert anvil.stop(tmp_path) is None
    assert not (tmp_path / "chain" / "anvil.json").exists()
