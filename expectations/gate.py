"""The commit gate, by the name the quality suites know it: it lives in sinks/validation_gate.py,
beside the validation records it reads (sinks must not import the quality engine)."""
from sinks.validation_gate import ValidationGateError, check_batch_validated, check_committed_files  # noqa: F401
