# meterroot — `make demo` and `make test` install what is missing first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean
install: $(STAMP) node_modules/.installed

# Rebuilt only when the Python package definition changes.
$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Installed exactly from the committed lock file.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(VENV)/bin/meterroot demo

# The streaming tests run on Beam's Prism runner, built once into .cache/ by `make prism`;
# if it cannot be built, those tests skip and say so.
test: install
	@$(MAKE) --no-print-directory prism >/dev/null || echo "make prism failed: the Prism streaming tests will skip" >&2
	$(PY) -m pytest -q -p no:cacheprovider

# SHAPE=wide: the high-cardinality shape (nearly one line per event), on JSONL and on Parquet.
bench: install node_modules/.installed
	if [ "$${SHAPE:-default}" = wide ]; then \
	  $(PY) benchmarks/bench_batch.py --shape wide --format jsonl --events $${EVENTS:-2000000} && \
	  $(PY) benchmarks/bench_batch.py --shape wide --format parquet --events $${EVENTS:-2000000}; \
	else $(PY) benchmarks/bench_batch.py --events $${EVENTS:-2000000}; fi
	$(PY) benchmarks/bench_tree.py --leaves $${LEAVES:-1000000}

clean:
	rm -rf $(VENV) node_modules

-include mk/*.mk
