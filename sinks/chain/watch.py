"""`meterroot chain watch`: the operator's loop, one step at a time, for a service manager.

Each step commits every batch of OUT not yet on chain (through the journal: a restart never
sends a commit twice), then reads the registry's WithdrawalRequested, DisputeOpened and
BatchRevoked events from the blocks confirmed since the last step and reports each one: a log
line on stdout and, with a webhook, a JSON POST. Where it got to is kept in OUT/chain/watch.json,
so a restarted watcher neither misses nor repeats an event. A stop request (SIGTERM, SIGINT)
ends the loop after the current step.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
from hexbytes import HexBytes

from settlement.errors import MeterrootError, UsageError
from sinks.chain.artifacts import REGISTRY, load_artifact
from sinks.chain.registry import Registry
from sinks.chain.rpc import redact_url
from sinks.chain.settle import COMMITTED, commit_output
from sinks.lock import OutputLock, OutputLocked

log = logging.getLogger("meterroot.chain")

WATCHED_EVENTS = ("WithdrawalRequested", "DisputeOpened", "BatchRevoked", "BatchesRevoked")
"""SPEC §6 events an operator must see at once, those the registry's ABI has (v1 emits
BatchRevoked; v2 emits BatchesRevoked for a batch and every later one, and DisputeOpened)."""
MAX_LOG_RANGE = 2_000
"""Blocks per eth_getLogs request (hosted nodes refuse larger ranges)."""
CURSOR_NAME = "watch.json"


@dataclass(frozen=True)
class Alert:
    """One event worth an operator's attention."""

    event: str
    """Event name, e.g. "DisputeOpened"."""
    block: int
    tx_hash: str
    args: dict
    """Decoded event arguments (ints as decimal strings, bytes as 0x hex)."""

    def line(self) -> str:
        fields = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"ALERT {self.event} block {self.block} tx {self.tx_hash}: {fields}"

    def to_json(self) -> dict:
        return {"event": self.event, "block": self.block, "tx": self.tx_hash, "args": self.args}


class Watcher:
    """Commits OUT's batches and reports the registry's watched events, step by step."""

    def __init__(self, out: Path, registry: Registry, *, webhook: str | None = None,
                 skip_validation: bool = False, confirmations: int = 1, data_uri: str = "",
                 emit: Callable[[str], None] = print):
        self.out = Path(out)
        self.registry = registry
        self.webhook = webhook
        self.skip_validation = skip_validation
        self.confirmations = confirmations
        self.data_uri = data_uri
        self.emit = emit
        self.cursor_file = self.out / "chain" / CURSOR_NAME
        abi = {e["name"]: e for e in load_artifact(REGISTRY).abi if e["type"] == "event"}
        self.events = [name for name in WATCHED_EVENTS if name in abi]
        self.unwatchable = [name for name in WATCHED_EVENTS if name not in abi]
        self._topics = {registry.w3.keccak(text=_signature(abi[name])): name for name in self.events}
        self._last_problem = None
        self._last_busy = None

    # ----------------------------------------------------------------------------- loop
    def run(self, stop: threading.Event, poll_seconds: float) -> int:
        self.emit(f"watching registry {self.registry.deployment.registry} on chain "
                  f"{self.registry.deployment.chain_id}: committing the batches of {self.out}, alerting on "
                  f"{', '.join(self.events)}" + (f" (webhook {redact_url(self.webhook)})" if self.webhook else ""))
        if "DisputeOpened" in self.unwatchable:
            self.emit("note: this registry has no DisputeOpened event (a v1 registry); disputes are not watched")
        while not stop.is_set():
            self.step()
            stop.wait(poll_seconds)
        self.emit("stopped after the current step")
        return 0

    def step(self) -> None:
        """Commit what is new, then report new events; each failure is reported and retried next
        step (the journal makes a retried commit safe), and one does not stop the other."""
        problems = []
        try:
            self._commit_when_free()
        except MeterrootError as exc:
            problems.append(f"{'commit blocked' if isinstance(exc, UsageError) else 'chain error'}: {exc}")
        try:
            alerts, next_block = self.new_alerts()
            for alert in alerts:
                self.emit(alert.line())
                self._post(alert.to_json())
            self._save_cursor(next_block)  # after reporting: a crash repeats an alert, never loses one
        except MeterrootError as exc:
            problems.append(f"events not read: {exc}")
        problem = "; ".join(problems) or None
        if problem and problem != self._last_problem:  # said once, not every step
            self.emit(f"ALERT {problem} (retrying every step)")
            self._post({"event": "error", "message": problem})
        self._last_problem = problem

    def _commit_when_free(self) -> None:
        """Commit with OUT's lock held (SPEC §10: a commit is one of OUT's writers), so no batch
        run, stream or revoke changes OUT under it; while another holds OUT, this step commits
        nothing (said once per holder) and a later step commits what it settled."""
        if not self.out.is_dir():  # nothing to lock; commit_output says what is missing
            commit_output(self.out, self.registry, skip_validation=self.skip_validation, data_uri=self.data_uri)
            return
        try:
            lock = OutputLock(self.out, "chain watch").acquire()
        except OutputLocked as busy:
            if str(busy) != self._last_busy:
                self.emit(f"note: {busy}; its batches are committed at the first step after it")
            self._last_busy = str(busy)
            return
        self._last_busy = None
        try:
            for outcome in commit_output(self.out, self.registry, skip_validation=self.skip_validation,
                                         data_uri=self.data_uri):
                if outcome.action == COMMITTED:
                    self.emit(f"batch {outcome.batch}: committed root {outcome.root} in tx {outcome.tx_hash}")
        finally:
            lock.release()

    # ----------------------------------------------------------------------------- events
    def new_alerts(self) -> tuple[list[Alert], int]:
        """Watched events in the confirmed blocks not yet scanned, and the next block to scan."""
        w3 = self.registry.w3
        start = self._next_block()
        end = w3.eth.block_number - (self.confirmations - 1)
        alerts = []
        while start <= end:
            stop = min(end, start + MAX_LOG_RANGE - 1)
            logs = w3.eth.get_logs({"address": self.registry.deployment.registry, "fromBlock": start,
                                    "toBlock": stop, "topics": [list(self._topics)]})
            alerts += [self._decode(entry) for entry in logs]
            start = stop + 1
        return alerts, start

    def _decode(self, entry) -> Alert:
        name = self._topics[HexBytes(entry["topics"][0])]
        event = getattr(self.registry.contract.events, name)().process_log(entry)
        args = {k: _plain(v) for k, v in event["args"].items()}
        return Alert(name, entry["blockNumber"], "0x" + bytes(entry["transactionHash"]).hex(), args)

    def _next_block(self) -> int:
        try:
            return json.loads(self.cursor_file.read_text())["next_block"]
        except FileNotFoundError:
            return self.registry.deployment.block
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UsageError(f"{self.cursor_file} is not a watch cursor; delete it to rescan from the "
                             f"deployment block") from None

    def _save_cursor(self, next_block: int) -> None:
        self.cursor_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CURSOR_NAME}.", dir=self.cursor_file.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({"next_block": next_block, "registry": self.registry.deployment.registry}, handle)
        os.replace(tmp, self.cursor_file)

    def _post(self, body: dict) -> None:
        if not self.webhook:
            return
        try:
            requests.post(self.webhook, json=body, timeout=5).raise_for_status()
        except requests.RequestException as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            self.emit(f"webhook {redact_url(self.webhook)} failed ({status or type(exc).__name__}); "
                      f"the alert is in this log")


def _signature(entry: dict) -> str:
    return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value
