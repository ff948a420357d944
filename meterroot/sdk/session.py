"""A signed-in session with one provider's gateway.

    with consumer.sign_in("http://127.0.0.1:8600") as session:
        block = session.rpc("eth_blockNumber")
        response = session.post("/", json={...})      # any request, metered alike

Each answer's metering receipt goes into the consumer's meter; every `permit_every_requests`
requests or `permit_every_seconds` seconds (and when the session closes) the consumer signs
permits for what it owes and hands the gateway those of its payees. A refusal raises
GatewayRefused with the gateway's reason (401: sign in again; 402: no_deposit,
pending_withdrawal, credit_limit).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import httpx

from meterroot import signin
from meterroot.sdk.meter import Receipt
from settlement.errors import MeterrootError

RECEIPT_HEADER = "X-Meterroot-Receipt"
STATEMENT = "Sign in to use this provider's service; usage is billed to this account's deposit."


class GatewayRefused(MeterrootError, PermissionError):
    """The gateway refused a request: `status` 401 (session) or 402 (payment), with its reason."""

    def __init__(self, status: int, reason: str, detail: str, body: dict):
        super().__init__(f"gateway refused ({status} {reason}): {detail}")
        self.status = status
        self.reason = reason
        self.body = body


def _refusal(response: httpx.Response) -> GatewayRefused:
    try:
        body = response.json()
    except ValueError:
        body = {}
    return GatewayRefused(response.status_code, str(body.get("reason", "unknown")),
                          str(body.get("detail", response.text[:200])), body)


class Session:
    def __init__(self, consumer, client: httpx.Client, info: dict, *, permit_every_requests: int,
                 permit_every_seconds: float):
        self.consumer = consumer
        self.client = client
        self.info = info
        """The gateway's sign-in answer: token, provider, contract, chain_id, registry, treasury, …"""
        self.provider: str = info["provider"]
        self.contract: str = info["contract"]
        self.permit_every_requests = permit_every_requests
        self.permit_every_seconds = permit_every_seconds
        self.requests = 0
        self._since_permit = 0
        self._permit_at = time.monotonic()
        self._rpc_id = 0

    @classmethod
    def open(cls, consumer, gateway_url: str, *, lifetime_seconds: int, permit_every_requests: int,
             permit_every_seconds: float, timeout: float) -> "Session":
        if permit_every_requests < 1 or permit_every_seconds <= 0:
            raise ValueError("permit_every_requests must be >= 1 and permit_every_seconds > 0")
        client = httpx.Client(base_url=gateway_url.rstrip("/"), timeout=timeout)
        try:
            info = cls._sign_in(consumer, client, gateway_url, lifetime_seconds)
        except BaseException:
            client.close()
            raise
        client.headers["Authorization"] = f"Bearer {info['token']}"
        return cls(consumer, client, info, permit_every_requests=permit_every_requests,
                   permit_every_seconds=permit_every_seconds)

    @staticmethod
    def _sign_in(consumer, client: httpx.Client, gateway_url: str, lifetime_seconds: int) -> dict:
        answer = client.post("/meterroot/nonce")
        answer.raise_for_status()
        nonce = answer.json()["nonce"]
        parts = urlsplit(gateway_url)
        message = signin.build(consumer.account, domain=parts.netloc, uri=gateway_url.rstrip("/"),
                               chain_id=consumer.chain_id, nonce=nonce, issued_at=datetime.now(timezone.utc),
                               lifetime_seconds=lifetime_seconds, statement=STATEMENT)
        response = client.post("/meterroot/sign-in", json={"message": message.text(),
                                                            "signature": message.sign(consumer.account)})
        if response.status_code != 200:
            raise _refusal(response)
        info = response.json()
        if info["registry"].lower() != consumer.registry.lower() or info["chain_id"] != consumer.chain_id:
            raise MeterrootError(f"the gateway settles on registry {info['registry']} (chain {info['chain_id']}), "
                                 f"not this consumer's {consumer.registry} (chain {consumer.chain_id})")
        return info

    # ------------------------------------------------------------------ requests
    def request(self, method: str, path: str = "/", **kwargs) -> httpx.Response:
        """Send one request through the gateway; meter its receipt; sign permits when due."""
        response = self.client.request(method, path, **kwargs)
        if response.status_code in (401, 402):
            raise _refusal(response)
        header = response.headers.get(RECEIPT_HEADER)
        if header is not None:
            self.consumer.meter.record(Receipt.parse(header), contract=self.contract, provider=self.provider)
            self.requests += 1
            self._since_permit += 1
            if (self._since_permit >= self.permit_every_requests or
                    time.monotonic() - self._permit_at >= self.permit_every_seconds):
                self.send_permits()
        return response

    def post(self, path: str = "/", **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str = "/", **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def rpc(self, method: str, params: list | None = None):
        """One JSON-RPC call; its `result` (a JSON-RPC error raises MeterrootError)."""
        self._rpc_id += 1
        response = self.post("/", json={"jsonrpc": "2.0", "id": self._rpc_id, "method": method,
                                        "params": params or []})
        response.raise_for_status()
        body = response.json()
        if "error" in body:
            raise MeterrootError(f"{method} failed at the provider: {body['error']}")
        return body["result"]

    # ------------------------------------------------------------------ permits
    def send_permits(self) -> dict:
        """Sign permits for what is owed now and give the gateway those of its payees."""
        self.consumer.sign_permits()
        self._since_permit = 0
        self._permit_at = time.monotonic()
        mine = [p.to_json() for p in self.consumer.latest_permits()
                if p.payee in (self.provider, self.info.get("treasury"))]
        if not mine:
            return {"accepted": 0}
        response = self.client.post("/meterroot/permits", json={"permits": mine})
        if response.status_code != 200:
            raise _refusal(response)
        return response.json()

    def close(self) -> None:
        try:
            if self._since_permit:
                self.send_permits()
        finally:
            self.client.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
