"""Every chain verb that writes OUT holds OUT's lock (SPEC §10): while a `meterroot batch` holds
it, `chain commit`, `chain revoke --output`, `permits --ingest` and `validate` exit 2 naming
the batch and change nothing, on chain or in OUT, and `chain watch` commits nothing until the
batch is done; after it, the same commands go through."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from sinks.chain.watch import Watcher
from sinks.ledger_store import LedgerStore
from tests.chain.conftest import TREASURY
from tests.support.events import CONSUMER, event, write_jsonl, write_tariff

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _batch_args(out, tariff, deployment, path):
    return ["batch", "--tariff", str(tariff), "--output", str(out), "--chain-id", str(deployment.chain_id),
            "--registry", deployment.registry, "--input", str(path), "--no-validate"]


def test_chain_verbs_that_write_out_wait_for_a_batch_that_holds_it(tmp_path, deployment, registry, capsys):
    file = tmp_path / "deployment.json"
    deployment.write(file)
    tariff = write_tariff(tmp_path / "tariff.json", {
        "version": "t", "epoch_seconds": 3600, "protocol_fee_bps": 250, "treasury": TREASURY,
        "prices": [{"contract": "*", "unit": "request", "tiers": [{"up_to": None, "price_wei": "10"}]}]})
    out = tmp_path / "out"
    inputs = [write_jsonl(tmp_path / f"in-{k}.jsonl",  # other quantities: other roots
                          [event(f"e{k}-{i}", consumer=CONSUMER, quantity=10 + k) for i in range(3)])
              for k in range(4)]
    for path in inputs[:2]:
        assert main(_batch_args(out, tariff, deployment, path)) == 0
    assert main(["chain", "commit", "--output", str(out), "--deployment", str(file), "--skip-validation"]) == 0
    assert main(["chain", "revoke", "--deployment", str(file), "--batch", "2", "--reason", "r",
                 "--output", str(out)]) == 0  # batch 2 rolled back: OUT is at batch 1, the chain too
    assert LedgerStore(out).head().batch == 1 and registry.latest_batch() == 1
    assert main(_batch_args(out, tariff, deployment, inputs[2])) == 0  # batch 2 again, not on chain
    permits = write_jsonl(tmp_path / "permits.jsonl", [])
    capsys.readouterr()

    # A real batch run that stops itself at its commit point, holding OUT's lock.
    batch = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *_batch_args(out, tariff, deployment, inputs[3])],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "METERROOT_FAILPOINT": "before-ledger-head",
                                  "METERROOT_FAILPOINT_ACTION": "stop"})
    deadline = time.monotonic() + 180
    while batch.poll() is None and not _stopped(batch.pid):
        assert time.monotonic() < deadline, "the batch never reached its commit point"
        time.sleep(0.05)
    assert batch.poll() is None, batch.communicate()
    notes = []
    try:
        journal = out / "chain" / "journal.jsonl"
        sent = journal.read_bytes()
        for argv in (["chain", "commit", "--output", out, "--deployment", file, "--skip-validation"],
                     ["chain", "revoke", "--deployment", file, "--batch", 1, "--reason", "r", "--output", out],
                     ["permits", "--output", out, "--ingest", permits],
                     ["validate", "--output", out]):
            code = main([str(a) for a in argv])
            err = capsys.readouterr().err
            assert code == 2, (argv, err)
            assert f"is in use by pid {batch.pid}" in err and "`meterroot batch`" in err, (argv, err)
        Watcher(out, registry, skip_validation=True, emit=notes.append).step()
        assert registry.latest_batch() == 1 and not registry.batch(1).revoked  # nothing sent
        assert journal.read_bytes() == sent and not (out / "permits").exists()
        assert LedgerStore(out).head().batch == 2
        assert [n for n in notes if n.startswith("batch ")] == []  # no "batch B: committed root …"
        assert any(f"in use by pid {batch.pid}" in n for n in notes), notes
    finally:
        os.kill(batch.pid, signal.SIGCONT)
        stdout, stderr = batch.communicate(timeout=300)
    assert batch.returncode == 0, stdout + stderr
    # The batch is done: the watch's next step commits what it and the run before it settled.
    Watcher(out, registry, skip_validation=True, emit=notes.append).step()
    assert registry.latest_batch() == 3 == LedgerStore(out).head().batch, notes
    assert main(["permits", "--output", str(out), "--ingest", str(permits)]) == 0
