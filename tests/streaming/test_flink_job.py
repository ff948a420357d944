"""`meterroot stream --engine flink` on a real Flink: the embedded mini-cluster, and a standalone
cluster (`meterroot flink up`, 2 TaskManagers) started once for this module, one of whose
TaskManagers is killed (kill -9) mid-run.

Each run is a real PyFlink job in .venv-flink; the tests compare what lands in OUT/."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.flink_runner import FlinkMissing, flink_python
from tests.streaming.scenario import (CONSUMER_Y, PROVIDER_B, common_args, cumulative,
                                      event, head, lines_by_batch, lines_of, run_json, write_files,
                                      write_tariff)

SETTLE = "2"  # seconds after a file that closes an epoch: the machine running the tests is shared
JOB_TIMEOUT = 420


@pytest.fixture(scope="module")
def flink_ready():
    try:
        flink_python()
    except FlinkMissing as missing:
        pytest.skip(str(missing))


def meterroot(*args: str, timeout: float = JOB_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"meterroot {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def flink_stream(tariff: Path, out: Path, replay: str, *extra: str, master: str | None = None,
                 check: bool = True):
    args = ["stream", "--engine", "flink", "--replay", replay, *common_args(tariff, out),
            "--settle-seconds", SETTLE, "--no-validate", *extra]
    if master:
        args += ["--flink-master", master]
    return meterroot(*args, check=check)


def pads(name: str, seconds: int) -> dict:
    """Three one-request files just after `seconds`: Python operators pass a watermark on when
    their next bundle ends, so the watermark of a file reaches the windows a few files later."""
    return {f"{name}-{k}.jsonl": [event(f"{name}-{k}", seconds + k, 1, consumer=CONSUMER_Y)]
            for k in (1, 2, 3)}


def event_time_files(folder: Path) -> Path:
    """epoch 0 on time; a late event of epoch 0 within the lateness; one past it; a bad line."""
    return write_files(folder, {
        "u1.jsonl": [event("e1", 5, 8), event("e2", 10, 4, provider=PROVIDER_B)],
        "u2.jsonl": [event("e3", 65, 12), event("e4", 70, 1, consumer=CONSUMER_Y)],
        **pads("u2", 70),
        "u3.jsonl": [event("e5", 50, 3), event("e6", 130, 5)],
        "u4.jsonl": [event("e7", 250, 1)],
        **pads("u4", 250),
        "u5.jsonl": [event("e8", 20, 1), "not json"],
    })


def parity_files(folder: Path) -> Path:
    return write_files(folder, {
        "p1.jsonl": [event("p1", 1, 7), event("p2", 2, 9, provider=PROVIDER_B), event("p1", 1, 7)],
        "p2.jsonl": [event("p3", 61, 4, consumer=CONSUMER_Y), event("p4", 62, 20)],
        "p3.jsonl": [event("p5", 125, 2, provider=PROVIDER_B), event("p6", 130, 6, consumer=CONSUMER_Y)],
        "p4.jsonl": [event("p7", 185, 11)],
    })


@pytest.fixture(scope="module")
def parity_case(tmp_path_factory, flink_ready):
    folder = tmp_path_factory.mktemp("parity")
    tariff = write_tariff(folder)
    parity_files(folder / "in")
    replay = str(folder / "in" / "*.jsonl")
    mini = folder / "mini"
    flink_stream(tariff, mini, replay, "--checkpoint-interval-seconds", "1")
    return folder, tariff, replay, mini


def test_batch_beam_stream_and_flink_stream_give_the_same_lines_and_cumulative_amounts(parity_case):
    folder, tariff, replay, mini = parity_case
    batch_out = folder / "batch"
    meterroot("batch", "--input", replay, *common_args(tariff, batch_out))
    assert lines_of(mini) == lines_of(batch_out)
    assert cumulative(mini) == cumulative(batch_out)
    assert head(mini)["batch"] == 4 and run_json(mini)["duplicates"] == 1
    from pipelines.flink_runner import find_prism_binary, PrismMissing

    try:
        find_prism_binary()
    except PrismMissing as missing:
        pytest.skip(f"the Beam leg needs Prism: {missing}")
    beam_out = folder / "beam"
    meterroot("stream", "--engine", "beam", "--replay", replay, *common_args(tariff, beam_out),
              "--no-validate", "--settle-seconds", SETTLE)
    assert lines_by_batch(beam_out) == lines_by_batch(mini)
    assert cumulative(beam_out) == cumulative(mini)


# ------------------------------------------------------------------------- standalone cluster

@pytest.fixture(scope="module")
def cluster(tmp_path_factory, flink_ready):
    """One standalone cluster for the module: a JobManager and 2 TaskManagers on loopback."""
    from pipelines.flink_cluster import Cluster

    folder = tmp_path_factory.mktemp("flink-cluster")
    meterroot("flink", "up", "--dir", str(folder), "--taskmanagers", "2", timeout=600)
    try:
        yield Cluster.read(folder)
    finally:
        meterroot("flink", "down", "--dir", str(folder), check=False, timeout=120)


def batch_files(out: Path) -> dict[str, bytes]:
    """Every batch's tree, manifest and lines, and the ledger's snapshots, by relative path."""
    files = {}
    for pattern in ("batches/*/*.json", "settlement_lines/*/*.parquet", "ledger/cumulative/*.parquet",
                    "ledger/settled_quantities/*.parquet"):
        for path in sorted(out.glob(pattern)):
            files[str(path.relative_to(out))] = path.read_bytes()
    return files


def test_a_replay_on_the_standalone_cluster_gives_the_mini_clusters_batches(parity_case, cluster):
    folder, tariff, replay, mini = parity_case
    out = folder / "standalone"
    flink_stream(tariff, out, replay, "--checkpoint-interval-seconds", "1", master=cluster.master)
    assert head(out)["batch"] >= 3
    assert batch_files(out) == batch_files(mini)


def long_files(folder: Path, epochs: int = 8) -> Path:
    files = {}
    for epoch in range(epochs):
        base = epoch * 60
        files[f"k{epoch:02d}.jsonl"] = [event(f"k{epoch}-{i}", base + i, i + 1,
                                              consumer=CONSUMER_Y if i % 3 else "0x3333333333333333333333333333333333333333")
                                        for i in range(12)]
    return write_files(folder, files)


def test_a_taskmanager_killed_mid_run_restores_from_its_checkpoint_and_pays_nothing_twice(
        tmp_path, cluster):
    tariff = write_tariff(tmp_path)
    long_files(tmp_path / "in")
    replay = str(tmp_path / "in" / "*.jsonl")
    whole = tmp_path / "whole"
    flink_stream(tariff, whole, replay, "--checkpoint-interval-seconds", "1", master=cluster.master)

    out = tmp_path / "killed"
    args = ["stream", "--engine", "flink", "--replay", replay, *common_args(tariff, out),
            "--settle-seconds", SETTLE, "--no-validate", "--checkpoint-interval-seconds", "1",
            "--flink-master", cluster.master]
    job = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline and not (out / "ledger" / "HEAD.json").exists():
            assert job.poll() is None, job.stdout.read()
            time.sleep(0.2)
        assert head(out)["batch"] < 8, "the job ended before it could be interrupted"
        victim = cluster.taskmanager_pids()[0]
        os.kill(victim, signal.SIGKILL)
        output, _ = job.communicate(timeout=JOB_TIMEOUT)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, output
    from pipelines.flink_cluster import add_taskmanager

    add_taskmanager(cluster)  # the cluster back to 2 TaskManagers for whoever comes next
    assert batch_files(out) == batch_files(whole)
    assert run_json(out)["accepted"] == 8 * 12 and run_json(out)["pending"] == 0
    assert cumulative(out) == cumulative(whole)


# ------------------------------------------------------------------------------ watched folder

def test_files_dropped_into_a_watched_folder_give_the_batches_of_a_replay_and_the_job_ends_when_idle(
        parity_case):
    """The parity files, two there when the job starts and two renamed in while it runs (with a
    file still being written and a hidden one beside them, never read): the same batches as the
    replay, and the job drains and ends --stop-after-idle seconds after the last file."""
    folder, tariff, replay, mini = parity_case
    watched, out, trace = folder / "watched", folder / "watch-out", folder / "watch-trace.jsonl"
    watched.mkdir()
    sources = sorted((folder / "in").glob("*.jsonl"))
    for path in sources[:2]:
        (watched / path.name).write_bytes(path.read_bytes())
    args = ["stream", "--engine", "flink", "--watch", str(watched), *common_args(tariff, out),
            "--settle-seconds", SETTLE, "--no-validate", "--checkpoint-interval-seconds", "1",
            "--poll-seconds", "0.2", "--stop-after-idle", "8"]
    job = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env={**os.environ, "METERROOT_FLINK_TRACE": str(trace)})
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not (trace.exists() and sources[1].name in trace.read_text()):
            assert job.poll() is None and time.monotonic() < deadline, job.stdout.read()
            time.sleep(0.1)
        (watched / "p5.jsonl.tmp").write_text(lines_of_event("p9", 190, 5))  # not complete
        (watched / ".p6.jsonl").write_text(lines_of_event("p8", 191, 5))  # hidden
        for path in sources[2:]:
            partial = watched / f"{path.name}.part"
            partial.write_bytes(path.read_bytes())
            os.replace(partial, watched / path.name)
        output, _ = job.communicate(timeout=JOB_TIMEOUT)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, output
    # the same bytes but for where the manifests say the files were read from
    replayed_from = str(folder / "in").encode()
    assert {name: data.replace(str(watched).encode(), replayed_from)
            for name, data in batch_files(out).items()} == batch_files(mini)
    run = run_json(out)
    assert run["finished"] and run["pending"] == 0 and run["read"] == run_json(mini)["read"]
    read = [json.loads(line)["path"] for line in trace.read_text().splitlines()]
    assert [Path(p).name for p in read] == [p.name for p in sources]


def lines_of_event(event_id: str, seconds: int, quantity: int) -> str:
    return json.dumps(event(event_id, seconds, quantity)) + "\n"


def test_a_watched_folder_that_is_not_one_is_refused_before_the_job_starts(tmp_path, flink_ready):
    tariff = write_tariff(tmp_path)
    done = meterroot("stream", "--engine", "flink", "--watch", str(tmp_path / "missing"),
                     *common_args(tariff, tmp_path / "out"), check=False)
    assert done.returncode == 2
    assert "--watch" in done.stderr and "is not a folder" in done.stderr
    assert "Traceback" not in done.stderr
