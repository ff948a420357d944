"""The gate before a root goes on chain: the batch must have passed `meterroot validate`.

Imports neither Great Expectations nor DuckDB: `meterroot chain commit` calls it cheaply.
"""
from __future__ import annotations

from pathlib import Path

from settlement.errors import UsageError
from sinks.layout import manifest_path
from sinks.validation_records import read_record, record_path, stale_files


class ValidationGateError(UsageError):
    """The batch has no passing, current validation: it must not be committed as it is."""


def check_batch_validated(out_dir: Path, batch: int) -> None:
    """Return quietly when `batch` of `out_dir` passed validation for its current manifest;
    raise ValidationGateError saying why not (failed suites, never validated, stale) otherwise."""
    out_dir = Path(out_dir)
    rerun = f"`meterroot validate --output {out_dir} --batch {batch}`"
    override = "or pass --skip-validation to commit it anyway"
    if not manifest_path(out_dir, batch).exists():
        raise ValidationGateError(f"batch {batch} does not exist in {out_dir} (no "
                                  f"{manifest_path(out_dir, batch)}); nothing to commit")
    record = read_record(out_dir, batch)
    if record is None:
        raise ValidationGateError(f"batch {batch} of {out_dir} was never validated "
                                  f"({record_path(out_dir, batch)} is missing): run {rerun}, {override}")
    changed = stale_files(out_dir, record)
    if changed:
        raise ValidationGateError(f"batch {batch} of {out_dir} changed since it was validated at "
                                  f"{record.validated_at} ({', '.join(changed)} differ from what was "
                                  f"validated): run {rerun} again, {override}")
    check_committed_files(out_dir, batch)
    if not record.success:
        failed = ", ".join(name for name, ok in record.suites.items() if not ok) or "unknown"
        raise ValidationGateError(
            f"batch {batch} of {out_dir} failed validation at {record.validated_at}: suites {failed} failed "
            f"(see {out_dir / record.data_docs}); fix the output and run {rerun}, {override}")


def check_committed_files(out_dir: Path, batch: int) -> None:
    """Refuse a batch whose files differ from what the ledger head committed (SPEC §10): the
    data validated must also be the data settled."""
    from sinks.ledger_store import LedgerStore

    store = LedgerStore(out_dir)
    head = store.head()
    if head is None or not head.files:
        return
    if batch > head.batch:
        raise ValidationGateError(f"batch {batch} of {out_dir} is above the ledger HEAD (batch {head.batch}): "
                                  "it was never committed; run `meterroot batch` again to settle it")
    problems = store.damage(head, batch=batch)
    if problems:
        raise ValidationGateError(f"batch {batch} of {out_dir} differs from what its ledger committed: "
                                  f"{problems[0]}")
