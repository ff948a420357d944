"""The gateway's client to its upstream: keep-alive HTTP/1.1 connections parsed by httptools
(llhttp, the parser Node.js uses), with a bounded pool.

The upstream is the provider's own service, so this client is deliberately small: one request
at a time per connection, Content-Length or chunked answers, no redirects, no cookies. Measured
on the benchmark's loopback upstream it costs about a tenth of the CPU per request of aiohttp's
client session, which was most of the gateway's time. Consumers still talk to aiohttp's server.
"""
from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

import httptools

from settlement.errors import UsageError


class UpstreamError(ConnectionError):
    """The upstream closed, refused or timed out before a whole answer arrived."""


class _Connection(asyncio.Protocol):
    def __init__(self, pool: "UpstreamPool"):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.received = False
        self.closed = False
        self.head_request = False

    # asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the upstream's answer is not HTTP/1.1: {exc}"))
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        self._fail(UpstreamError("the upstream closed the connection before answering"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes):
        self.headers.append((name, value))

    def on_headers_complete(self):
        if self.head_request:  # an answer to HEAD has headers only, whatever Content-Length says
            self.on_message_complete()

    def on_body(self, body: bytes):
        self.body.append(body)

    def on_message_complete(self):
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body),
                               self.parser.should_keep_alive()))

    def _fail(self, exc: Exception):
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, request: bytes, head_request: bool) -> asyncio.Future:
        self.headers, self.body, self.received, self.head_request = [], [], False, head_request
        self.parser = httptools.HttpResponseParser(self)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


_DROP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"te", b"trailer",
                   b"upgrade", b"proxy-authenticate", b"proxy-authorization"))


class UpstreamPool:
    """At most `max_connections` open connections to one upstream; idle ones are reused."""

    def __init__(self, url: str, *, max_connections: int = 256, timeout: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"--upstream {url!r} must be an http:// URL (the provider's own service, "
                             f"e.g. http://127.0.0.1:8545)")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.encode()
        self.timeout = timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)

    async def request(self, method: str, path_qs: str, headers: list[tuple[str, str]], body: bytes
                      ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """(status, headers less hop-by-hop ones, body) of the upstream's answer."""
        head = [f"{method} {self.base_path}{path_qs} HTTP/1.1\r\n".encode(), b"Host: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        head.append(b"Content-Length: %d\r\n\r\n" % len(body))
        request = b"".join(head) + body
        async with self._slots:
            for attempt in (1, 2):
                connection, reused = await self._connection()
                try:
                    status, reply_headers, payload, keep_alive = await asyncio.wait_for(
                        connection.send(request, method == "HEAD"), self.timeout)
                except UpstreamError:
                    # a reused keep-alive connection the upstream had closed: nothing was answered,
                    # so the request is sent once more on a fresh connection
                    if reused and attempt == 1 and not connection.received:
                        continue
                    raise
                except asyncio.TimeoutError:
                    connection.transport.close()
                    raise UpstreamError(f"the upstream did not answer within {self.timeout:g} s") from None
                if keep_alive and not connection.closed and method != "HEAD":
                    self._idle.append(connection)
                else:
                    connection.transport.close()
                return status, [(n, v) for n, v in reply_headers if n.lower() not in _DROP], payload
        raise UpstreamError("unreachable")  # the loop returns or raises

    async def _connection(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port), self.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to the upstream {self.host}:{self.port} ({type(exc).__name__})") from None
        return connection, False

    def close(self) -> None:
        while self._idle:
            self._idle.pop().transport.close()
