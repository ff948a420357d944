"""Permit files and the permits an output folder keeps (sinks/permit_files.py)."""
from __future__ import annotations

from eth_account import Account

from settlement.keccak import keccak256
from settlement.permits import sign_permit
from sinks.permit_files import PermitStore, read_permit_file, write_permit_file

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONSUMER = Account.from_key(keccak256(b"permit files consumer"))


def permit(amount):
    return sign_permit(CONSUMER, 31337, REGISTRY, CONSUMER.address, PAYEE, amount)


def test_a_lower_permit_replayed_later_does_not_lower_what_counts(tmp_path):
    store = PermitStore(tmp_path)
    store.add(1, [permit(900)])
    store.add(2, [permit(300)])          # the consumer's older, lower permit shows up again
    assert store.highest()[(CONSUMER.address, PAYEE)].cumulative_amount == 900
    assert sorted(p.cumulative_amount for p in store.permits()) == [300, 900]   # both kept for the record


def test_permit_file_round_trips_and_names_bad_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    write_permit_file(path, [permit(1), permit(2)])
    path.write_bytes(path.read_bytes() + b"\n\n[1, 2]\n\xff\xfe\n")
    lines = list(read_permit_file(path))
    assert [line.line for line in lines] == [1, 2, 5, 6]   # blank lines 3 and 4 are skipped, not renumbered
    assert [line.permit for line in lines[:2]] == [permit(1), permit(2)]
    assert [(line.error.reason, line.permit) for line in lines[2:]] == [("malformed", None), ("malformed", None)]
    assert "not UTF-8" in str(lines[3].error)
