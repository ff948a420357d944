"""The gateway's cached view of consumers' standing on chain.

An answer is reused for `ttl` seconds; concurrent requests of one consumer share one read; the
reads run on a worker thread (web3 is synchronous), never on the event loop. A watcher polls the
registry's WithdrawalRequested events and drops the cached answer of every consumer named, so a
withdrawal request is refused within one poll rather than one ttl. At most `max_entries`
answers are kept.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from sinks.chain.standing import ConsumerStanding, StandingReader

log = logging.getLogger("meterroot.gateway")


class StandingCache:
    def __init__(self, reader: StandingReader, *, ttl: float = 5.0, max_entries: int = 100_000):
        self.reader = reader
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, ConsumerStanding]] = OrderedDict()
        self._pending: dict[str, asyncio.Future] = {}
        self.reads = 0
        self._next_block: int | None = None

    async def get(self, consumer: str) -> ConsumerStanding:
        entry = self._entries.get(consumer)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1]
        pending = self._pending.get(consumer)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[consumer] = future
        try:
            standing = await asyncio.to_thread(self.reader.standing, consumer)
            self.reads += 1
            self._entries[consumer] = (time.monotonic(), standing)
            self._entries.move_to_end(consumer)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            future.set_result(standing)
            return standing
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._pending[consumer]

    def forget(self, consumer: str) -> None:
        self._entries.pop(consumer, None)

    async def watch_withdrawals(self, poll_seconds: float) -> None:
        """Forever: drop the cached standing of each consumer that requests a withdrawal."""
        while True:
            try:
                if self._next_block is None:
                    self._next_block = await asyncio.to_thread(lambda: self.reader.w3.eth.block_number)
                consumers, last = await asyncio.to_thread(self.reader.withdrawal_requests, self._next_block)
                for consumer in consumers:
                    self.forget(consumer)
                self._next_block = last + 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node is down: keep serving from the ttl, try again
                log.warning("watching WithdrawalRequested failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(poll_seconds)
