"""`meterroot serve` answers a repeated report query from memory only while HEAD stays: a new
batch that changes a provider's availability is answered at once (sinks/api/published.py)."""
from __future__ import annotations

from pipelines.batch import settle
from sinks.api.published import Published
from tests.availability.conftest import EPOCH, probe
from tests.support.events import PROVIDER_A, T0, event, write_jsonl, write_tariff

ROW_SQL = ("SELECT availability_bps, batch FROM availability WHERE provider = $provider AND epoch = $epoch "
           "ORDER BY batch DESC LIMIT 1")


def test_a_cached_answer_gives_way_to_the_next_batch(tmp_path):
    tariff = str(write_tariff(tmp_path / "tariff.json"))
    out = tmp_path / "out"
    registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

    def run(name, probes):
        usage = write_jsonl(tmp_path / name / "usage.jsonl", [event(f"{name}-e", timestamp=T0)])
        write_jsonl(tmp_path / name / "probes.jsonl", probes)
        return settle([str(usage)], tariff, str(out), 31337, registry,
                      probes=[str(tmp_path / name / "probes.jsonl")]).batch

    assert run("one", [probe("p1"), probe("p2", timestamp=T0 + 1)]) == 1
    published = Published(out)
    params = {"provider": PROVIDER_A, "epoch": EPOCH}
    first = published.rows(ROW_SQL, params)
    assert first == [{"availability_bps": 10000, "batch": 1}] == published.rows(ROW_SQL, params)
    first[0]["availability_bps"] = -1  # a caller's edit does not reach the cache
    assert published.rows(ROW_SQL, params)[0]["availability_bps"] == 10000

    assert run("two", [probe("p3", ok=False, latency_ms=2000, timestamp=T0 + 2),
                       probe("p4", ok=False, latency_ms=2000, timestamp=T0 + 3)]) == 2
    assert published.rows(ROW_SQL, params) == [{"availability_bps": 5000, "batch": 2}]
