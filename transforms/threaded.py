"""ThreadedBlocks: a DoFn that runs a per-block function on a small thread pool.

The functions it runs (DuckDB, pyarrow.compute) release the GIL, so while the runner's thread
works on one block, other blocks are validated or sharded beside it: a 2-core machine does two
things at once inside one bundle. Results are emitted as they complete; nothing downstream
depends on element order (events are ordered by (source, record_no) where order matters)."""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindows

IN_FLIGHT = 2


class ThreadedBlocks(beam.DoFn):
    """ParDo body: `fn(element) -> list of outputs` (values or TaggedOutput), on `workers` threads."""

    def __init__(self, fn, *args, workers: int = 2):
        self.fn = fn
        self.args = args
        self.workers = workers

    def setup(self):
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="blocks")

    def start_bundle(self):
        self._pending = deque()

    def process(self, element):
        self._pending.append(self._pool.submit(self.fn, element, *self.args))
        while self._pending and (self._pending[0].done() or len(self._pending) > IN_FLIGHT):
            yield from self._pending.popleft().result()

    def finish_bundle(self):
        # Outputs of finish_bundle carry their window explicitly (batch: the global window).
        while self._pending:
            for output in self._pending.popleft().result():
                if isinstance(output, TaggedOutput):
                    yield TaggedOutput(output.tag, GlobalWindows.windowed_value(output.value))
                else:
                    yield GlobalWindows.windowed_value(output)

    def teardown(self):
        self._pool.shutdown(wait=True)
