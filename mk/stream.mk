# Streaming: `meterroot stream` on Flink (.venv-flink, see mk/flink.mk) and on Beam's Prism runner.
#
#   make test-stream    the streaming tests (Flink mini-cluster and a standalone cluster, TestStream
#                       on the DirectRunner, replays and a watched folder on one Prism job server)
#   make bench-stream   Flink mini-cluster, Flink standalone and Beam/Prism: start-up, sustained
#                       events/s over two replay sizes, watermark -> batch on disk (EVENTS=… sets
#                       the larger replay); run under the bench lock, one benchmark at a time

.PHONY: test-stream bench-stream

test-stream: install prism
	$(PY) -m pytest tests/streaming -q -p no:cacheprovider

bench-stream: install prism
	flock /tmp/meterroot-bench.lock $(PY) benchmarks/bench_stream.py --events $${EVENTS:-1000000}
