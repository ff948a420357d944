#!/bin/sh
# The availability External Adapter as operators run it. `make adapter`, benchmarks/bench_availability.py,
# the demo and the tests all start it through this script, so what is measured is what runs.
#
#   API_ENDPOINT   the `meterroot serve` it reads (required), e.g. http://127.0.0.1:8700
#   EA_PORT        its port (framework default 8080); EA_HOST defaults to 127.0.0.1 (loopback)
#
# Every other setting of the framework passes through the environment as it is (CACHE_MAX_AGE,
# RATE_LIMIT_CAPACITY_SECOND, LOG_LEVEL, METRICS_ENABLED/METRICS_PORT, ...); ADAPTER_NODE_FLAGS
# adds flags to node.
set -eu
cd "$(dirname "$0")"
: "${API_ENDPOINT:?set API_ENDPOINT to the URL of a meterroot serve, e.g. http://127.0.0.1:8700}"
EA_HOST="${EA_HOST:-127.0.0.1}"
export API_ENDPOINT EA_HOST
# V8's young generation capped at 4 MB: answers from the cache keep each request's objects alive
# for a while, so every scavenge copies most of what is young; with the default (16 MB) a scavenge
# ran every ~100 ms and paused all requests 8-20 ms (node --trace-gc), which was the adapter's p99.
# Smaller young generations pause for less, more often (benchmarks/bench_availability.py, README).
# ADAPTER_NODE_FLAGS replaces it.
# shellcheck disable=SC2086  # the flags are words
exec node ${ADAPTER_NODE_FLAGS:---max-semi-space-size=4} dist/index.js
