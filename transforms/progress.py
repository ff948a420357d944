"""A progress line on stderr for runs that take more than a few seconds."""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, what: str, after_seconds: float = 3.0, every_seconds: float = 2.0):
        self.what = what
        self.after = after_seconds
        self.every = every_seconds
        self.count = 0
        self.started = time.monotonic()
        self.last = self.started
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.count += n
            now = time.monotonic()
            if now - self.started >= self.after and now - self.last >= self.every:
                self.last = now
                rate = self.count / (now - self.started)
                print(f"meterroot: {self.what} {self.count:,} ({rate:,.0f}/s, {now - self.started:.0f} s)",
                      file=sys.stderr, flush=True)


_READ = None


def records_read() -> Progress:
    """The process-wide counter of records decoded."""
    global _READ
    if _READ is None:
        _READ = Progress("records read")
    return _READ
