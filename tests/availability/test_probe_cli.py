"""`meterroot probe` against real endpoints on loopback: ok while the node answers and its head
moves, not ok when nothing answers or the head is stale; every record it writes is valid."""

from pipelines.cli import main
from settlement.probes import split_probes
from sinks.chain import anvil
from sinks.chain.registry import advance_time
from sinks.chain.rpc import connect

PROVIDER = "0x1000000000000000000000000000000000000001"


def records(folder):
    files = [(str(p), p.read_text()) for p in sorted(folder.glob("*.jsonl"))]
    split = split_probes(files)
    assert split.read == len(split.accepted), split.quarantined
    return split.accepted


def test_probes_of_a_live_node_are_ok_and_valid(anvil_url, tmp_path):
    w3 = connect(anvil_url)
    assert main(["probe", "--target", anvil_url, "--provider", PROVIDER, "--out", str(tmp_path),
                 "--probe-seconds", "0.1", "--count", "4"]) == 0
    probes = records(tmp_path)
    assert len(probes) == 4 and all(p.ok for p in probes)
    assert {p.provider for p in probes} == {p.prober for p in probes} == {PROVIDER}
    assert len({p.probe_id for p in probes}) == 4
    assert all(p.latency_ms >= 0 for p in probes)
    assert w3.eth.block_number >= 0


def test_probes_of_a_dead_endpoint_are_not_ok(tmp_path):
    dead = f"http://127.0.0.1:{anvil.free_port()}"
    assert main(["probe", "--target", dead, "--provider", PROVIDER, "--out", str(tmp_path),
                 "--probe-seconds", "0.1", "--count", "3", "--prober", "0x7000000000000000000000000000000000000007"]) == 0
    probes = records(tmp_path)
    assert len(probes) == 3 and not any(p.ok for p in probes)


def test_a_head_that_does_not_move_is_stale(anvil_url, tmp_path):
    # the session's anvil mines only on transactions: its head stands still during this test
    assert main(["probe", "--target", anvil_url, "--provider", PROVIDER, "--out", str(tmp_path),
                 "--probe-seconds", "0.3", "--stale-seconds", "0.2", "--count", "3"]) == 0
    probes = sorted(records(tmp_path), key=lambda p: p.timestamp_ms)
    assert [p.ok for p in probes] == [True, False, False]
    advance_time(connect(anvil_url), 1)  # mines a block: the head moves again for later tests


def test_bad_options_exit_2_naming_the_option(tmp_path, capsys):
    assert main(["probe", "--target", "ftp://x", "--provider", PROVIDER, "--out", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["probe", "--target", "http://127.0.0.1:1", "--provider", "0x12", "--out", str(tmp_path)]) == 2
    assert "--provider" in capsys.readouterr().err
