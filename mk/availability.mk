# Availability (SPEC §14): the Chainlink External Adapter in adapters/availability/.
#
#   make install        also installs the adapter from its committed lock file (npm ci) and builds it
#   make adapter        runs it on loopback through adapters/availability/start.sh (the one launcher):
#                       SERVE=http://127.0.0.1:8700 (a `meterroot serve`), ADAPTER_PORT=8080; the
#                       framework's settings (CACHE_MAX_AGE, RATE_LIMIT_*, METRICS_*) pass through
#   make test-availability   the probe, serve, adapter and feed tests

ADAPTER_DIR := adapters/availability
ADAPTER_STAMP := $(ADAPTER_DIR)/dist/.installed
SERVE ?= http://127.0.0.1:8700
ADAPTER_PORT ?= 8080

.PHONY: adapter test-availability
install: $(ADAPTER_STAMP)

$(ADAPTER_STAMP): $(ADAPTER_DIR)/package.json $(ADAPTER_DIR)/package-lock.json $(wildcard $(ADAPTER_DIR)/src/*.ts $(ADAPTER_DIR)/src/*/*.ts) $(ADAPTER_DIR)/tsconfig.json
	cd $(ADAPTER_DIR) && npm ci --no-audit --no-fund --loglevel=error && npx tsc -p tsconfig.json
	touch $@

adapter: $(ADAPTER_STAMP)
	API_ENDPOINT=$(SERVE) EA_PORT=$(ADAPTER_PORT) $(ADAPTER_DIR)/start.sh

test-availability: install
	$(PY) -m pytest tests/availability tests/unit/test_probes.py tests/gateway/test_probes.py -q -p no:cacheprovider
