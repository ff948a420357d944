"""The gateway's metering table: JSON-RPC method -> units, batches summed, defaults for the rest,
bad tables refused naming the entry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterroot.gateway.metering import InvalidMeteringTable, load_metering_table, parse_metering_table

DEFAULT = Path(__file__).resolve().parents[2] / "pipelines" / "defaults" / "metering.yaml"
TABLE = {"contract": "0x00000000000000000000000000000000000E7c01", "default": {"request": 1, "compute_unit": 20},
         "methods": {"eth_chainId": {"request": 1, "compute_unit": 1}, "eth_call": {"request": 1, "compute_unit": 26}}}


def call(method, i=1):
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": []}


def test_listed_unlisted_and_non_json_rpc_bodies():
    table = parse_metering_table(TABLE)
    assert table.meter(json.dumps(call("eth_call")).encode()) == ((("request", 1), ("compute_unit", 26)), 1)
    assert table.meter(json.dumps(call("debug_traceCall")).encode()) == ((("request", 1), ("compute_unit", 20)), 1)
    assert table.meter(b"not json")[0] == (("request", 1), ("compute_unit", 20))
    assert table.meter(b"")[0] == (("request", 1), ("compute_unit", 20))


def test_a_batch_costs_the_sum_of_its_calls():
    table = parse_metering_table(TABLE)
    body = json.dumps([call("eth_chainId", 1), call("eth_call", 2), call("other", 3), "junk"]).encode()
    assert table.meter(body) == ((("request", 4), ("compute_unit", 1 + 26 + 20 + 20)), 4)


def test_the_shipped_table_loads():
    table = load_metering_table(DEFAULT)
    assert table.units_of_call("eth_getLogs") == (("request", 1), ("compute_unit", 75))


@pytest.mark.parametrize("change, words", [
    ({"contract": "nope"}, "contract"),
    ({"default": {}}, "default"),
    ({"default": {"request": 0}}, "default.request"),
    ({"default": {"request": 1.5}}, "default.request"),
    ({"default": {"bad unit!": 1}}, "unit"),
    ({"methods": {"eth_call": {"request": -1}}}, "methods.eth_call.request"),
    ({"extra": 1}, "unknown keys"),
])
def test_bad_tables_are_refused_naming_the_entry(change, words):
    with pytest.raises(InvalidMeteringTable, match=words.replace(".", r"\.")):
        parse_metering_table(TABLE | change)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(InvalidMeteringTable, match="--metering"):
        load_metering_table(tmp_path / "none.yaml")
