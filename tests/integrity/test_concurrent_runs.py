"""One writer per output directory (SPEC §10): `meterroot batch` processes started together on one
OUT, as overlapping cron jobs would. Batches are numbered without gaps or reuse, every event is
paid exactly once, and the loser exits 2 naming the holder (or waits with --wait-lock)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from sinks.lock import OutputLock
from tests.integrity.support import (REPO, batch, batch_args, command, head, paid_total,
                                     settled_event_ids, usage_file)
from tests.support.events import write_tariff

pytestmark = pytest.mark.slow
EVENTS_PER_FILE = 150


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent")
    files = [usage_file(root / f"in-{k}.jsonl", f"f{k}", EVENTS_PER_FILE) for k in range(3)]
    tariff = write_tariff(root / "tariff.json")
    sequential = root / "sequential"
    batch(files, tariff, sequential)
    return files, tariff, paid_total(sequential)


def _start_together(argvs):
    procs = [subprocess.Popen(command(*a), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for a in argvs]
    return [(p.wait(timeout=300), *p.communicate()) for p in procs]


def _check_ledger(out, files, expected_total, batches):
    assert head(out)["batch"] == batches
    assert sorted((out / "batches").iterdir()) == sorted(out / "batches" / str(b) for b in range(1, batches + 1))
    ids = settled_event_ids(out)
    assert len(ids) == len(set(ids)) == EVENTS_PER_FILE * len(files), "an event settled twice or never"
    assert paid_total(out) == expected_total
    assert not list((out / ".staging").iterdir())


@pytest.mark.parametrize("trial", range(3))
def test_two_runs_at_once_one_settles_the_other_exits_2_naming_it(inputs, tmp_path, trial):
    files, tariff, expected = inputs
    out = tmp_path / "out"
    results = _start_together([batch_args([files[0]], tariff, out), batch_args([files[1]], tariff, out)])
    codes = sorted(code for code, _, _ in results)
    assert set(codes) <= {0, 2} and 0 in codes, results
    for code, _, err in results:
        if code == 2:
            assert "is in use by pid" in err and socket.gethostname() in err and "Traceback" not in err
    for k, (code, _, _) in enumerate(results):
        if code == 2:  # the operator's retry
            batch([files[k]], tariff, out)
    batch([files[2]], tariff, out)
    _check_ledger(out, files, expected, batches=3)


@pytest.mark.parametrize("trial", range(2))
def test_three_runs_at_once_with_wait_lock_settle_in_turn(inputs, tmp_path, trial):
    files, tariff, expected = inputs
    out = tmp_path / "out"
    results = _start_together([batch_args([f], tariff, out, "--wait-lock", 240) for f in files])
    assert [code for code, _, _ in results] == [0, 0, 0], results
    settled = sorted(int(line.split()[2].rstrip(":")) for _, stdout, _ in results
                     for line in stdout.splitlines() if line.startswith("settled batch"))
    assert settled == [1, 2, 3]
    _check_ledger(out, files, expected, batches=3)


def test_a_held_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(inputs, tmp_path):
    files, tariff, expected = inputs
    out = tmp_path / "out"
    with OutputLock(out, "test"):
        refused = batch([files[0]], tariff, out, check=2)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in refused.stderr
    assert "`meterroot test`" in refused.stderr and not (out / "ledger").exists()
    killed = batch([files[0]], tariff, out, check=None, env={"METERROOT_FAILPOINT": "before-ledger-head"})
    assert killed.returncode == -signal.SIGKILL
    for f in files:  # the dead run's lock file is still there; its lock is not
        batch([f], tariff, out)
    _check_ledger(out, files, expected, batches=3)
