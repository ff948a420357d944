"""Data quality gates: Great Expectations suites per batch (suites.py over the tables of
frames.py, run by runner.validate_output), the commit gate (gate.check_batch_validated) and an
independent SQL recomputation of every settlement line (reconcile.reconcile_output)."""
