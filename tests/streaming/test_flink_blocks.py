"""The Flink job's blocks: what crosses between its operators decodes to the table that went in."""
import random

import pyarrow as pa

from pipelines.flink_job import from_ipc, pane_events, pane_payload, to_ipc
from settlement.events import EVENT_SCHEMA, QUARANTINE_SCHEMA


def _events(rng: random.Random, n: int) -> pa.Table:
    text = lambda k: [None if rng.random() < 0.1 else f"v{rng.randrange(k)}" for _ in range(n)]
    return pa.table({
        "provider": text(3), "event_id": [f"e{rng.randrange(10**9)}" for _ in range(n)],
        "node_id": text(2), "consumer": text(50), "contract": text(1), "unit": text(2),
        "quantity": [rng.randrange(10**6) for _ in range(n)],
        "timestamp_ms": [rng.randrange(10**12) for _ in range(n)], "epoch": [rng.randrange(9) for _ in range(n)],
        "token_id": [None] * n, "source": text(2), "record_no": list(range(n)),
    }, schema=EVENT_SCHEMA)


def test_blocks_and_panes_decode_to_the_same_tables():
    rng = random.Random(13)
    tables = [_events(rng, n) for n in (0, 1, 500, 2000)]
    for table in tables:
        back = from_ipc(to_ipc(table))
        assert back.schema == EVENT_SCHEMA and back.equals(table)
    events = pane_events(pane_payload([to_ipc(t) for t in tables]))
    assert events.equals(pa.concat_tables(tables))
    bad = pa.table({"batch": [0, 0], "reason": ["malformed", None], "detail": ["x", "y"],
                    "source": ["a", "a"], "record": ["{", "}"], "record_no": [1, 2]},
                   schema=QUARANTINE_SCHEMA)
    assert from_ipc(to_ipc(bad)).equals(bad)
