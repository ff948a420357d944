"""A JSON-RPC proxy on 127.0.0.1 that injects network faults between a client and a real node.

    with FaultProxy(anvil_url) as proxy:
        proxy.drop_reply("eth_sendRawTransaction")        # forward it, then hang up unanswered
        proxy.fail("eth_getTransactionReceipt", 503, 2)   # answer HTTP 503 twice, forward nothing
        proxy.delay(3.0, "eth_blockNumber")               # forward after 3 s
        proxy.down(20)                                    # refuse connections for 20 s
        proxy.down_after("eth_sendRawTransaction", 20)    # answer it, then go down for 20 s
        proxy.forwarded("eth_sendRawTransaction")         # how many reached the node

Any URL path is accepted (as hosted nodes carry an API key in it), and the paths seen are kept,
so a test can give the client a URL with a token. Each fault applies to the next `count`
matching requests; `down` closes the listening socket, so clients get "connection refused", and
reopens it on the same port after the given seconds (bounded by a timer the proxy owns).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


@dataclass
class _Fault:
    kind: str  # "drop", "fail", "delay", "down_after"
    method: str | None
    count: int
    status: int = 0
    seconds: float = 0.0
    skip: int = 0
    """Matching requests to let through untouched first."""


class FaultProxy:
    def __init__(self, target: str, port: int = 0):
        self.target = target
        self.faults: list[_Fault] = []
        self.seen: list[str] = []
        self.paths: set[str] = set()
        self._forwarded: list[str] = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._timers: list[threading.Timer] = []
        self._connections: set = set()
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------------- faults
    def drop_reply(self, method: str | None = None, count: int = 1) -> None:
        self._add(_Fault("drop", method, count))

    def fail(self, method: str | None = None, status: int = 503, count: int = 1) -> None:
        self._add(_Fault("fail", method, count, status=status))

    def delay(self, seconds: float, method: str | None = None, count: int = 1) -> None:
        self._add(_Fault("delay", method, count, seconds=seconds))

    def down_after(self, method: str, seconds: float, count: int = 1) -> None:
        """Answer the next `method` request, then refuse every connection for `seconds`."""
        self._add(_Fault("down_after", method, count, seconds=seconds))

    def drop_reply_then_down(self, method: str, seconds: float, *, skip: int = 0) -> None:
        """Forward a `method` request (after `skip` of them), hang up unanswered, then go down
        for `seconds`."""
        self._add(_Fault("drop_then_down", method, 1, seconds=seconds, skip=skip))

    def forwarded(self, method: str) -> int:
        with self._lock:
            return self._forwarded.count(method)

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _take(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method in (None, method) and fault.count > 0:
                    if fault.skip:
                        fault.skip -= 1
                        return None
                    fault.count -= 1
                    return fault
        return None

    # ------------------------------------------------------------------------- up / down
    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self):
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.paths.add(self.path)
                method = _method(body)
                with proxy._lock:
                    proxy.seen.append(method)
                fault = proxy._take(method)
                if fault is not None and fault.kind == "fail":
                    self._answer(fault.status, b"")
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                answer = requests.post(proxy.target, data=body, timeout=30,
                                       headers={"Content-Type": "application/json"})
                with proxy._lock:
                    proxy._forwarded.append(method)
                if fault is not None and fault.kind in ("drop", "drop_then_down"):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # the reply is lost
                    if fault.kind == "drop_then_down":
                        proxy._go_down(fault.seconds)
                    return
                self._answer(answer.status_code, answer.content)
                if fault is not None and fault.kind == "down_after":
                    proxy._go_down(fault.seconds)

            def _answer(self, status: int, content: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                self.wfile.flush()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:  # kept-alive connections too: down means down
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self, seconds: float) -> None:
        """Refuse connections now, and for `seconds`."""
        self._go_down(seconds, wait=True)

    def _go_down(self, seconds: float, wait: bool = False) -> None:
        def close():
            self.stop()
            timer = threading.Timer(seconds, self.start)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        if wait:
            close()
        else:  # from a handler thread: shutdown() waits for serve_forever, which runs elsewhere
            threading.Thread(target=close, daemon=True).start()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        for timer in self._timers:
            timer.cancel()
        self.stop()


def _method(body: bytes) -> str:
    try:
        request = json.loads(body)
    except ValueError:
        return "?"
    if isinstance(request, list):
        return ",".join(r.get("method", "?") for r in request)
    return request.get("method", "?")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
