"""One writer per output directory, between `meterroot stream` and `meterroot batch` (SPEC §10):
a stream (Beam on Prism, or Flink) started while a batch holds OUT exits 2 naming it, before
any engine starts; a batch started while a stream holds OUT exits 2 naming the stream, or
with --wait-lock waits for it and then settles after it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.cli import main
from tests.streaming.scenario import common_args, event, head, write_files, write_tariff

REPO = Path(__file__).resolve().parents[2]
FILES = {"p1.jsonl": [event("x0", 5, 7), event("x1", 15, 6)],
         "p2.jsonl": [event("x2", 65, 12)], "p3.jsonl": [event("x3", 125, 9)]}
BATCH_FILES = {"b1.jsonl": [event("b0", 10, 3), event("b1", 70, 4)]}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *map(str, args)]


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_stream_started_while_a_batch_holds_out_exits_2_naming_the_batch(tmp_path, prism_args, capsys):
    tariff, out = write_tariff(tmp_path), tmp_path / "out"
    batch_in, stream_in = write_files(tmp_path / "b", BATCH_FILES), write_files(tmp_path / "s", FILES)
    # A real batch run that stops itself at its commit point, holding OUT's lock.
    batch = subprocess.Popen(_cli("batch", *common_args(tariff, out), "--input", batch_in / "*.jsonl", "--no-validate"),
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "METERROOT_FAILPOINT": "before-ledger-head",
                                  "METERROOT_FAILPOINT_ACTION": "stop"})
    try:
        _until(lambda: batch.poll() is not None or _stopped(batch.pid), "the batch to reach its commit point")
        assert batch.poll() is None, batch.communicate()
        capsys.readouterr()
        for engine in ("beam", "flink"):
            code = main(["stream", *common_args(tariff, out), "--replay", str(stream_in / "*.jsonl"),
                         "--engine", engine, *(prism_args if engine == "beam" else [])])
            err = capsys.readouterr().err
            assert code == 2, err
            assert f"is in use by pid {batch.pid}" in err and "`meterroot batch`" in err, err
        assert not (out / "ledger" / "HEAD.json").exists()  # the stream wrote nothing
    finally:
        os.kill(batch.pid, signal.SIGCONT)
        stdout, stderr = batch.communicate(timeout=300)
    assert batch.returncode == 0, stdout + stderr
    assert head(out)["batch"] == 1
    assert main(["stream", *common_args(tariff, out), "--replay", str(stream_in / "*.jsonl"), "--no-validate",
                 *prism_args]) == 0
    assert head(out)["batch"] > 1  # the stream settled after the batch, on top of it


def test_a_batch_started_while_a_stream_holds_out_exits_2_or_waits_for_it(tmp_path, prism_args, capsys):
    tariff, out = write_tariff(tmp_path), tmp_path / "out"
    watched, batch_in = tmp_path / "watched", write_files(tmp_path / "b", BATCH_FILES)
    watched.mkdir()
    stream = subprocess.Popen(_cli("stream", *common_args(tariff, out), "--watch", watched, "--stop-after-idle", 10,
                                   "--no-validate", *prism_args),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = stream.stdout.readline()  # printed once the stream holds OUT and its config is checked
        assert first.startswith("meterroot stream: watching"), first + stream.stderr.read()
        capsys.readouterr()
        code = main(["batch", *common_args(tariff, out), "--input", str(batch_in / "*.jsonl"), "--no-validate"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"is in use by pid {stream.pid}" in err and "`meterroot stream`" in err, err
        assert main(["batch", *common_args(tariff, out), "--input", str(batch_in / "*.jsonl"), "--no-validate",
                     "--wait-lock", "300"]) == 0
    finally:
        if stream.poll() is None:
            stream.kill()
        rest, stderr = stream.communicate(timeout=60)
    assert stream.returncode == 0, first + rest + stderr
    assert head(out)["batch"] == 1
