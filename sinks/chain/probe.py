"""Probing a provider's EVM JSON-RPC service (SPEC §14): `eth_blockNumber`, timed.

A probe is ok when the service answers with a block number within the timeout and its chain
head is not stale: the head must have moved within `stale_seconds` (a node that answers but
has stopped following its chain serves old state). Plain HTTP from the standard library: a probe
must measure the service, not a client's retries.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from settlement.errors import UsageError


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    """Answered in time with a head that is not stale."""
    latency_ms: int
    """Until the answer, or until the probe gave up."""
    head: int | None
    """The block number answered, if any."""
    detail: str
    """Why not ok ('' when ok)."""


def check_target(url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UsageError(f"--target {url!r} must be an http:// or https:// JSON-RPC URL, "
                         "e.g. --target http://127.0.0.1:8545")
    return url


class HeadTracker:
    """Remembers when the head last moved, to call a head stale (monotonic clock)."""

    def __init__(self, stale_seconds: float):
        self.stale_seconds = stale_seconds
        self.head: int | None = None
        self.moved_at: float | None = None

    def stale(self, head: int, now: float) -> bool:
        if self.head is None or head > self.head:
            self.head, self.moved_at = head, now
            return False
        return now - self.moved_at > self.stale_seconds


def block_number(url: str, timeout: float) -> int:
    """The answer of `eth_blockNumber`; raises OSError / ValueError on any failure."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, str) or not result.startswith("0x"):
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise ValueError(f"no block number in the answer: {error!r}")
    return int(result, 16)


def probe(url: str, timeout: float, tracker: HeadTracker) -> ProbeResult:
    started = time.monotonic()
    try:
        head = block_number(url, timeout)
    except (OSError, ValueError) as exc:  # refused, reset, timed out, HTTP error, not JSON-RPC
        latency = int((time.monotonic() - started) * 1000)
        return ProbeResult(False, latency, None, f"{type(exc).__name__}: {exc}")
    now = time.monotonic()
    latency = int((now - started) * 1000)
    if latency > timeout * 1000:
        return ProbeResult(False, latency, head, f"answered after {latency} ms, over the timeout")
    if tracker.stale(head, now):
        return ProbeResult(False, latency, head,
                           f"head {head} has not moved for more than {tracker.stale_seconds:g} s")
    return ProbeResult(True, latency, head, "")
