"""`meterroot gateway`: a metering reverse proxy in front of a provider's service (SPEC §13)."""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_METERING = Path(__file__).parent / "defaults" / "metering.yaml"
DEFAULT_TARIFF = Path(__file__).parent / "defaults" / "tariff.yaml"


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gateway", help="serve a provider's service to signed-in consumers, metered into usage files",
        description="An HTTP reverse proxy: Sign-In with Ethereum sessions, on-chain deposit checks, "
                    "metering by JSON-RPC method, usage files published atomically, spend permits kept.")
    p.add_argument("--upstream", required=True, metavar="URL", help="the provider's service, e.g. its node's JSON-RPC")
    p.add_argument("--listen", required=True, metavar="HOST:PORT")
    p.add_argument("--metering", type=Path, default=DEFAULT_METERING, metavar="FILE",
                   help="metering table (default: pipelines/defaults/metering.yaml, compute units per method)")
    p.add_argument("--usage-dir", required=True, type=Path, metavar="DIR",
                   help="where usage files appear (what `meterroot batch --input 'DIR/*.jsonl'` reads)")
    p.add_argument("--provider-key", metavar="KEY", help="the provider's private key (or METERROOT_PROVIDER_KEY)")
    p.add_argument("--registry", required=True, metavar="ADDR|FILE", help="registry address or deployment file")
    p.add_argument("--rpc-url", required=True, metavar="URL", help="the chain the registry is on")
    p.add_argument("--tariff", type=Path, default=DEFAULT_TARIFF, metavar="FILE",
                   help="the published tariff (default: the demo's)")
    p.add_argument("--credit-limit-wei", type=_whole, default=10**15, metavar="WEI",
                   help="refuse a consumer whose usage exceeds its permits by more (default 10^15)")
    p.add_argument("--node-id", help="node_id of the usage events (default gateway:HOST:PORT)")
    p.add_argument("--domain", help="EIP-4361 domain consumers sign in to (default HOST:PORT)")
    p.add_argument("--permits-file", type=Path, metavar="FILE",
                   help="latest permit of each consumer (default DIR/.permits/latest.jsonl)")
    p.add_argument("--rotate-bytes", type=_whole, default=64 << 20, metavar="N",
                   help="publish the open usage file at this size (default 64 MiB)")
    p.add_argument("--rotate-seconds", type=_seconds, default=60.0, metavar="S",
                   help="publish the open usage file at this age (default 60)")
    p.add_argument("--probe-seconds", type=_seconds, default=0.0, metavar="S",
                   help="probe the upstream (eth_blockNumber) this often; probe records go to USAGE_DIR/probes/ "
                        "for `meterroot batch --probes` (default 0: no probes)")
    p.add_argument("--standing-ttl", type=_seconds, default=5.0, metavar="S",
                   help="seconds a consumer's deposit check is cached (default 5)")
    p.set_defaults(func=run_gateway)


def run_gateway(args) -> int:
    from meterroot.gateway.server import GatewayOptions, parse_listen, serve
    host, port = parse_listen(args.listen)
    return serve(GatewayOptions(
        upstream=args.upstream, host=host, port=port, metering=args.metering, usage_dir=args.usage_dir,
        provider_key=args.provider_key, registry=args.registry, rpc_url=args.rpc_url, tariff=args.tariff,
        credit_limit_wei=args.credit_limit_wei, node_id=args.node_id, domain=args.domain,
        permits_file=args.permits_file, rotate_bytes=args.rotate_bytes, rotate_seconds=args.rotate_seconds,
        standing_ttl=args.standing_ttl, probe_seconds=args.probe_seconds))
