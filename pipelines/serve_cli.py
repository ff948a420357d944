"""`meterroot serve`: the read-only HTTP API over an output directory (SPEC §14)."""
from __future__ import annotations

import sys

from settlement.errors import UsageError


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise UsageError(f"--listen {text!r} must be HOST:PORT, e.g. --listen 127.0.0.1:8700")
    return host.strip("[]"), int(port)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve an output directory read-only over HTTP (batches, proofs, bills, availability)",
        description="A read-only JSON API (OpenAPI document at /openapi.json) over OUT: batches and "
                    "manifests, tree dumps, the proof of any (batch, consumer, payee), bills, revenue "
                    "and availability. It is what a registry's dataURI points at.")
    p.add_argument("--output", required=True, metavar="DIR", help="the output directory to publish")
    p.add_argument("--listen", default="127.0.0.1:8700", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8700)")
    p.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from aiohttp import web

    from sinks.api.app import make_app
    from sinks.api.published import check_output

    out = check_output(args.output)
    host, port = parse_listen(args.listen)
    app = make_app(out)
    print(f"serving {out} on http://{host}:{port} (OpenAPI at /openapi.json)", flush=True)
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True)
    except OSError as exc:
        print(f"meterroot serve: error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    return 0
