"""The gateway killed (SIGKILL) under load: every usage file in --usage-dir is whole, and every
request it answered is in them once, after the next start publishes what the dead run left."""
from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from meterroot.gateway.usage_files import OPEN_SUFFIX

pytestmark = pytest.mark.slow


def _hammer(session, acked: list, stop: threading.Event) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    while not stop.is_set():
        try:
            response = session.client.post("/", json=call)
        except httpx.HTTPError:
            return  # the gateway is gone
        receipt = response.headers.get("X-Meterroot-Receipt")
        if receipt is not None:
            acked.append(json.loads(receipt)["id"])


def test_killed_gateway_leaves_whole_files_and_loses_no_answered_request(start_gateway, new_consumer):
    gateway = start_gateway(extra=("--rotate-bytes", "20000"))
    consumer = new_consumer()
    sessions = [consumer.sign_in(gateway.url) for _ in range(4)]
    acked: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_hammer, args=(s, acked, stop)) for s in sessions]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 400 and time.monotonic() < deadline:
        time.sleep(0.01)
    gateway.process.send_signal(signal.SIGKILL)  # mid-flight: requests are being written
    gateway.process.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acked) >= 400

    open_files = list(gateway.usage_dir.glob(f".*{OPEN_SUFFIX}"))
    assert len(open_files) == 1  # the file being written when it died, hidden from readers
    for path in gateway.usage_dir.glob("usage-*.jsonl"):  # what readers can see is whole
        assert path.read_bytes().endswith(b"\n")
    with open(open_files[0], "ab") as torn:  # and a write torn in the middle of a line
        torn.write(b'{"event_id":"torn-by-the-crash","provider":"0x')

    gateway.restart()
    gateway.stop()
    assert not list(gateway.usage_dir.glob(f".*{OPEN_SUFFIX}"))
    events = [json.loads(line) for line in gateway.usage_lines()]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert "torn-by-the-crash" not in ids
    written = {event_id.rsplit(".", 1)[0] for event_id in ids}
    assert set(acked) <= written
    # An answered eth_blockNumber is one request and 10 compute units, written before the answer.
    mine = [e for e in events if e["consumer"] == consumer.address]
    assert sum(e["quantity"] for e in mine if e["unit"] == "request") >= len(acked)
    assert len(list(gateway.usage_dir.glob("usage-*.jsonl"))) > 2  # it rotated under load
