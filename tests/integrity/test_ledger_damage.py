"""The ledger checks itself (SPEC §10): a settled part, a snapshot, a line, a tree or a manifest
deleted, truncated or edited after the commit is refused, naming the file, by the next run and by
`meterroot verify`, instead of settling anything twice."""
from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sinks.validation_gate import ValidationGateError, check_batch_validated
from pipelines.batch import settle
from settlement.ledger import LedgerDamaged
from sinks.verify import verify_output
from tests.integrity.support import batch, meterroot, usage_file
from tests.support.events import REGISTRY, write_tariff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """An output directory with two committed batches, and a third input not yet settled."""
    root = tmp_path_factory.mktemp("damage")
    tariff = write_tariff(root / "tariff.json")
    files = [usage_file(root / f"in-{k}.jsonl", f"d{k}", 120) for k in range(3)]
    out = root / "out"
    batch([files[0]], tariff, out)
    batch([files[1]], tariff, out)
    return out, tariff, files


def _copy(settled, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(settled[0], out)
    return out


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _plus_one_wei(path: Path) -> None:
    table = pq.read_table(path)
    amounts = table.column("amount_wei").to_pylist()
    amounts[0] += Decimal(1)
    i = table.schema.get_field_index("amount_wei")
    table = table.set_column(i, table.schema.field(i), pa.array(amounts, table.schema.field(i).type))
    pq.write_table(table, path)


DAMAGE = {
    "deleted settled part": ("events/batch=1/part-0000.parquet", lambda p: p.unlink()),
    "truncated settled part": ("events/batch=2/part-0000.parquet", lambda p: p.write_bytes(p.read_bytes()[:-100])),
    "edited settled part": ("events/batch=1/part-0000.parquet", _flip_byte),
    "edited quantities": ("ledger/settled_quantities/batch=2.parquet", _flip_byte),
    "deleted cumulative": ("ledger/cumulative/batch=2.parquet", lambda p: p.unlink()),
    "truncated cumulative": ("ledger/cumulative/batch=2.parquet", lambda p: p.write_bytes(p.read_bytes()[:10])),
    "line edited by one wei": ("settlement_lines/batch=1/part-0.parquet", _plus_one_wei),
    "edited tree": ("batches/2/tree.json", _flip_byte),
    "edited manifest": ("batches/1/manifest.json", lambda p: p.write_text(p.read_text().replace("\n", " \n", 1))),
    "part slipped in": ("events/batch=1/part-0009.parquet",
                        lambda p: shutil.copy(p.parent / "part-0000.parquet", p)),
}


def _first_part(out: Path, rel: str) -> str:
    """The first event part of a batch (the shard numbers depend on the keys)."""
    if "part-0000" in rel and not (out / rel).exists():
        folder = (out / rel).parent
        return str(sorted(folder.glob("part-*.parquet"))[0].relative_to(out))
    return rel


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_ledger_is_refused_by_the_next_run_and_by_verify(settled, tmp_path, case):
    _, tariff, files = settled
    out = _copy(settled, tmp_path)
    rel, damage = DAMAGE[case]
    if case == "part slipped in":
        folder = out / "events" / "batch=1"
        source = sorted(folder.glob("part-*.parquet"))[0]
        target = folder / "part-0999.parquet"
        shutil.copy(source, target)
        named = target
    else:
        named = out / _first_part(out, rel)
        damage(named)
    report = verify_output(out)
    assert report.problems and str(named) in report.problems[0], report.problems
    head_before = (out / "ledger" / "HEAD.json").read_bytes()
    with pytest.raises(LedgerDamaged, match=str(named)):
        settle([str(files[2])], str(tariff), str(out), 31337, REGISTRY)
    assert (out / "ledger" / "HEAD.json").read_bytes() == head_before
    assert not (out / "batches" / "3").exists()


def test_verify_passes_an_intact_directory_and_the_cli_names_the_damaged_file(settled, tmp_path):
    out = _copy(settled, tmp_path)
    ok = meterroot("verify", "--output", out, check=0)
    assert "ledger HEAD at batch 2" in ok.stdout
    part = sorted((out / "events" / "batch=1").glob("part-*.parquet"))[0]
    part.unlink()
    damaged = meterroot("verify", "--output", out, check=1)
    assert str(part) in damaged.stderr and "restore" in damaged.stderr
    refused = batch([settled[2][2]], settled[1], out, check=1)
    assert str(part) in refused.stderr and "Traceback" not in refused.stderr


def test_a_line_edited_after_validation_fails_validate_and_the_commit_gate(settled, tmp_path):
    out = _copy(settled, tmp_path)
    meterroot("validate", "--output", out, "--batch", 1, check=0)
    check_batch_validated(out, 1)
    lines = out / "settlement_lines" / "batch=1" / "part-0.parquet"
    _plus_one_wei(lines)
    with pytest.raises(ValidationGateError, match="settlement_lines/batch=1/part-0.parquet"):
        check_batch_validated(out, 1)
    again = meterroot("validate", "--output", out, check=1)
    assert str(lines) in again.stderr
