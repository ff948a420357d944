# The consumer SDK and the provider gateway: `make bench-gateway` measures requests/s through the
# gateway against a minimal local upstream and the latency it adds (SECONDS=…, CONNECTIONS=…);
# `make test-gateway` runs their tests (real anvil, gateway and SDK processes on loopback).
.PHONY: bench-gateway test-gateway
bench-gateway: install node_modules/.installed
	$(PY) benchmarks/bench_gateway.py --seconds $${SECONDS:-10} --connections $${CONNECTIONS:-32}

test-gateway: install
	$(PY) -m pytest tests/gateway -q -p no:cacheprovider
