"""A batch whose total is zero (README "Outputs"): appended with the empty tree's zero root and
no tree.json, validated and verified like any other; its events count for dedup and for the
tiers of the next batch (a free first tier used up by a free batch is not free again)."""
from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from tests.support.events import REGISTRY, TREASURY, event, write_jsonl, write_tariff

pytestmark = pytest.mark.slow
FREE_FIRST_100 = {"version": "free-100", "epoch_seconds": 3600, "protocol_fee_bps": 250, "treasury": TREASURY,
                  "prices": [{"contract": "*", "unit": "request",
                              "tiers": [{"up_to": 100, "price_wei": "0"}, {"up_to": None, "price_wei": "7"}]}]}


def test_a_zero_total_batch_validates_verifies_and_its_quantities_carry_into_the_tiers(tmp_path, capsys):
    tariff, out = write_tariff(tmp_path / "tariff.json", FREE_FIRST_100), tmp_path / "out"
    common = ["batch", "--tariff", str(tariff), "--output", str(out), "--chain-id", "31337", "--registry", REGISTRY]
    first = write_jsonl(tmp_path / "1.jsonl", [event("a", quantity=60), event("b", quantity=30)])
    second = write_jsonl(tmp_path / "2.jsonl", [event("a", quantity=60), event("c", quantity=30)])
    assert main([*common, "--input", str(first)]) == 0, capsys.readouterr()
    manifest = json.loads((out / "batches" / "1" / "manifest.json").read_text())
    assert manifest["total"] in (0, "0") and int(manifest["root"], 16) == 0
    assert json.loads((out / "quality" / "1" / "validation.json").read_text())["success"] is True
    assert main(["verify", "--output", str(out)]) == 0
    assert main([*common, "--input", str(second)]) == 0, capsys.readouterr()  # "a" again: a duplicate
    manifest = json.loads((out / "batches" / "2" / "manifest.json").read_text())
    assert int(manifest["total"]) == (60 + 30 + 30 - 100) * 7  # 90 free before, 20 of these 30 beyond
    assert json.loads((out / "run.json").read_text())["duplicates"] == 1
    assert main(["verify", "--output", str(out)]) == 0
