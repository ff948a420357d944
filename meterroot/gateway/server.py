"""Building and running a gateway from its options: keys, the chain, the tables, recovery."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from settlement.errors import UsageError
from settlement.tariff import Tariff

log = logging.getLogger("meterroot.gateway")

PROVIDER_KEY_ENV = "METERROOT_PROVIDER_KEY"


@dataclass(frozen=True)
class GatewayOptions:
    """`meterroot gateway`'s options, checked."""

    upstream: str
    """Base URL of the provider's service."""
    host: str
    """Address to listen on."""
    port: int
    """Port to listen on."""
    metering: Path
    """The metering table."""
    usage_dir: Path
    """Where usage files are published."""
    provider_key: str | None
    """The provider's private key (else METERROOT_PROVIDER_KEY)."""
    registry: str
    """Registry address, or a deployment file naming it."""
    rpc_url: str
    """The chain's JSON-RPC URL."""
    tariff: Path
    """The published tariff (prices the credit check)."""
    credit_limit_wei: int
    """Largest unpermitted amount per consumer."""
    node_id: str | None = None
    """`node_id` of the events (default gateway:<host>:<port>)."""
    domain: str | None = None
    """EIP-4361 domain (default <host>:<port>)."""
    permits_file: Path | None = None
    """Latest permits (default <usage-dir>/.permits/latest.jsonl)."""
    rotate_bytes: int = 64 << 20
    """Publish the open usage file at this size."""
    rotate_seconds: float = 60.0
    """Publish the open usage file at this age."""
    standing_ttl: float = 5.0
    """Seconds a consumer's on-chain standing is cached."""
    withdrawal_poll_seconds: float = 1.0
    """How often WithdrawalRequested events are polled."""
    probe_seconds: float = 0.0
    """Probe the upstream this often (SPEC §14; probe records in <usage-dir>/probes/); 0: never."""


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r} must be HOST:PORT, e.g. 127.0.0.1:8600")
    return host, int(port)


def resolve_registry(text: str) -> str:
    from sinks.chain.deployment import Deployment, checksum
    if text.startswith("0x"):
        return checksum(text, "--registry")
    return Deployment.read(Path(text)).registry


def build_gateway(options: GatewayOptions, tariff: Tariff | None = None):
    """(Gateway, the files recovered from a killed run); UsageError on any bad option."""
    from meterroot.gateway.app import Gateway, GatewayConfig
    from meterroot.gateway.credit import CreditBook
    from meterroot.gateway.metering import load_metering_table
    from meterroot.gateway.sessions import SessionBook
    from meterroot.gateway.standing import StandingCache
    from meterroot.gateway.usage_files import RollingUsageWriter, new_run_id
    from settlement.tariff import load_tariff
    from sinks.chain.keys import account_from_key
    from sinks.chain.rpc import connect
    from sinks.chain.standing import StandingReader

    key = options.provider_key or os.environ.get(PROVIDER_KEY_ENV)
    if not key:
        raise UsageError(f"no provider key: pass --provider-key or set {PROVIDER_KEY_ENV} (the provider's "
                         f"address is the payee of its usage)")
    provider = account_from_key(key).address
    table = load_metering_table(options.metering)
    tariff = tariff or load_tariff(options.tariff)
    unpriced = sorted({unit for usage in [table.default, *table.methods.values()] for unit, _ in usage
                       if tariff.price_for(table.contract, unit) is None})
    if unpriced:
        raise UsageError(f"the metering table's unit(s) {', '.join(unpriced)} have no price in tariff "
                         f"{options.tariff} for contract {table.contract}; price them or meter other units")
    if options.credit_limit_wei < 0:
        raise UsageError(f"--credit-limit-wei must be >= 0, not {options.credit_limit_wei}")
    registry = resolve_registry(options.registry)
    w3 = connect(options.rpc_url)
    if not w3.eth.get_code(registry):
        raise UsageError(f"--registry {registry} has no contract on the chain at {options.rpc_url}")
    chain_id = w3.eth.chain_id
    domain = options.domain or f"{options.host}:{options.port}"
    usage_dir = Path(options.usage_dir)
    writer = RollingUsageWriter(usage_dir, new_run_id(), max_bytes=options.rotate_bytes,
                                max_seconds=options.rotate_seconds)
    recovered = writer.recover()
    config = GatewayConfig(
        upstream=options.upstream, provider=provider,
        node_id=options.node_id or f"gateway:{options.host}:{options.port}", domain=domain,
        chain_id=chain_id, registry=registry, credit_limit_wei=options.credit_limit_wei,
        usage_dir=usage_dir, permits_file=options.permits_file or usage_dir / ".permits" / "latest.jsonl")
    gateway = Gateway(config, table, tariff, writer, SessionBook(domain=domain, chain_id=chain_id),
                      StandingCache(StandingReader(w3, registry), ttl=options.standing_ttl),
                      CreditBook(tariff, provider=provider, contract=table.contract, chain_id=chain_id,
                                 registry=registry),
                      withdrawal_poll_seconds=options.withdrawal_poll_seconds)
    return gateway, recovered


def serve(options: GatewayOptions) -> int:
    import asyncio

    import uvloop
    from aiohttp import web
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    gateway, recovered = build_gateway(options)
    for path in recovered:
        print(f"meterroot gateway: published {path} left open by a stopped gateway", file=sys.stderr)
    c = gateway.config
    print(f"meterroot gateway: http://{options.host}:{options.port} -> {c.upstream}; provider {c.provider}, "
          f"registry {c.registry} on chain {c.chain_id}; usage files in {c.usage_dir}", file=sys.stderr, flush=True)
    app = gateway.app()
    if options.probe_seconds > 0:
        from sinks.upstream_prober import UpstreamProber
        UpstreamProber(c.upstream, c.provider, c.node_id, c.usage_dir, probe_seconds=options.probe_seconds).attach(app)
    web.run_app(app, host=options.host, port=options.port, access_log=None, print=None,
                shutdown_timeout=5)
    return 0
