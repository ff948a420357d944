# Streaming runtimes, cached outside git.
#
#   .venv-flink  PyFlink 2.3 (the Flink distribution ships inside the package: pyflink/lib,
#                pyflink/bin) and the project's pure core, pinned in requirements-flink.txt.
#                Built by `make install` beside .venv, rebuilt only when the pins change.
#                setuptools stays < 82: 82 breaks PyFlink's Python worker start ("Failed to
#                create stage bundle factory"). The CLI runs Flink jobs with this interpreter.
#   make prism   Beam's Prism runner (a Go program) built with `go install` into
#                .cache/prism/<beam version>/prism; prints the binary path. It follows the
#                apache-beam version of .venv (override with BEAM_VERSION=…).

FLINK_VENV := .venv-flink
FLINK_PY := $(FLINK_VENV)/bin/python
FLINK_STAMP := $(FLINK_VENV)/.installed
PRISM_CACHE := .cache/prism
BEAM_VERSION_OF_VENV = $$($(PY) -c 'from importlib.metadata import version; print(version("apache-beam"))')

.PHONY: prism
install: $(FLINK_STAMP)

$(FLINK_STAMP): requirements-flink.txt setup.py
	test -x $(FLINK_PY) || $(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_PY) -m pip install --quiet --upgrade pip 'setuptools<82' wheel
	$(FLINK_PY) -m pip install --quiet -r requirements-flink.txt
	$(FLINK_PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

prism: | $(STAMP)
	@set -e; \
	beam=$${BEAM_VERSION:-$(BEAM_VERSION_OF_VENV)}; \
	bin=$(PRISM_CACHE)/$$beam/prism; \
	if [ ! -x "$$bin" ]; then \
	  echo "building Beam's Prism runner $$beam with go install" >&2; \
	  mkdir -p $(PRISM_CACHE)/$$beam; \
	  GOBIN="$(CURDIR)/$(PRISM_CACHE)/$$beam" go install \
	    github.com/apache/beam/sdks/v2/go/cmd/prism@v$$beam >&2; \
	fi; \
	echo "$(CURDIR)/$$bin"
