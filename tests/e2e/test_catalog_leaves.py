"""The catalog's payables view reads leaves.parquet beside each tree.json, and shows the same
rows as reading the tree dumps themselves (what an output written before leaves.parquet has)."""
from __future__ import annotations

import json

import pytest

from settlement.merkle import StandardMerkleTree
from settlement.synthetic import synthetic_events
from sinks.catalog import connect
from sinks.event_files import write_events
from tests.e2e.test_batch_cli import REPO, batch

pytestmark = pytest.mark.slow
PAYABLES = "SELECT * FROM payables ORDER BY batch, consumer, payee"


def test_payables_from_leaves_parquet_equal_those_from_the_tree_dumps(tmp_path):
    events = synthetic_events(400, seed=3, shape="wide")
    write_events(events.slice(0, 250), tmp_path / "in" / "a.jsonl", "jsonl")
    write_events(events.slice(250), tmp_path / "in" / "b.parquet", "parquet")
    out = tmp_path / "out"
    tariff = REPO / "pipelines" / "defaults" / "tariff.yaml"
    batch([tmp_path / "in" / "a.jsonl"], tariff, out)
    batch([tmp_path / "in" / "b.parquet"], tariff, out)

    from_parquet = connect(out).execute(PAYABLES).fetchall()
    trees = sorted(out.glob("batches/*/tree.json"))
    assert len(trees) == 2 and len(from_parquet) == sum(
        len(json.loads(t.read_text())["values"]) for t in trees)
    assert any(row[0] == 2 and row[4] != row[3] for row in from_parquet), "no pair continued into batch 2"
    for tree in trees:
        # the fast writer's bytes are the generic JSON encoder's
        dump = json.loads(tree.read_text())
        assert tree.read_bytes() == (json.dumps(StandardMerkleTree.load(dump).dump(), separators=(",", ":"))
                                     + "\n").encode()
        (tree.parent / "leaves.parquet").unlink()
    assert connect(out).execute(PAYABLES).fetchall() == from_parquet
