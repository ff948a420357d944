"""The gateway probes its upstream (SPEC §14): probe records beside its usage files, ok while the
upstream answers, not ok once it is gone, all valid probe records of the gateway's provider."""
import time

from sinks.chain import anvil
from sinks.upstream_prober import probes_dir
from settlement.probes import split_probes


def probe_records(usage_dir):
    files = [(str(p), p.read_text()) for p in sorted(probes_dir(usage_dir).glob("*.jsonl"))]
    split = split_probes(files)
    assert not split.quarantined, split.quarantined
    return split.accepted


def test_gateway_writes_probe_records_of_its_upstream(start_gateway):
    gateway = start_gateway(extra=("--probe-seconds", "0.2"))
    time.sleep(2)
    gateway.stop()  # SIGTERM: the open probes are published
    probes = probe_records(gateway.usage_dir)
    assert len(probes) >= 3
    assert {p.provider for p in probes} == {p.prober for p in probes} == {gateway.provider.address}
    assert all(p.ok for p in probes)
    assert not list(gateway.usage_dir.glob("probes-*"))  # not among the usage files


def test_gateway_probes_of_a_dead_upstream_are_not_ok(start_gateway):
    dead = f"http://127.0.0.1:{anvil.free_port()}"  # nothing listens there
    gateway = start_gateway(upstream=dead, extra=("--probe-seconds", "0.2"))
    time.sleep(1.5)
    gateway.stop()
    probes = probe_records(gateway.usage_dir)
    assert probes and not any(p.ok for p in probes)
