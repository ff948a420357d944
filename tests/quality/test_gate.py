"""check_batch_validated: the gate `meterroot chain commit` passes before a root goes on chain."""
from __future__ import annotations

import pytest

from sinks.validation_gate import ValidationGateError, check_batch_validated
from sinks.validation_records import ValidationRecord, batch_digests, manifest_digest, write_record
from expectations.suites import SUITE_NAMES
from settlement.errors import UsageError
from tests.quality.conftest import rewrite_json


def record(out, batch, **failed_suites):
    suites = {name: not failed_suites.get(name, False) for name in SUITE_NAMES}
    write_record(out, ValidationRecord(
        batch=batch, success=all(suites.values()), suites=suites, validated_at="2026-11-24T10:00:00Z",
        data_docs=f"quality/{batch}/data_docs/index.html", manifest_sha256=manifest_digest(out, batch),
        files=batch_digests(out, batch)))


def test_gate_error_is_a_usage_error():
    assert issubclass(ValidationGateError, UsageError)


def test_never_validated_batch_is_refused_with_the_command_to_run(good_output):
    with pytest.raises(ValidationGateError) as caught:
        check_batch_validated(good_output, 1)
    message = str(caught.value)
    assert "never validated" in message
    assert f"meterroot validate --output {good_output} --batch 1" in message
    assert "--skip-validation" in message


def test_passing_batch_goes_through(good_output):
    record(good_output, 1)
    assert check_batch_validated(good_output, 1) is None


def test_failed_batch_is_refused_naming_its_suites(good_output):
    record(good_output, 2, payables=True, batch_totals=True)
    with pytest.raises(ValidationGateError, match="failed validation") as caught:
        check_batch_validated(good_output, 2)
    assert "batch_totals, payables" in str(caught.value)
    assert "--skip-validation" in str(caught.value)


def test_batch_changed_since_validation_is_refused(good_output):
    record(good_output, 1)
    rewrite_json(good_output / "batches" / "1" / "manifest.json", lambda m: m.update(total="1"))
    with pytest.raises(ValidationGateError, match="changed since it was validated"):
        check_batch_validated(good_output, 1)


def test_missing_batch_is_refused(good_output):
    with pytest.raises(ValidationGateError, match="batch 9 does not exist"):
        check_batch_validated(good_output, 9)


def test_unreadable_record_asks_for_a_new_validation(good_output):
    path = good_output / "quality" / "1" / "validation.json"
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    with pytest.raises(UsageError, match="meterroot validate"):
        check_batch_validated(good_output, 1)


def test_real_validation_opens_the_gate(good_output):
    from expectations.runner import validate_output
    assert validate_output(good_output, [1]).success
    check_batch_validated(good_output, 1)


def test_gate_imports_neither_great_expectations_nor_duckdb():
    import subprocess
    import sys
    code = ("import sys, sinks.validation_gate; "
            "assert 'great_expectations' not in sys.modules and 'duckdb' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
