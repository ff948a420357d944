"""The gateway's aiohttp application: sign-in, permits, health, metrics and the metered proxy.

    POST /meterroot/nonce     {"nonce"}: a single-use nonce for the sign-in message
    POST /meterroot/sign-in   {"message", "signature"} -> {"token", "consumer", "expires_at",
                              "provider", "contract", "chain_id", "registry", "treasury"}
    POST /meterroot/permits   {"permits": [permit, …]} (the permit file's JSON objects)
    GET  /healthz             {"ok": true, …}
    GET  /metrics             Prometheus text format
    *    anything else        forwarded to --upstream, for a signed-in consumer in good standing

A proxied request needs `Authorization: Bearer <token>` (else 401), a consumer with an available
deposit and no pending withdrawal (else 402 `no_deposit` / `pending_withdrawal`) and whose
unpermitted amount is within the credit limit (else 402 `credit_limit`). Its usage is written to
the open usage file before the answer leaves, and the answer carries the metering receipt:

    X-Meterroot-Receipt: {"id": "<run>-<n>", "t": <ms>, "usage": {"request": 1, "compute_unit": 20}}

A permit may also ride on any request as `X-Meterroot-Permit: <permit JSON>`. Request bodies are
never logged.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict
import prometheus_client
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from meterroot.gateway.credit import CreditBook
from meterroot.gateway.metering import MeteringTable
from meterroot.gateway.sessions import SessionBook
from meterroot.gateway.standing import StandingCache
from meterroot.gateway.upstream import UpstreamError, UpstreamPool
from meterroot.gateway.usage_files import RollingUsageWriter, UsageEvent
from meterroot.signin import SignInRefused
from settlement.permits import InvalidPermit, SpendPermit
from settlement.tariff import Tariff
from sinks import atomic

log = logging.getLogger("meterroot.gateway")
prometheus_client.disable_created_metrics()  # the *_created series only double the page

RECEIPT_HEADER = "X-Meterroot-Receipt"
PERMIT_HEADER = "X-Meterroot-Permit"
PREFIX = "/meterroot/"
_HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Host", "Authorization", "Content-Length", "Expect", PERMIT_HEADER))
_LATENCY_BUCKETS = (.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything `meterroot gateway` is started with."""

    upstream: str
    """Base URL of the provider's service (e.g. an EVM node's JSON-RPC)."""
    provider: str
    """EIP-55 address of the provider: the `provider` and payee of its usage."""
    node_id: str
    """`node_id` of the usage events."""
    domain: str
    """EIP-4361 domain consumers sign in to (the listen host:port unless set)."""
    chain_id: int
    """Chain the registry is on: sign-ins and permits must name it."""
    registry: str
    """EIP-55 address of the SettlementRegistry."""
    credit_limit_wei: int
    """Largest unpermitted amount a consumer may run up before it is refused."""
    usage_dir: Path
    """Where usage files are published."""
    permits_file: Path
    """Where the latest permit of each consumer is kept (permit file form)."""
    max_body_bytes: int = 1 << 20
    """Largest request body forwarded."""
    upstream_timeout: float = 30.0
    """Seconds an upstream answer may take."""


