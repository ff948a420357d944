"""Which batch folders of an output count as batches for the chain."""
import json

from sinks.chain.batch_files import batch_numbers


def test_folders_beyond_the_ledger_head_are_not_batches(tmp_path):
    for b in (1, 2, 3):
        (tmp_path / "batches" / str(b)).mkdir(parents=True)
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "HEAD.json").write_text(json.dumps({"batch": 2}))
    assert batch_numbers(tmp_path) == [1, 2]


def test_without_a_ledger_every_folder_counts(tmp_path):
    for b in (1, 2):
        (tmp_path / "batches" / str(b)).mkdir(parents=True)
    assert batch_numbers(tmp_path) == [1, 2]
