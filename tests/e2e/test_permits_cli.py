"""`meterroot permits`: ingest signed permit files into an output folder, list what they cover."""
from __future__ import annotations

import json

import pytest
from eth_account import Account

from pipelines.cli import main
from settlement.keccak import keccak256
from settlement.permits import sign_permit
from sinks.ledger_store import LedgerStore
from sinks.permit_files import write_permit_file
from settlement.payables import cumulative_by_pair
from tests.support.events import (PROVIDER_A, PROVIDER_B, REGISTRY, TREASURY, event, write_jsonl,
                                  write_tariff)

CHAIN_ID = 31337
ALICE = Account.from_key(keccak256(b"permits cli alice"))
BOB = Account.from_key(keccak256(b"permits cli bob"))


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """One batch: Alice owes provider A and the treasury, Bob owes provider B and the treasury."""
    root = tmp_path_factory.mktemp("permits")
    events = write_jsonl(root / "in" / "usage.jsonl", [
        event("e-1", consumer=ALICE.address, quantity=40),
        event("e-2", consumer=ALICE.address, quantity=70, provider=PROVIDER_A),
        event("e-3", consumer=BOB.address, quantity=30, provider=PROVIDER_B),
    ])
    tariff = write_tariff(root / "tariff.json")
    out = root / "out"
    code = main(["batch", "--input", str(events), "--tariff", str(tariff), "--output", str(out),
                 "--chain-id", str(CHAIN_ID), "--registry", REGISTRY, "--no-validate"])
    assert code == 0
    store = LedgerStore(out)
    return out, cumulative_by_pair(store.cumulative(store.head()))


@pytest.fixture
def out(settled, tmp_path):
    """A private copy of the settled folder (ingesting writes into it)."""
    import shutil
    copy = tmp_path / "out"
    shutil.copytree(settled[0], copy)
    return copy


def owed(settled, consumer, payee):
    return settled[1][(consumer, payee)]


def test_listing_shows_every_pair_owed_and_nothing_covered_without_permits(out, settled, capsys):
    code, printed, err = run(capsys, "permits", "--output", out, "--json")
    assert code == 0, err
    listing = json.loads(printed)
    assert listing["batch"] == 1
    pairs = {(p["consumer"], p["payee"]): p for p in listing["pairs"]}
    assert set(pairs) == set(settled[1]) == {(ALICE.address, PROVIDER_A), (ALICE.address, TREASURY),
                                             (BOB.address, PROVIDER_B), (BOB.address, TREASURY)}
    for pair, amount in settled[1].items():
        assert pairs[pair]["owed"] == str(amount) and pairs[pair]["uncovered"] == str(amount)
        assert pairs[pair]["permitted"] == "0" and pairs[pair]["permitted_on_chain"] is None


def test_ingest_keeps_valid_permits_and_quarantines_bad_lines_naming_file_and_line(out, settled, capsys, tmp_path):
    full = owed(settled, ALICE.address, PROVIDER_A)
    good = sign_permit(ALICE.key, CHAIN_ID, REGISTRY, ALICE.address, PROVIDER_A, full)
    lower = sign_permit(ALICE.key, CHAIN_ID, REGISTRY, ALICE.address, PROVIDER_A, full - 1)
    part = sign_permit(BOB.key, CHAIN_ID, REGISTRY, BOB.address, PROVIDER_B, 5)
    forged = sign_permit(BOB.key, CHAIN_ID, REGISTRY, ALICE.address, TREASURY, 10**30)
    elsewhere = sign_permit(ALICE.key, CHAIN_ID, "0x" + "11" * 20, ALICE.address, TREASURY, 10)
    file = tmp_path / "permits.jsonl"
    write_permit_file(file, [good, lower, good, forged, part])
    with file.open("a") as handle:
        handle.write("\n{not json\n" + json.dumps(elsewhere.to_json()) + "\n")

    code, printed, err = run(capsys, "permits", "--output", out, "--ingest", file)
    assert code == 1
    assert f"{file}: read 7, accepted 3, duplicates 1, quarantined 3" in err
    assert f"{file}:4: bad_signature" in err and BOB.address in err
    assert f"{file}:7: malformed" in err
    assert f"{file}:8: wrong_registry" in err
    assert "3 permit line(s) refused" in err and "the 3 valid one(s) are kept with batch 1" in err

    quarantine = [json.loads(l) for l in (out / "permits" / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["reason"]) for q in quarantine] == [(4, "bad_signature"), (7, "malformed"),
                                                              (8, "wrong_registry")]
    assert quarantine[1]["record"] == "{not json" and quarantine[0]["source"] == str(file)
    stored = (out / "permits" / "batch=1" / "permits.jsonl").read_text().splitlines()
    assert len(stored) == 3

    code, printed, err = run(capsys, "permits", "--output", out, "--json")
    pairs = {(p["consumer"], p["payee"]): p for p in json.loads(printed)["pairs"]}
    assert pairs[(ALICE.address, PROVIDER_A)]["permitted"] == str(full)   # the lower one changes nothing
    assert pairs[(ALICE.address, PROVIDER_A)]["uncovered"] == "0"
    assert pairs[(BOB.address, PROVIDER_B)]["covered"] == "5"
    assert pairs[(BOB.address, PROVIDER_B)]["uncovered"] == str(owed(settled, BOB.address, PROVIDER_B) - 5)
    assert pairs[(ALICE.address, TREASURY)]["permitted"] == "0"           # the forged one counts for nothing


def test_stored_permits_are_a_permit_file_and_ingesting_again_gives_duplicates(out, settled, capsys, tmp_path):
    file = tmp_path / "p.jsonl"
    write_permit_file(file, [sign_permit(BOB.key, CHAIN_ID, REGISTRY, BOB.address, TREASURY, 3)])
    assert run(capsys, "permits", "--output", out, "--ingest", file)[0] == 0
    stored = out / "permits" / "batch=1" / "permits.jsonl"
    code, printed, err = run(capsys, "permits", "--output", out, "--ingest", stored, file)
    assert code == 0, err
    assert f"{stored}: read 1, accepted 0, duplicates 1, quarantined 0" in err
    assert f"{file}: read 1, accepted 0, duplicates 1, quarantined 0" in err
    assert "4 pairs, 0 fully covered" in printed


def test_edited_stored_permit_is_refused_naming_it(out, capsys, tmp_path):
    file = tmp_path / "p.jsonl"
    write_permit_file(file, [sign_permit(BOB.key, CHAIN_ID, REGISTRY, BOB.address, TREASURY, 3)])
    run(capsys, "permits", "--output", out, "--ingest", file)
    stored = out / "permits" / "batch=1" / "permits.jsonl"
    stored.write_text(stored.read_text().replace('"3"', '"3x"'))
    code, printed, err = run(capsys, "permits", "--output", out)
    assert code == 2 and f"stored permit {stored}:1 is not a permit" in err


def test_folder_without_a_ledger_is_refused_with_what_to_run(tmp_path, capsys):
    code, printed, err = run(capsys, "permits", "--output", tmp_path / "empty")
    assert code == 2 and "run `meterroot batch --output" in err


def test_missing_permit_file_is_refused(out, capsys, tmp_path):
    code, printed, err = run(capsys, "permits", "--output", out, "--ingest", tmp_path / "nope.jsonl")
    assert code == 2 and "nope.jsonl cannot be read" in err
