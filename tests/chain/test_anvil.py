"""`chain up` / `chain down` bookkeeping: taken ports, stale pid files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from settlement.errors import ChainError, UsageError
from sinks.chain import anvil

REPO = Path(__file__).resolve().parents[2]


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


def _mine(url: str, blocks: int) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [blocks]}
    assert requests.post(url, json=request, timeout=30).ok


def test_the_states_anvil_moves_out_of_memory_are_removed_when_it_is_terminated(tmp_path):
    port, log_file = anvil.free_port(), tmp_path / "anvil.log"
    process = anvil.launch(port, log_file)
    url = f"http://127.0.0.1:{port}"
    anvil.wait_ready(url, process, log_file)
    _mine(url, 600)  # anvil keeps the newest states in memory and writes the older ones out
    states = anvil.states_folder(log_file, port)
    assert any(states.rglob("*.json")), "anvil wrote no states: the test no longer covers the leak"
    anvil.terminate(process.pid)
    assert not states.exists()


def test_chain_down_removes_the_states_of_the_chain_chain_up_started(tmp_path):
    subprocess.run([sys.executable, "-m", "pipelines.cli", "chain", "up", "--output", str(tmp_path), "--port", "0"],
                   cwd=REPO, check=True, capture_output=True)  # another process: its anvil is not our child
    chain = anvil.running(tmp_path)
    _mine(chain.url, 600)
    states = anvil.states_folder(Path(chain.log_file), chain.port)
    assert any(states.rglob("*.json"))
    assert anvil.stop(tmp_path) == chain
    assert not states.exists()
