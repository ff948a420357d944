# Data quality: `make test-quality` runs the GX suites, DuckDB catalog and reconcile tests;
# `make quality OUT=dir` validates and reconciles an existing output directory.
.PHONY: test-quality quality
test-quality: install
	$(PY) -m pytest tests/quality -q -p no:cacheprovider

quality: install
	$(VENV)/bin/meterroot validate --output $(OUT) --all
	$(VENV)/bin/meterroot reconcile --output $(OUT)
