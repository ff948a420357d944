"""The gateway's upstream client against a real aiohttp server on loopback: Content-Length and
chunked answers, keep-alive reuse, a connection the server closed, HEAD, and a dead upstream."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from meterroot.gateway.upstream import UpstreamError, UpstreamPool
from sinks.chain.anvil import free_port


async def serve(handlers):
    app = web.Application()
    for method, path, handler in handlers:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def echo(request):
    body = await request.read()
    return web.Response(body=body[::-1], headers={"X-Seen-Path": request.path_qs,
                                                  "X-Seen-Header": request.headers.get("X-Test", "")})


async def chunked(request):
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b'{"jsonrpc":', b'"2.0","result":', b'"0x1"}'):
        await response.write(part)
    await response.write_eof()
    return response


async def closing(request):
    return web.Response(body=b"bye", headers={"Connection": "close"})


def test_answers_keep_alive_chunked_and_closed_connections():
    async def main():
        runner, port = await serve([("POST", "/echo", echo), ("GET", "/chunked", chunked),
                                    ("GET", "/close", closing), ("HEAD", "/echo", echo)])
        pool = UpstreamPool(f"http://127.0.0.1:{port}")
        try:
            status, headers, body = await pool.request("POST", "/echo?x=1", [("X-Test", "yes")], b"abc")
            assert (status, body) == (200, b"cba")
            assert (b"X-Seen-Path", b"/echo?x=1") in headers and (b"X-Seen-Header", b"yes") in headers
            assert all(n.lower() != b"content-length" for n, _ in headers)
            assert (await pool.request("GET", "/chunked", [], b""))[2] == b'{"jsonrpc":"2.0","result":"0x1"}'
            assert len(pool._idle) == 1  # one connection served both
            assert (await pool.request("GET", "/close", [], b""))[2] == b"bye"
            assert len(pool._idle) == 0
            status, _, body = await pool.request("HEAD", "/echo", [], b"")
            assert (status, body) == (200, b"")
            await asyncio.gather(*(pool.request("POST", "/echo", [], b"%d" % i) for i in range(50)))
        finally:
            pool.close()
            await runner.cleanup()
    asyncio.run(main())


def test_idle_connection_closed_by_the_upstream_is_replaced():
    async def main():
        runner, port = await serve([("POST", "/echo", echo)])
        pool = UpstreamPool(f"http://127.0.0.1:{port}")
        await pool.request("POST", "/echo", [], b"1")
        await runner.cleanup()  # the server goes away and closes the idle connection
        runner, _ = await serve_on(port, [("POST", "/echo", echo)])
        await asyncio.sleep(0.05)
        assert (await pool.request("POST", "/echo", [], b"12"))[2] == b"21"
        pool.close()
        await runner.cleanup()
    asyncio.run(main())


async def serve_on(port, handlers):
    app = web.Application()
    for method, path, handler in handlers:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def test_dead_upstream_is_an_upstream_error():
    async def main():
        pool = UpstreamPool(f"http://127.0.0.1:{free_port()}", timeout=2)
        with pytest.raises(UpstreamError):
            await pool.request("POST", "/", [], b"{}")
    asyncio.run(main())


def test_only_http_upstreams():
    with pytest.raises(ValueError, match="http://"):
        UpstreamPool("ftp://127.0.0.1:1")
