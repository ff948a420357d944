"""Availability in streaming (SPEC §14, §9): each cut of the stream's ledger writer settles the new
probes as a batch does, with the same figures as a batch run over the same probes."""
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.batch import settle
from settlement.stream_records import ON_TIME, Pane
from settlement.tariff import load_tariff
from settlement.validation import validate
from sinks.stream_ledger import LedgerTarget, cut_batch
from tests.availability.conftest import EXPECTED, PROBES, probe
from tests.support.events import T0, event, write_jsonl, write_tariff
from transforms.decoding import decode_stream

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def pane(records, tariff, source="stream.jsonl", epoch=T0 // 3_600_000):
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    tables = [validate(t, tariff).events for t in decode_stream(io.BytesIO(data), source, "jsonl")]
    return Pane(epoch=epoch, timing=ON_TIME, index=0, events=pa.concat_tables(tables),
                digests=((source, "0" * 64),))


def rows(out, batch):
    table = pq.read_table(out / "availability" / f"batch={batch}" / "part-0.parquet")
    return {(r["provider"], r["epoch"]): (r["probes"], r["ok_probes"], r["availability_bps"], r["latency_p50_ms"],
                                          r["latency_p99_ms"]) for r in table.to_pylist()}


def test_a_stream_cut_settles_probes_exactly_as_the_batch_job(tmp_path):
    tariff_path = write_tariff(tmp_path / "tariff.json")
    tariff = load_tariff(str(tariff_path))
    probes = write_jsonl(tmp_path / "probes" / "watcher.jsonl", PROBES)
    glob = str(probes.parent / "*.jsonl")

    stream_out = tmp_path / "stream"
    target = LedgerTarget(out=str(stream_out), tariff=tariff, chain_id=31337, registry=REGISTRY, run_id="t",
                          probes=(glob,))
    first = cut_batch(target, [pane([event("e1"), event("e2")], tariff)], [])
    assert first.batch == 1
    assert rows(stream_out, 1) == EXPECTED

    usage = write_jsonl(tmp_path / "usage.jsonl", [event("e1"), event("e2")])
    batch_out = tmp_path / "batch"
    settle([str(usage)], str(tariff_path), str(batch_out), 31337, REGISTRY, probes=[glob])
    assert rows(batch_out, 1) == rows(stream_out, 1)

    # the next cut reads the folder again: the settled probes are duplicates, one new probe revises its epoch
    write_jsonl(tmp_path / "probes" / "late.jsonl", [probe("late-down", ok=False, latency_ms=2000, timestamp=T0 + 5)])
    second = cut_batch(target, [pane([event("e3", timestamp=T0 + 7)], tariff)], [])
    manifest = json.loads((stream_out / "batches" / str(second.batch) / "manifest.json").read_text())
    counts = manifest["availability"]["probe_counts"]
    assert counts == {"read": len(PROBES) + 1, "accepted": 1, "duplicates": len(PROBES) - 2, "quarantined": 2}
    key = next(iter(k for k in EXPECTED if EXPECTED[k][0] == 8))
    assert rows(stream_out, second.batch) == {key: (9, 6, 6666, 30, 60)}
