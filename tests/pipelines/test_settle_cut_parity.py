"""The Beam batch's SettleUsage (the transition evaluated in parallel: sharded dedup, combined
usage, one tree) equals settle_cut (the transition applied whole), over two batches of random
usage with exact copies and conflicting copies, for whatever events hypothesis draws."""
from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from settlement.tariff import parse_tariff
from settlement.transition import Chain, Ledger, settle_cut
from settlement.validation import validate
from tests.support.events import (CONSUMER, CONSUMER_2, EPOCH_MS, PROVIDER_A, PROVIDER_B, REGISTRY,
                                  T0, TARIFF, event)
from transforms.decoding import JsonLinesDecoder
from transforms.settle_usage import LedgerState, SettleUsage

TARIFF_OBJ = parse_tariff(TARIFF)
CHAIN = Chain(31337, REGISTRY)
OPTIONS = PipelineOptions(["--runner=FnApiRunner"])

records = st.lists(st.builds(
    lambda n, provider, consumer, quantity, epoch, second: event(
        f"e{n}", provider=provider, consumer=consumer, quantity=quantity,
        timestamp=T0 + epoch * EPOCH_MS + second * 1000),
    st.integers(0, 30), st.sampled_from([PROVIDER_A, PROVIDER_B]),
    st.sampled_from([CONSUMER, CONSUMER_2]), st.integers(1, 400), st.integers(0, 2),
    st.integers(0, 5)), min_size=1, max_size=25)


def raw_table(items, source):
    lines = pa.array([json.dumps(r) for r in items], pa.string())
    return JsonLinesDecoder().decode(lines, source, 1)


def _keep(path: Path):
    def keep(value):
        path.write_bytes(pickle.dumps(value))
    return keep


def beam_batch(raw, state: LedgerState, folder: Path):
    """SettleUsage on the in-process portable runner: (settled batch or None, accepted rows).
    The runner pickles the steps, so results come back through files."""
    batch_file, accepted_file = folder / "batch.pickle", folder / "accepted.pickle"
    for path in (batch_file, accepted_file):
        path.unlink(missing_ok=True)
    with beam.Pipeline(options=OPTIONS) as p:
        out = p | beam.Create([raw]) | SettleUsage(TARIFF_OBJ, state, CHAIN.chain_id, CHAIN.registry,
                                                     shards=3)
        out["batch"] | "KeepBatch" >> beam.Map(_keep(batch_file))
        (out["accepted"] | "Rows" >> beam.Map(lambda kv: kv[1].num_rows)
         | beam.CombineGlobally(sum) | "KeepAccepted" >> beam.Map(_keep(accepted_file)))
    batch = pickle.loads(batch_file.read_bytes()) if batch_file.exists() else None
    return batch, pickle.loads(accepted_file.read_bytes()) if accepted_file.exists() else 0


def lines_key(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["epoch"], r["consumer"], r["provider"], r["unit"]))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.generate])  # each example runs two Beam pipelines
@given(first=records, second=records)
def test_beam_batch_and_settle_cut_settle_the_same_two_batches(first, second):
    ledger = Ledger.empty()
    with tempfile.TemporaryDirectory() as folder:
        settled_files = []
        for number, items in enumerate([first, second], start=1):
            raw = raw_table(items, f"in-{number}.jsonl")
            cut, after = settle_cut(ledger, validate(raw, TARIFF_OBJ).events, TARIFF_OBJ, CHAIN)
            state = LedgerState(batch=ledger.batch + 1, settled_files=list(settled_files),
                                quantities=ledger.quantities, cumulative=ledger.cumulative)
            batch, accepted = beam_batch(raw, state, Path(folder))
            assert accepted == cut.accepted.num_rows
            if cut.settled is None:
                assert batch is None
                continue
            assert batch.root == cut.settled.root
            assert lines_key(batch.lines) == lines_key(cut.settled.lines)
            assert batch.cumulative_after.sort_by("consumer").to_pylist() == \
                cut.settled.cumulative_after.sort_by("consumer").to_pylist()
            path = Path(folder) / f"events-{cut.batch}.parquet"
            pq.write_table(after.settled.filter(pa.compute.equal(after.settled.column("batch"), cut.batch)), path)
            settled_files.append(str(path))
            ledger = after
