"""bad_token_id: an event naming another Counter NFT than its consumer's is quarantined; no id,
or a consumer whose id is not known, passes; every row ends in one output."""
from __future__ import annotations

import pyarrow as pa

from settlement.events import EVENT_SCHEMA
from settlement.token_ids import check_token_ids

ALICE, BOB, CAROL = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20


def events(rows):
    return pa.table({
        "provider": [ALICE] * len(rows), "event_id": [f"e-{i}" for i in range(len(rows))],
        "node_id": ["n"] * len(rows), "consumer": [c for c, _ in rows], "contract": [ALICE] * len(rows),
        "unit": ["request"] * len(rows), "quantity": [1] * len(rows), "timestamp_ms": [0] * len(rows),
        "epoch": [0] * len(rows), "token_id": [None if t is None else str(t) for _, t in rows],
        "source": ["f.jsonl"] * len(rows), "record_no": list(range(1, len(rows) + 1)),
    }).cast(EVENT_SCHEMA)


def test_wrong_token_is_quarantined_and_the_rest_pass():
    table = events([(ALICE, 1), (ALICE, 2), (BOB, None), (CAROL, 9), (BOB, 5)])
    passed, quarantined = check_token_ids(table, {ALICE: 1, BOB: 4})
    assert passed.column("event_id").to_pylist() == ["e-0", "e-2", "e-3"]
    assert quarantined.column("reason").to_pylist() == ["bad_token_id", "bad_token_id"]
    assert quarantined.column("record_no").to_pylist() == [2, 5]
    assert "is not the Counter NFT of consumer" in quarantined.column("detail")[0].as_py()
    assert passed.num_rows + quarantined.num_rows == table.num_rows


def test_nothing_known_passes_everything():
    table = events([(ALICE, 3)])
    assert check_token_ids(table, {})[0] == table
