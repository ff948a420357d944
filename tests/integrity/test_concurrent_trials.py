"""Overlapping runs, many times (SPEC §10): in each of TRIALS seeded trials, two or three
`meterroot batch` processes start together on one OUT, each with its own input (seeded sizes,
prices, times, a few events repeated from another input, bad records), at seeded start skews,
some exiting 2 at once when OUT is held and some waiting for it (--wait-lock). An operator
retries each that exited 2. Then: batches are numbered 1..n without gap or reuse, each run
that settled printed its own number, every event is settled exactly once, the total paid is
one sequential run's over the same inputs to the wei, no staging is left, and `meterroot
verify` passes. Trials run two at a time (each on its own OUT) through the fork server."""
from __future__ import annotations

import random
import re
import socket

import pytest

from tests.integrity.support import batch_args, head, paid_total, seeded_events, seeded_usage_file, settled_event_ids
from tests.support.events import write_tariff

pytestmark = pytest.mark.slow
SEED = 90210
TRIALS = 12
AT_ONCE = 2  # trials run side by side


def _trial_inputs(root, t, tariff):
    rng = random.Random(f"{SEED}-{t}")
    procs = 2 if t % 2 == 0 else 3
    files, ids, runs = [], set(), []
    previous = []
    for k in range(procs):
        events = seeded_events(rng, f"t{t}p{k}", rng.randint(10, 40))
        repeated = rng.sample(previous, min(3, len(previous)))  # the same events, again
        previous = events
        files.append(seeded_usage_file(root / f"t{t}-in-{k}.jsonl", rng, events + repeated, bad=rng.randint(0, 2)))
        ids |= {e["event_id"] for e in events}
    out = root / f"t{t}-out"
    for k, f in enumerate(files):
        waits = rng.random() < 0.4
        runs.append({"argv": [str(a) for a in batch_args([f], tariff, out, *(["--wait-lock", 300] if waits else []))],
                     "delay": round(rng.uniform(0, 1.5), 3), "waits": waits})
    return {"trial": t, "out": out, "files": files, "ids": ids, "runs": runs}


@pytest.fixture(scope="module")
def trials(forks, tmp_path_factory):
    root = tmp_path_factory.mktemp("trials")
    tariff = write_tariff(root / "tariff.json")
    trials = [_trial_inputs(root, t, tariff) for t in range(TRIALS)]
    for start in range(0, TRIALS, AT_ONCE):  # the runs of AT_ONCE trials, all forked together
        group = trials[start:start + AT_ONCE]
        results = forks.run([{k: v for k, v in run.items() if k != "waits"} for trial in group for run in trial["runs"]])
        for trial in group:
            trial["results"], results = results[:len(trial["runs"])], results[len(trial["runs"]):]
    pending = [[k for k, r in enumerate(trial["results"]) if r["code"] == 2] for trial in trials]
    for trial in trials:
        trial["retries"] = []
    while any(pending):  # the operator's retries: one at a time per OUT
        now = [(trial, queue.pop(0)) for trial, queue in zip(trials, pending) if queue]
        done = forks.run([{"argv": trial["runs"][k]["argv"]} for trial, k in now], at_once=AT_ONCE)
        for (trial, k), result in zip(now, done):
            trial["retries"].append((k, result))
    references = forks.run([{"argv": [str(a) for a in batch_args(trial["files"], tariff, root / f"t{trial['trial']}-one")]}
                            for trial in trials], at_once=AT_ONCE)
    verified = forks.run([{"argv": ["verify", "--output", str(trial["out"])]} for trial in trials])
    for trial, reference, verify in zip(trials, references, verified):
        assert reference["code"] == 0, reference
        trial["expected_total"] = paid_total(root / f"t{trial['trial']}-one")
        trial["verify"] = verify
    return trials


def _settled_number(result) -> int | None:
    found = re.search(r"^settled batch (\d+):", result["stdout"], re.M)
    return int(found.group(1)) if found else None


@pytest.mark.parametrize("t", range(TRIALS))
def test_runs_started_together_settle_every_event_once_in_numbered_batches(trials, t):
    trial = trials[t]
    out, results, runs = trial["out"], trial["results"], trial["runs"]
    for run, result in zip(runs, results):
        assert result["code"] in (0, 2), result
        assert "Traceback" not in result["stderr"], result["stderr"]
        if run["waits"]:
            assert result["code"] == 0, ("a run given --wait-lock did not wait", result)
        if result["code"] == 2:
            assert "is in use by pid" in result["stderr"] and socket.gethostname() in result["stderr"], result
    assert any(r["code"] == 0 for r in results), "no run took OUT"
    for _, retry in trial["retries"]:
        assert retry["code"] == 0, retry
    settled = [_settled_number(r) for r in results if r["code"] == 0] + [_settled_number(r) for _, r in trial["retries"]]
    n = len(trial["files"])
    assert sorted(settled) == list(range(1, n + 1)), ("batches numbered with a gap or reused", settled)
    assert head(out)["batch"] == n
    assert sorted(int(p.name) for p in (out / "batches").iterdir()) == list(range(1, n + 1))
    ids = settled_event_ids(out)
    assert len(ids) == len(set(ids)), "an event settled twice"
    assert set(ids) == trial["ids"], "an event never settled"
    assert paid_total(out) == trial["expected_total"]
    assert not list((out / ".staging").iterdir())
    assert trial["verify"]["code"] == 0, trial["verify"]


def test_zz_report_what_was_tried(trials, capsys):
    runs = [r for t in trials for r in t["results"]]
    with capsys.disabled():
        print(f"\n{TRIALS} trials, {len(runs)} runs started together "
              f"({sum(len(t['runs']) == 3 for t in trials)} trials of three): "
              f"{sum(r['code'] == 2 for r in runs)} exited 2 and were retried, "
              f"{sum(run['waits'] for t in trials for run in t['runs'])} waited with --wait-lock")
