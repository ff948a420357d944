"""The stand-in for a Chainlink node where none runs (`meterroot oracle push`).

It does what the node's job does, step for step, so the adapter is exercised exactly as a node's
bridge task would call it:

  bridge        POST {"id": <job run id>, "data": {"endpoint": "availability", "provider", "epoch"}}
                to the External Adapter
  jsonparse     path data,result
  ethabiencode  submit(uint64 epoch, uint256 availabilityBps)
  ethtx         to the provider's AvailabilityFeed, from the oracle key

Plain HTTP from the standard library: the adapter's answer, status and error shape as they are.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from settlement.errors import MeterrootError, UsageError


class BridgeError(MeterrootError, RuntimeError):
    """The adapter answered with an error (its status and message) or not at all."""


@dataclass(frozen=True)
class BridgeAnswer:
    job_run_id: str
    status: int
    body: dict
    """The adapter's JSON answer, whole."""

    @property
    def result(self) -> int:
        """jsonparse `data,result`: the availability in basis points."""
        data = self.body.get("data") if isinstance(self.body, dict) else None
        value = data.get("result") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise BridgeError(f"adapter answer of job run {self.job_run_id} has no data.result in 0..10000: "
                              f"{json.dumps(self.body)[:300]}")
        return value


def bridge_request(adapter_url: str, data: dict, timeout: float = 30.0) -> BridgeAnswer:
    if not adapter_url.startswith(("http://", "https://")):
        raise UsageError(f"--adapter {adapter_url!r} must be the External Adapter's http:// URL")
    job_run_id = uuid.uuid4().hex
    body = json.dumps({"id": job_run_id, "data": data}).encode()
    request = urllib.request.Request(adapter_url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    except OSError as exc:
        raise BridgeError(f"the External Adapter at {adapter_url} did not answer: {exc}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        raise BridgeError(f"the External Adapter answered HTTP {status} with no JSON: {text[:200]!r}") from None
    if status != 200:
        message = answer.get("errorMessage") or (answer.get("error") or {}).get("message") or answer
        raise BridgeError(f"the External Adapter refused job run {job_run_id} (HTTP {status}): {message}")
    return BridgeAnswer(job_run_id, status, answer)
