# Streaming: `meterroot stream` on Beam's Prism runner (built by `make prism`, see mk/flink.mk).
#
#   make test-stream    the streaming tests (TestStream on the DirectRunner, replays and a
#                       watched folder on one Prism job server, anvil for --commit)
#   make bench-stream   sustained events/s of a replay, and the delay from an epoch's end to its
#                       batch on disk with a watched folder (EVENTS=… sets the larger replay)

.PHONY: test-stream bench-stream

test-stream: install prism
	$(PY) -m pytest tests/streaming -q -p no:cacheprovider

bench-stream: install prism
	$(PY) benchmarks/bench_stream.py --events $${EVENTS:-1000000}
