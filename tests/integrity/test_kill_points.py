"""kill -9 anywhere in a run (SPEC §7, §10): a `meterroot batch` killed at seeded points, then
run again with the same inputs, leaves exactly what one uninterrupted run leaves.

The points are the run's own: every file a run writes is renamed into place once, and the
run is killed just before or just after the N-th rename (N drawn from the write trace of an
uninterrupted run, METERROOT_KILL_AT_WRITE); at each named commit point (METERROOT_FAILPOINT);
and at seeded times drawn from the measured duration of an uninterrupted run, which land
inside the pipeline between writes. After each: the rerun exits 0, the ledger and every output
are byte for byte the uninterrupted run's (same HEAD root and digests, same lines, tree,
quarantine), the batch is validated and catalogued, its quarantine written once, nothing is
left in staging, and `meterroot verify` passes."""
from __future__ import annotations

import random
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.integrity.support import batch_args, head, read_json, seeded_events, seeded_usage_file, tree_bytes
from tests.support.events import write_tariff

pytestmark = pytest.mark.slow
SEED = 20261201
NAMED_POINTS = ("before-ledger-head", "after-ledger-head", "before-run-json", "after-run-json")
WRITE_POINTS = 10      # seeded renames of the second batch's run
FRESH_WRITE_POINTS = 3  # seeded renames of a first run on an empty OUT
TIMED_POINTS = 5       # seeded times inside the second batch's run


@pytest.fixture(scope="module")
def clean(forks, tmp_path_factory):
    """Two uninterrupted runs (batch 1 on an empty OUT, batch 2 on top), with their write
    traces and durations."""
    root = tmp_path_factory.mktemp("kill")
    rng = random.Random(SEED)
    tariff = write_tariff(root / "tariff.json")
    first, second = seeded_events(rng, "k1", 60), seeded_events(rng, "k2", 60)
    files = [seeded_usage_file(root / "in-1.jsonl", rng, first),
             seeded_usage_file(root / "in-2.jsonl", rng, second + rng.sample(first, 8), bad=2)]
    runs = {}
    for n, out in ((1, root / "one"), (2, root / "two")):
        if n == 2:
            shutil.copytree(root / "one", out)
        trace = root / f"trace-{n}.txt"
        done = forks.one(batch_args([files[n - 1]], tariff, out, validate=True),
                    env={"METERROOT_WRITE_TRACE": str(trace)})
        assert done["code"] == 0, done
        runs[n] = {"out": out, "writes": len(trace.read_text().splitlines()), "seconds": done["seconds"],
                   "files": tree_bytes(out), "run": read_json(out / "run.json")}
    return root, tariff, files, runs


def _kill_points():
    rng = random.Random(SEED)
    points = [("named", 2, p) for p in NAMED_POINTS]
    points += [("write", 2, k) for k in range(WRITE_POINTS)]
    points += [("write", 1, k) for k in range(FRESH_WRITE_POINTS)]
    points += [("timed", 2, round(rng.random(), 3)) for _ in range(TIMED_POINTS)]
    return points


def _kill_env(kind, value, runs, n, draw: random.Random):
    """The environment (or kill time) of one point; write points are drawn from the trace."""
    if kind == "named":
        return {"env": {"METERROOT_FAILPOINT": value}}, value
    if kind == "write":
        writes = runs[n]["writes"]
        number = draw.randint(1, writes)
        after = number < writes and draw.random() < 0.5  # after the last write the run is done
        point = f"{number}{'+' if after else ''}"
        return {"env": {"METERROOT_KILL_AT_WRITE": point}}, f"rename {point} of {writes}"
    seconds = round(0.05 + value * 0.9 * runs[n]["seconds"], 3)
    return {"kill_after": seconds}, f"{seconds} s of {runs[n]['seconds']:.2f} s"


def _renames(trace) -> int:
    return len(trace.read_text().splitlines()) if trace.exists() else 0


def _quarantine_rows(out) -> int:
    return sum(pq.read_metadata(p).num_rows for p in out.glob("quarantine/**/*.parquet"))


