"""`meterroot stream` end to end on Prism (one job server for the session): replay and watched
folders, late data within and past the allowed lateness, restarts, and parity with batch mode."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import stream as stream_pipeline
from settlement.errors import UsageError
from pipelines.batch import settle
from pipelines.cli import main
from pipelines.flink_runner import find_prism_binary
from settlement.token_ids import load_token_ids
from sinks import layout

from tests.streaming.scenario import (CHAIN_ID, CONSUMER_X, CONSUMER_Y, PROVIDER_A, PROVIDER_B,
                                      REGISTRY, TREASURY, common_args, cumulative, event, head,
                                      lines_by_batch, lines_of, manifest, run_json, write_files,
                                      write_tariff)

REPO = Path(__file__).resolve().parents[2]

# Replayed in name order. Epochs are one minute; the allowed lateness is one epoch.
LATE_SCENARIO = {
    "01.jsonl": [event("a", 10, 4), event("b", 20, 4, provider=PROVIDER_B)],
    "02.jsonl": [event("c", 70, 3)],                # watermark 70: epoch 0 closes -> batch 1
    "03.jsonl": [event("d", 30, 5)],                # late for epoch 0, within its lateness
    "04.jsonl": [event("e", 125, 1)],               # watermark 125: epoch 1 closes -> batch 2,
                                                    # and epoch 0 stops taking data
    "05.jsonl": [event("f", 40, 7), event("g", 130, 2), "{not json"],  # f is past the lateness
}

# Only on-time data: every epoch is complete before the watermark passes its end.
PARITY_SCENARIO = {
    "p1.jsonl": [event("x0", 5, 7), event("x1", 15, 6, provider=PROVIDER_B),
                 event("y0", 25, 3, consumer=CONSUMER_Y)],
    "p2.jsonl": [event("x2", 65, 12), event("y1", 75, 4, consumer=CONSUMER_Y, provider=PROVIDER_B)],
    "p3.jsonl": [event("x3", 125, 9, provider=PROVIDER_B), event("y2", 135, 11, consumer=CONSUMER_Y),
                 event("y3", 140, 2, consumer=CONSUMER_Y, provider=PROVIDER_B)],
}


def replay(tmp_path, prism_args, files, out_name="out", extra=()):
    inputs = write_files(tmp_path / "in", files)
    tariff = write_tariff(tmp_path)
    out = tmp_path / out_name
    result = stream_pipeline.run(common_args(tariff, out) + ["--replay", str(inputs / "*.jsonl"),
                                                             *extra] + prism_args)
    return result, out, tariff


def test_replay_cuts_a_batch_per_epoch_and_late_data_rides_on_the_next(tmp_path, prism_args):
    result, out, _ = replay(tmp_path, prism_args, LATE_SCENARIO)

    assert result.batches == [1, 2, 3]
    assert lines_by_batch(out) == {
        1: [(0, CONSUMER_X, PROVIDER_A, 4, 400), (0, CONSUMER_X, PROVIDER_B, 4, 400)],
        # d's 5 requests follow the 8 settled in epoch 0: 2 x 100 + 3 x 10 wei.
        2: [(0, CONSUMER_X, PROVIDER_A, 5, 230), (1, CONSUMER_X, PROVIDER_A, 3, 300)],
        3: [(2, CONSUMER_X, PROVIDER_A, 3, 300)],
    }
    assert [manifest(out, b)["epochs"] for b in (1, 2, 3)] == [[0], [0, 1], [2]]
    run = result.run
    assert {k: run[k] for k in ("read", "accepted", "duplicates", "quarantined", "too_late", "pending")} == \
        {"read": 8, "accepted": 6, "duplicates": 0, "quarantined": 1, "too_late": 1, "pending": 0}
    assert run == run_json(out) and run["finished"]
    last = manifest(out, 3)["inputs"]
    assert [(Path(i["path"]).name, i["read"], i["accepted"], i["quarantined"]) for i in last] == \
        [("04.jsonl", 1, 1, 0), ("05.jsonl", 2, 1, 1)]


def test_data_past_the_lateness_goes_to_late_and_a_batch_run_settles_it_exactly(tmp_path, prism_args):
    result, out, tariff = replay(tmp_path, prism_args, LATE_SCENARIO)
    late_files = sorted((out / "late").glob("*.jsonl"))
    assert [f"late/{p.name}" for p in late_files] == result.run["late_files"]
    assert [Path(i["path"]).name for i in result.run["inputs"] if i["too_late"]] == ["05.jsonl"]
    assert late_files[0].read_text().count("\n") == 1

    batch = settle([str(out / "late" / "*.jsonl")], str(tariff), str(out), CHAIN_ID, REGISTRY,
                   ["--runner=DirectRunner"])

    assert batch.batch == 4
    # f's 7 requests of epoch 0 follow the 13 settled by the stream: all in the 10 wei tier.
    assert lines_by_batch(out)[4] == [(0, CONSUMER_X, PROVIDER_A, 7, 70)]
    assert head(out)["batch"] == 4


def test_batch_and_stream_give_the_same_lines_and_cumulative_amounts(tmp_path, prism_args):
    result, streamed, tariff = replay(tmp_path, prism_args, PARITY_SCENARIO)
    assert result.batches == [1, 2, 3]

    batched = tmp_path / "batched"
    assert main(["batch", "--input", str(tmp_path / "in" / "*.jsonl"), *common_args(tariff, batched),
                 "--no-validate"]) == 0

    assert head(batched)["batch"] == 1
    assert lines_of(streamed) == lines_of(batched)
    assert cumulative(streamed) == cumulative(batched)
    payees = {payee for _, payee in cumulative(streamed)}
    assert payees == {PROVIDER_A, PROVIDER_B, TREASURY}


def test_a_rerun_over_settled_files_appends_nothing(tmp_path, prism_args):
    replay(tmp_path, prism_args, PARITY_SCENARIO)
    settled = head(tmp_path / "out")

    again, out, _ = replay(tmp_path, prism_args, PARITY_SCENARIO)

    assert again.batches == []
    assert (again.run["read"], again.run["duplicates"], again.run["accepted"]) == (8, 8, 0)
    assert head(out) == settled


def drop(folder: Path, name: str, records: list) -> None:
    """Write a file beside the watched folder's view (a dot name), then rename it in."""
    write_files(folder, {f".{name}": records})
    os.replace(folder / f".{name}", folder / name)