class Gateway:
    def __init__(self, config: GatewayConfig, table: MeteringTable, tariff: Tariff, writer: RollingUsageWriter,
                 sessions: SessionBook, standing: StandingCache, credit: CreditBook, *,
                 withdrawal_poll_seconds: float = 1.0, permits_flush_seconds: float = 1.0):
        self.config = config
        self.table = table
        self.tariff = tariff
        self.writer = writer
        self.sessions = sessions
        self.standing = standing
        self.credit = credit
        self.withdrawal_poll_seconds = withdrawal_poll_seconds
        self.permits_flush_seconds = permits_flush_seconds
        self._sequence = 0
        self._permits_dirty = False
        self._client = UpstreamPool(config.upstream, timeout=config.upstream_timeout)
        self._tasks: list[asyncio.Task] = []
        self._upstream = config.upstream.rstrip("/")
        self._epoch_ms = tariff.epoch_seconds * 1000
        self._init_metrics()

    # ------------------------------------------------------------------ wiring
    def _init_metrics(self) -> None:
        self.metrics = CollectorRegistry()
        self.m_requests = Counter("meterroot_gateway_requests", "Proxied requests by outcome",
                                  ["outcome"], registry=self.metrics)
        self.m_refusals = Counter("meterroot_gateway_refusals", "Refused requests by status and reason",
                                  ["status", "reason"], registry=self.metrics)
        self.m_upstream = Histogram("meterroot_gateway_upstream_seconds", "Upstream latency",
                                    buckets=_LATENCY_BUCKETS, registry=self.metrics)
        self.m_events = Counter("meterroot_gateway_usage_events", "Usage events written", registry=self.metrics)
        self.m_files = Gauge("meterroot_gateway_usage_files_published", "Usage files published by this run",
                             registry=self.metrics)
        self.m_files.set_function(lambda: self.writer.published)
        self.m_sessions = Gauge("meterroot_gateway_sessions", "Live sessions", registry=self.metrics)
        self.m_sessions.set_function(lambda: len(self.sessions))
        self._served = self.m_requests.labels("served")
        self._refusal_counters: dict[tuple[int, str], object] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post(PREFIX + "nonce", self.nonce)
        app.router.add_post(PREFIX + "sign-in", self.sign_in)
        app.router.add_post(PREFIX + "permits", self.permits)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app) -> None:
        self._tasks = [asyncio.create_task(self.standing.watch_withdrawals(self.withdrawal_poll_seconds)),
                       asyncio.create_task(self._housekeeping())]

    async def _stop(self, app) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._client.close()
        self.writer.close()
        self._write_permits()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(min(self.permits_flush_seconds, 1.0))
            self.writer.tick()
            if self._permits_dirty:
                self._write_permits()

    def _write_permits(self) -> None:
        self._permits_dirty = False
        lines = b"".join(json.dumps(p.to_json(), separators=(",", ":")).encode() + b"\n"
                         for p in self.credit.latest_permits())
        atomic.write_bytes(self.config.permits_file, lines)

    # ------------------------------------------------------------------ answers
    def _refuse(self, status: int, reason: str, detail: str, **extra) -> web.Response:
        counter = self._refusal_counters.get((status, reason))
        if counter is None:
            counter = self._refusal_counters[(status, reason)] = self.m_refusals.labels(str(status), reason)
        counter.inc()
        body = {"error": "unauthenticated" if status == 401 else "payment_required" if status == 402
                else "refused", "reason": reason, "detail": detail, **extra}
        return web.json_response(body, status=status)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "provider": self.config.provider, "upstream": self._upstream,
                                  "sessions": len(self.sessions), "usage_files": self.writer.published})

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def nonce(self, request: web.Request) -> web.Response:
        return web.json_response({"nonce": self.sessions.issue_nonce(), "domain": self.config.domain,
                                  "chain_id": self.config.chain_id})

    async def sign_in(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            message, signature = body["message"], body["signature"]
            if not isinstance(message, str) or not isinstance(signature, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._refuse(401, "malformed", 'send {"message": <EIP-4361 text>, "signature": <0x hex>}')
        try:
            token, session = self.sessions.sign_in(message, signature)
        except SignInRefused as exc:
            return self._refuse(401, exc.reason, str(exc))
        return web.json_response({
            "token": token, "consumer": session.consumer, "expires_at": int(session.expires_at),
            "provider": self.config.provider, "contract": self.table.contract, "chain_id": self.config.chain_id,
            "registry": self.config.registry, "treasury": self.tariff.treasury,
            "credit_limit_wei": str(self.config.credit_limit_wei)})

    def _session_of(self, request: web.Request):
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self.sessions.session(auth[7:])

    async def permits(self, request: web.Request) -> web.Response:
        session = self._session_of(request)
        if session is None:
            return self._refuse(401, "no_session", "sign in first (POST /meterroot/nonce, /meterroot/sign-in)")
        try:
            body = await request.json()
            items = body["permits"]
            if not isinstance(items, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "bad_request", "detail": 'send {"permits": [<permit>, …]}'},
                                     status=400)
        accepted, refused = 0, []
        for item in items:
            try:
                accepted += self._take_permit(SpendPermit.from_json(item), session.consumer)
            except InvalidPermit as exc:
                refused.append({"reason": exc.reason, "detail": str(exc)})
        status = 200 if not refused else 400
        return web.json_response({"accepted": accepted, "refused": refused,
                                  "owed_wei": str(self.credit.owed(session.consumer)),
                                  "permitted_wei": str(self.credit.permitted(session.consumer))}, status=status)

    def _take_permit(self, permit: SpendPermit, consumer: str) -> bool:
        taken = self.credit.offer_permit(permit, consumer)
        if taken:
            self._permits_dirty = True
        return taken

    # ------------------------------------------------------------------ the metered proxy
    async def proxy(self, request: web.Request) -> web.StreamResponse:
        session = self._session_of(request)
        if session is None:
            return self._refuse(401, "no_session", "send Authorization: Bearer <token> from /meterroot/sign-in")
        consumer = session.consumer
        try:
            standing = await self.standing.get(consumer)
        except Exception as exc:  # the chain cannot be read: refuse rather than serve unpaid
            log.warning("reading %s's standing failed: %s", consumer, type(exc).__name__)
            return self._refuse(503, "chain_unavailable", "the registry cannot be read right now; retry")
        if standing.pending_withdrawal:
            return self._refuse(402, "pending_withdrawal",
                                f"{consumer} has a pending withdrawal of {standing.pending_withdrawal} wei",
                                unlock_at=standing.unlock_at)
        if standing.available <= 0:
            return self._refuse(402, "no_deposit", f"{consumer} has no available deposit on registry "
                                                   f"{self.config.registry}; deposit first")
        permit_header = request.headers.get(PERMIT_HEADER)
        if permit_header is not None:
            try:
                self._take_permit(SpendPermit.from_json(json.loads(permit_header)), consumer)
            except (InvalidPermit, ValueError) as exc:
                return self._refuse(400, getattr(exc, "reason", "malformed"), f"{PERMIT_HEADER}: {exc}")
        unpermitted = self.credit.unpermitted(consumer)
        if unpermitted > self.config.credit_limit_wei:
            return self._refuse(402, "credit_limit",
                                f"{consumer} owes {unpermitted} wei beyond its permits, more than the credit "
                                f"limit {self.config.credit_limit_wei}; sign a SpendPermit for {self.config.provider}",
                                owed_wei=str(self.credit.owed(consumer)),
                                permitted_wei=str(self.credit.permitted(consumer)))
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        started = time.perf_counter()
        try:
            status, raw_headers, payload = await self._client.request(request.method, request.path_qs, headers, body)
        except UpstreamError as exc:
            self.m_requests.labels("upstream_error").inc()
            return self._refuse(502, "upstream_unreachable", f"the provider's service did not answer "
                                                             f"({type(exc).__name__}); not metered")
        self.m_upstream.observe(time.perf_counter() - started)
        reply_headers = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw_headers)
        if status >= 500:
            self.m_requests.labels("upstream_error").inc()
            return web.Response(status=status, body=payload, headers=reply_headers)
        reply_headers[RECEIPT_HEADER] = self._meter(consumer, standing.token_id, body)
        self._served.inc()
        return web.Response(status=status, body=payload, headers=reply_headers)

    def _meter(self, consumer: str, token_id: int | None, body: bytes) -> str:
        """Write the request's usage events and account them; the receipt header's value."""
        usage, _ = self.table.meter(body)
        self._sequence += 1
        request_id = f"{self.writer.run_id}-{self._sequence}"
        now_ms = time.time_ns() // 1_000_000
        config = self.config
        lines = b"".join(
            UsageEvent(f"{request_id}.{i}", config.provider, config.node_id, consumer, self.table.contract,
                       unit, quantity, now_ms, token_id).to_line()
            for i, (unit, quantity) in enumerate(usage))
        self.writer.append(lines, len(usage))
        self.m_events.inc(len(usage))
        self.credit.add(consumer, now_ms // self._epoch_ms, usage)
        return json.dumps({"id": request_id, "t": now_ms, "usage": dict(usage)}, separators=(",", ":"))
