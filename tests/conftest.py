"""Fixtures more than one test folder needs."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory):
    """One local anvil for the session, on a free port of 127.0.0.1, stopped after."""
    from sinks.chain import anvil

    port = anvil.free_port()
    log_file = tmp_path_factory.mktemp("anvil") / "anvil.log"
    process = anvil.launch(port, log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        anvil.wait_ready(url, process, log_file)
        yield url
    finally:
        anvil.terminate(process.pid)