def test_watched_folder_settles_dropped_files_and_ends_when_idle(tmp_path, prism_args):
    watched = tmp_path / "watched"
    watched.mkdir()
    out = tmp_path / "out"
    args = common_args(write_tariff(tmp_path), out) + [
        "--watch", str(watched), "--stop-after-idle", "2", "--poll-seconds", "0.2"] + prism_args
    results = []
    job = threading.Thread(target=lambda: results.append(stream_pipeline.run(args)))
    job.start()
    drop(watched, "p1.jsonl", PARITY_SCENARIO["p1.jsonl"])
    time.sleep(0.5)
    (watched / "notes.txt").write_text("not a usage file")
    drop(watched, "p2.jsonl", PARITY_SCENARIO["p2.jsonl"])
    job.join(timeout=60)

    assert not job.is_alive()
    assert results[0].batches == [1, 2]
    assert [manifest(out, b)["epochs"] for b in (1, 2)] == [[0], [1]]
    assert results[0].run["read"] == 5


# ------------------------------------------------------------------------------ runners

def test_without_prism_the_command_says_to_run_make_prism(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stream_pipeline, "find_prism_binary",
                        lambda: find_prism_binary(cache_dir=tmp_path, beam_version="2.77.0"))
    inputs = write_files(tmp_path / "in", {"a.jsonl": [event("a", 1, 1)]})
    code = main(["stream", *common_args(write_tariff(tmp_path), tmp_path / "out"),
                 "--replay", str(inputs / "*.jsonl")])
    assert code == 2
    assert "make prism" in capsys.readouterr().err
    assert not (tmp_path / "out" / "ledger").exists()


def test_beams_flink_runner_is_refused_and_points_at_engine_flink():
    with pytest.raises(UsageError, match="--engine flink"):
        stream_pipeline.runner_args(["--runner", "FlinkRunner"])


def test_prism_is_the_default_runner(monkeypatch, tmp_path):
    binary = tmp_path / "prism"
    monkeypatch.setattr(stream_pipeline, "find_prism_binary", lambda: binary)
    args = stream_pipeline.runner_args([])
    assert args[0] == "--runner=PrismRunner" and f"--prism_location={binary}" in args
    assert "--streaming" in args


def test_watch_and_replay_together_are_refused(tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["stream", *common_args(write_tariff(tmp_path), tmp_path / "out"),
              "--watch", str(tmp_path), "--replay", "x.jsonl"])
    assert exited.value.code == 2


def test_a_missing_watched_folder_is_a_usage_error(tmp_path, capsys):
    code = main(["stream", *common_args(write_tariff(tmp_path), tmp_path / "out"),
                 "--watch", str(tmp_path / "nowhere")])
    assert code == 2
    assert "not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- chain

