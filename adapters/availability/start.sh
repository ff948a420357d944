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
# shellcheck disable=SC2086  # the flags are words
exec node ${ADAPTER_NODE_FLAGS:-} dist/index.js
