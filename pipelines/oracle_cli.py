"""`meterroot oracle {deploy,push,status}`: a provider's AvailabilityFeed on chain (SPEC §14).

`push` is the stand-in for a Chainlink node where none runs: it calls the External Adapter as the
node's bridge task does and writes the answer to the feed as the node's ethtx task would.
"""
from __future__ import annotations

from pathlib import Path

from settlement.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("oracle", help="availability feeds on chain: deploy, push (node stand-in), status",
                              description="A provider's AvailabilityFeed (Chainlink AggregatorV3Interface, "
                                          "basis points, one round per epoch).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    deploy = actions.add_parser("deploy", help="deploy an AvailabilityFeed for one provider")
    deploy.add_argument("--rpc-url", required=True, metavar="URL")
    deploy.add_argument("--provider", required=True, metavar="ADDR")
    deploy.add_argument("--epoch-seconds", type=int, default=3600, metavar="S",
                        help="the tariff's epoch_seconds (default 3600)")
    deploy.add_argument("--oracle", metavar="ADDR", help="who writes rounds (default: the signing key)")
    deploy.add_argument("--admin", metavar="ADDR", help="who manages roles (default: the signing key)")
    deploy.add_argument("--out", required=True, type=Path, metavar="FILE", help="feed file to write")
    _key_options(deploy)
    deploy.set_defaults(func=_deploy)

    push = actions.add_parser(
        "push", help="stand-in for a Chainlink node: ask the adapter, write the feed",
        description="Does what a Chainlink node's job does: bridge (POST to the External Adapter) -> "
                    "jsonparse data,result -> ethabiencode submit(epoch, bps) -> ethtx to the feed. "
                    "Skips an epoch the feed already reports.")
    push.add_argument("--adapter", required=True, metavar="URL", help="the External Adapter's URL")
    push.add_argument("--feed", required=True, type=Path, metavar="FILE", help="feed file of `oracle deploy`")
    push.add_argument("--epoch", required=True, type=int, metavar="E")
    push.add_argument("--rpc-url", metavar="URL", help="JSON-RPC endpoint (default: the feed file's)")
    _key_options(push)
    push.set_defaults(func=_push)

    status = actions.add_parser("status", help="the feed's latest round and its age")
    status.add_argument("--feed", required=True, type=Path, metavar="FILE")
    status.add_argument("--rpc-url", metavar="URL")
    status.add_argument("--epoch", type=int, metavar="E", help="the round of this epoch")
    status.set_defaults(func=_status)


def _key_options(parser) -> None:
    parser.add_argument("--private-key", metavar="HEX",
                        help="signing key (prefer the METERROOT_PRIVATE_KEY environment variable)")
    parser.add_argument("--timeout", type=float, default=120, metavar="S", help="seconds to wait for a tx")


def _sender(rpc_url: str, args, expected_chain_id: int | None = None):
    from sinks.chain.keys import resolve_account
    from sinks.chain.rpc import Sender, connect

    w3 = connect(rpc_url, expected_chain_id=expected_chain_id)
    return Sender(w3, resolve_account(args.private_key, w3.eth.chain_id), timeout=args.timeout)


def _deploy(args) -> int:
    from sinks.chain.feed import deploy_feed

    sender = _sender(args.rpc_url, args)
    feed = deploy_feed(sender, args.provider, args.epoch_seconds, oracle=args.oracle, admin=args.admin,
                       rpc_url=args.rpc_url)
    feed.write(args.out)
    print(f"AvailabilityFeed for {feed.provider} at {feed.feed} (oracle {feed.oracle}); wrote {args.out}")
    return 0


def _feed(args, sends: bool):
    from sinks.chain.feed import Feed, FeedDeployment
    from sinks.chain.rpc import connect

    deployment = FeedDeployment.read(args.feed)
    rpc_url = args.rpc_url or deployment.rpc_url
    if rpc_url is None:
        raise UsageError(f"{args.feed} names no node: pass --rpc-url URL")
    if sends:
        sender = _sender(rpc_url, args, deployment.chain_id)
        return Feed(sender.w3, deployment, sender).require_code()
    return Feed(connect(rpc_url, expected_chain_id=deployment.chain_id), deployment).require_code()


def _push(args) -> int:
    from sinks.node_bridge import bridge_request

    if args.epoch < 0:
        raise UsageError(f"--epoch must be a non-negative epoch number, got {args.epoch}")
    feed = _feed(args, sends=True)
    provider = feed.deployment.provider
    existing = feed.round_of_epoch(args.epoch)
    if existing is not None:
        print(f"epoch {args.epoch} already reported by round {existing.round_id}: {existing.answer} bps; nothing sent")
        return 0
    answer = bridge_request(args.adapter, {"endpoint": "availability", "provider": provider, "epoch": args.epoch})
    bps = answer.result
    result = feed.submit(args.epoch, bps)
    print(f"job run {answer.job_run_id}: epoch {args.epoch} availability {bps} bps of {provider} -> "
          f"feed {feed.deployment.feed} (tx {result.tx_hash}, gas {result.gas_used})")
    return 0


def _status(args) -> int:
    import json

    feed = _feed(args, sends=False)
    latest = feed.latest()
    now = feed.w3.eth.get_block("latest")["timestamp"]
    report = {"feed": feed.deployment.feed, "provider": feed.deployment.provider, "block_timestamp": now,
              "latest": None if latest is None else {**latest.__dict__, "age_seconds": now - latest.updated_at}}
    if args.epoch is not None:
        found = feed.round_of_epoch(args.epoch)
        report["epoch"] = {"epoch": args.epoch, "round": None if found is None else found.__dict__}
    print(json.dumps(report, indent=2))
    return 0