def test_stream_validates_and_commits_each_batch_on_chain(tmp_path, prism_args, anvil_url):
    from sinks.chain.keys import anvil_dev_account
    from sinks.chain.local import connect_registry
    from sinks.chain.rpc import Sender, connect
    from sinks.chain.deployment import deploy

    deployment = deploy(Sender(connect(anvil_url), anvil_dev_account()), test_token=True,
                        challenge_period=100, thaw_period=300, rpc_url=anvil_url)
    deployment.write(tmp_path / "deployment.json")
    inputs = write_files(tmp_path / "in", PARITY_SCENARIO)
    out = tmp_path / "out"
    code = main(["stream", "--tariff", str(write_tariff(tmp_path)), "--output", str(out),
                 "--chain-id", str(deployment.chain_id), "--registry", deployment.registry,
                 "--replay", str(inputs / "*.jsonl"), "--commit",
                 "--deployment", str(tmp_path / "deployment.json"), *prism_args])

    assert code == 0
    registry = connect_registry(deployment)
    assert registry.latest_batch() == 3
    for batch in (1, 2, 3):
        assert "0x" + registry.batch(batch).root.hex() == manifest(out, batch)["root"]
        assert (out / "quality" / str(batch) / "validation.json").exists()


def test_a_killed_stream_restarts_from_its_last_batch_and_settles_the_same_money(tmp_path, prism_args):
    inputs = write_files(tmp_path / "in", PARITY_SCENARIO)
    tariff = write_tariff(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.cli", "stream", *common_args(tariff, out),
               "--replay", str(inputs / "*.jsonl"), "--no-validate"]
    # Its own Prism (the default runner), in its own process group: killed together, at once.
    job = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (out / "ledger" / "HEAD.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    killed_at = head(out)["batch"]

    again = stream_pipeline.run(common_args(tariff, out) + ["--replay", str(inputs / "*.jsonl")]
                                + prism_args)

    assert again.batches == list(range(killed_at + 1, 4))
    batched = tmp_path / "batched"
    settle([str(inputs / "*.jsonl")], str(tariff), str(batched), CHAIN_ID, REGISTRY, ["--runner=DirectRunner"])
    assert lines_of(out) == lines_of(batched)
    assert cumulative(out) == cumulative(batched)


def test_stream_quarantines_bad_token_id_as_batch_does(tmp_path, prism_args):
    """--token-ids on the Beam stream: the same check as the batch (settlement.validation), the
    same lines, and the mapping's digest in every manifest and in run.json."""
    wrong = dict(event("x-wrong", 20, 3), token_id=9)
    files = {"t1.jsonl": [dict(event("x0", 5, 7), token_id=5), wrong, event("y0", 25, 3, consumer=CONSUMER_Y)],
             "t2.jsonl": [dict(event("y1", 75, 4, consumer=CONSUMER_Y), token_id=77)]}
    ids = tmp_path / "ids.json"
    ids.write_text(f'{{"{CONSUMER_X}": 5}}')
    result, out, tariff = replay(tmp_path, prism_args, files, extra=["--token-ids", str(ids)])
    run = result.run
    assert {k: run[k] for k in ("read", "accepted", "quarantined", "pending")} == \
        {"read": 4, "accepted": 3, "quarantined": 1, "pending": 0}
    [row] = pq.read_table(layout.quarantine_path(out, 1)).to_pylist()
    assert (row["reason"], json.loads(row["record"])["event_id"]) == ("bad_token_id", "x-wrong")
    digest = load_token_ids(ids).hash
    assert run["token_ids_hash"] == digest
    assert all(manifest(out, b)["token_ids_hash"] == digest for b in result.batches)

    batched = tmp_path / "batched"
    assert main(["batch", "--input", str(tmp_path / "in" / "*.jsonl"), *common_args(tariff, batched),
                 "--token-ids", str(ids), "--no-validate"]) == 0
    assert lines_of(out) == lines_of(batched)


def test_the_flink_reader_applies_the_same_check(tmp_path):
    """pipelines/flink_job.py's reader validates with the mapping too: its per-file helper, run in
    the Flink environment (.venv-flink) as the job runs it."""
    from pipelines.flink_runner import FlinkMissing, flink_python

    try:
        python = flink_python()
    except FlinkMissing as missing:
        pytest.skip(str(missing))
    inputs = write_files(tmp_path / "in", {"f.jsonl": [dict(event("a", 5, 1), token_id=1),
                                                       dict(event("b", 6, 1), token_id=2)]})
    ids = tmp_path / "ids.csv"
    ids.write_text(f"consumer,token_id\n{CONSUMER_X},1\n")
    script = ("import sys\n"
              "from pipelines.flink_job import QUARANTINE, from_ipc, read_usage_file\n"
              "from settlement.tariff import load_tariff\n"
              "from settlement.token_ids import load_token_ids\n"
              "rows = read_usage_file(sys.argv[1], load_tariff(sys.argv[2]), 2, load_token_ids(sys.argv[3]))\n"
              "for kind, row in rows:\n"
              "    if kind == QUARANTINE:\n"
              "        print(*from_ipc(row[6]).column('reason').to_pylist())\n")
    done = subprocess.run([str(python), "-c", script, str(inputs / "f.jsonl"), str(write_tariff(tmp_path)),
                           str(ids)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["bad_token_id"]