AT_ONCE = 2  # trials run side by side, each on its own OUT


@pytest.fixture(scope="module")
def trials(forks, clean, tmp_path_factory):
    """Every kill point, then every rerun, then every verify: AT_ONCE at a time."""
    root, tariff, files, runs = clean
    trials = []
    for i, (kind, n, value) in enumerate(_kill_points()):
        out = tmp_path_factory.mktemp(f"killed-{i}") / "out"
        if n == 2:
            shutil.copytree(runs[1]["out"], out)
        how, where = _kill_env(kind, value, runs, n, random.Random(f"{SEED}-{kind}-{n}-{value}"))
        trials.append({"n": n, "out": out, "where": where, "how": how,
                       "argv": [str(a) for a in batch_args([files[n - 1]], tariff, out, validate=True)]})
    for trial in trials:  # each killed run traces its renames, to tell a kill after its last one
        trial["trace"] = trial["out"].parent / "trace.txt"
        trial["how"].setdefault("env", {})["METERROOT_WRITE_TRACE"] = str(trial["trace"])
    for trial, killed in zip(trials, forks.run([{"argv": t["argv"], **t["how"]} for t in trials], at_once=AT_ONCE)):
        trial["killed"] = killed
        trial["finished"] = _renames(trial["trace"]) == runs[trial["n"]]["writes"]
    # A timed kill may land after the run's last rename (while the process exits): that run
    # finished, and running it again would be a second run of a settled input, not a recovery.
    again = [t for t in trials if t["killed"]["code"] == -9 and not t["finished"]]
    for trial, rerun in zip(again, forks.run([{"argv": t["argv"]} for t in again], at_once=AT_ONCE)):
        trial["rerun"] = rerun
    for trial, verified in zip(trials, forks.run([{"argv": ["verify", "--output", str(t["out"])]} for t in trials])):
        trial["verify"] = verified
    return trials


@pytest.mark.parametrize("i", range(len(_kill_points())),
                         ids=[f"{k}-batch{n}-{i}" for i, (k, n, _) in enumerate(_kill_points())])
def test_a_run_killed_at_any_point_reruns_to_the_uninterrupted_result(clean, trials, i):
    runs = clean[3]
    trial = trials[i]
    n, out, where, killed = trial["n"], trial["out"], trial["where"], trial["killed"]
    assert killed["code"] in (-9, 0), (where, killed)
    assert "Traceback" not in killed["stderr"], (where, killed["stderr"])
    if "rerun" in trial:
        rerun = trial["rerun"]
        assert rerun["code"] == 0, (where, rerun)
        assert f"settled batch {n}" in rerun["stdout"], (where, rerun["stdout"])
    else:  # not killed, or killed after its last rename: the run itself left the final state
        assert killed["code"] == 0 or trial["finished"], (where, killed)
    expected = runs[n]
    assert tree_bytes(out) == expected["files"], where
    assert head(out)["roots"] == head(expected["out"])["roots"]
    assert _quarantine_rows(out) == _quarantine_rows(expected["out"]), f"quarantine written twice ({where})"
    run = read_json(out / "run.json")
    assert {k: v for k, v in run.items() if k != "message"} == \
        {k: v for k, v in expected["run"].items() if k != "message"}, where
    record = read_json(out / "quality" / str(n) / "validation.json")
    assert record["success"] is True and record["files"] == read_json(
        expected["out"] / "quality" / str(n) / "validation.json")["files"], where
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT max(batch), count(*) FROM batches").fetchone() == (n, n), where
    con.close()
    assert not list((out / ".staging").iterdir()), where
    assert trial["verify"]["code"] == 0, (where, trial["verify"])


def test_zz_report_what_was_tried(clean, trials, capsys):
    runs = clean[3]
    with capsys.disabled():
        print(f"\n{len(trials)} kill points ({', '.join(t['where'] for t in trials)}); "
              f"{sum('rerun' in t for t in trials)} killed and rerun, "
              f"{sum(t['finished'] for t in trials)} finished before their kill; "
              f"writes per run {runs[1]['writes']} (batch 1), {runs[2]['writes']} (batch 2)")
