"""meterroot.children: waiting for a child server and stopping it."""
import subprocess
import sys

import pytest

from meterroot.children import stop, wait_http
from settlement.errors import MeterrootError
from sinks.chain.anvil import free_port


def test_a_server_that_exits_before_answering_is_reported_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('port taken'); sys.exit(3)"],
                                   stderr=handle)
    with pytest.raises(MeterrootError, match="exited with code 3: port taken"):
        wait_http(f"http://127.0.0.1:{free_port()}/health", process, log=log, timeout=30)


def test_a_server_that_answers_is_waited_for_then_stopped(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/", process, timeout=60)
        assert process.poll() is None
    finally:
        code = stop(process)
    assert code is not None and process.poll() is not None


def test_a_child_that_ignores_sigterm_is_killed():
    process = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(600)"],
                               stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"ready\n"
    assert stop(process, timeout=0.5) == -9


def test_stopping_nothing_is_nothing():
    assert stop(None) is None
