"""Rolling usage files: only whole files under the published names, rotation by size and age,
and a dead run's open file published up to its last whole line."""
from __future__ import annotations

import json
import time

from meterroot.gateway.usage_files import OPEN_SUFFIX, RollingUsageWriter, UsageEvent

ADDRESS = "0x" + "ab" * 20


def event(n: int, token_id=None) -> UsageEvent:
    return UsageEvent(f"run-{n}.0", ADDRESS, "gw", ADDRESS, ADDRESS, "request", 1, 1_700_000_000_000 + n, token_id)


def published(folder):
    return sorted(folder.glob("usage-*.jsonl"))


def test_lines_are_spec_events(tmp_path):
    line = event(1, token_id=7).to_line()
    assert json.loads(line) == {"event_id": "run-1.0", "provider": ADDRESS, "node_id": "gw", "consumer": ADDRESS,
                                "contract": ADDRESS, "unit": "request", "quantity": 1,
                                "timestamp": 1_700_000_000_001, "token_id": 7}
    assert "token_id" not in json.loads(event(1).to_line())


def test_open_file_is_hidden_until_published_by_size(tmp_path):
    writer = RollingUsageWriter(tmp_path, "run", max_bytes=1000, max_seconds=3600)
    writer.append(event(1).to_line(), 1)
    assert published(tmp_path) == [] and len(list(tmp_path.glob(f".*{OPEN_SUFFIX}"))) == 1
    for n in range(2, 20):
        writer.append(event(n).to_line(), 1)
    writer.close()
    lines = [json.loads(x) for p in published(tmp_path) for x in p.read_text().splitlines()]
    assert [e["event_id"] for e in lines] == [f"run-{n}.0" for n in range(1, 20)]
    assert len(published(tmp_path)) > 1 and not list(tmp_path.glob(f".*{OPEN_SUFFIX}"))


def test_published_by_age(tmp_path):
    writer = RollingUsageWriter(tmp_path, "run", max_seconds=0.05)
    writer.append(event(1).to_line(), 1)
    writer.tick()
    assert published(tmp_path) == []
    time.sleep(0.06)
    writer.tick()
    assert len(published(tmp_path)) == 1


def test_recovery_publishes_whole_lines_of_a_dead_run(tmp_path):
    dead = RollingUsageWriter(tmp_path, "dead")
    dead.append(event(1).to_line() + event(2).to_line(), 2)
    (open_file,) = tmp_path.glob(f".*{OPEN_SUFFIX}")
    with open(open_file, "ab") as torn:
        torn.write(b'{"event_id":"run-3.0","prov')
    empty = tmp_path / f".usage-0000000000001-x-000001{OPEN_SUFFIX}"
    empty.write_bytes(b'{"half')
    recovered = RollingUsageWriter(tmp_path, "next").recover()
    assert len(recovered) == 1 and not empty.exists()
    assert [json.loads(x)["event_id"] for x in recovered[0].read_text().splitlines()] == ["run-1.0", "run-2.0"]
