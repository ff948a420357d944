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


@pytest.fixture(autouse=True)
def seeded_accounts(request, monkeypatch):
    """`Account.create()` draws its keys from the test's own id, so every run of a test sees the
    same addresses (leaf order, claim order and gas follow from them) and no two tests share one."""
    import random

    from eth_account import Account

    draw = random.Random(request.node.nodeid)
    monkeypatch.setattr(Account, "create", staticmethod(lambda extra_entropy="": Account.from_key(draw.randbytes(32))))
