"""`meterroot chain {up,down,deploy,commit,deposit,claim,proof,status}`: settlement on chain.

Keys come from --private-key or METERROOT_PRIVATE_KEY (anvil's first development key on chain
31337); they are never printed. --rpc-url defaults to the deployment file's node, then to the
chain `chain up` runs for --output. sinks.chain (and web3) load only when a chain command runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from settlement.errors import UsageError
from sinks.lock import holds_output_lock


def register(subparsers) -> None:
    chain = subparsers.add_parser(
        "chain", help="commit batches on chain, deposit, claim (a local anvil or any EVM node)",
        description="Settle an output folder's batches on a SettlementRegistry.")
    actions = chain.add_subparsers(dest="chain_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start a local anvil chain for OUT (state kept in OUT/chain/)")
    up.add_argument("--output", required=True, type=Path, metavar="OUT")
    up.add_argument("--port", type=int, default=8545, help="port on 127.0.0.1 (0: any free port; default 8545)")
    up.add_argument("--chain-id", type=int, default=31337)
    up.set_defaults(func=_up)

    down = actions.add_parser("down", help="stop OUT's local chain (its state is saved)")
    down.add_argument("--output", required=True, type=Path, metavar="OUT")
    down.set_defaults(func=_down)

    deploy = actions.add_parser("deploy", help="deploy a SettlementRegistry; write the deployment file")
    token = deploy.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", metavar="ADDR", help="the ERC-20 deposits are made in")
    token.add_argument("--test-token", action="store_true",
                       help="deploy a freely mintable TestToken too (development chains only)")
    deploy.add_argument("--challenge-period", type=_seconds, default=86_400, metavar="S",
                        help="seconds a batch can be revoked before it is claimable (default 86400)")
    deploy.add_argument("--thaw-period", type=_seconds, default=7 * 86_400, metavar="S",
                        help="seconds from a withdrawal request to the withdrawal; > challenge period "
                             "(default 604800)")
    for role in ("admin", "committer", "governance"):
        deploy.add_argument(f"--{role}", metavar="ADDR", help=f"{role} role holder (default: the deployer)")
    deploy.add_argument("--out", required=True, type=Path, metavar="FILE", help="deployment file to write")
    deploy.add_argument("--output", type=Path, metavar="OUT", help="use the chain `chain up` runs for OUT")
    _node_options(deploy, deployment=False)
    deploy.set_defaults(func=_deploy)

    commit = actions.add_parser("commit", help="commit every batch of OUT not yet on chain, in order")
    commit.add_argument("--output", required=True, type=Path, metavar="OUT")
    commit.add_argument("--skip-validation", action="store_true",
                        help="commit without the validation gate (an explicit, logged override)")
    _node_options(commit)
    commit.set_defaults(func=holds_output_lock("chain commit")(_commit))

    deposit = actions.add_parser("deposit", help="deposit tokens for a consumer")
    deposit.add_argument("--consumer", required=True, metavar="ADDR")
    deposit.add_argument("--amount", required=True, type=_wei, metavar="WEI")
    deposit.add_argument("--mint", action="store_true", help="mint the amount first (test token only)")
    deposit.add_argument("--output", type=Path, metavar="OUT", help="use the chain `chain up` runs for OUT")
    _node_options(deposit)
    deposit.set_defaults(func=_deposit)

    claim = actions.add_parser("claim", help="claim what a consumer owes a payee through a batch")
    _leaf_options(claim)
    _node_options(claim)
    claim.set_defaults(func=_claim)

    proof = actions.add_parser("proof", help="print a leaf's value, hash, proof and root as JSON")
    _leaf_options(proof)
    proof.set_defaults(func=_proof)

    status = actions.add_parser("status", help="committed batches, their finality, a consumer's deposit")
    status.add_argument("--consumer", metavar="ADDR")
    status.add_argument("--output", type=Path, metavar="OUT", help="use the chain `chain up` runs for OUT")
    _node_options(status, sends=False)
    status.set_defaults(func=_status)


def _node_options(parser, *, deployment: bool = True, sends: bool = True) -> None:
    if deployment:
        parser.add_argument("--deployment", required=True, type=Path, metavar="FILE",
                            help="deployment file written by `chain deploy`")
    default = "the deployment's node" if deployment else "the chain `chain up` runs for --output"
    parser.add_argument("--rpc-url", metavar="URL", help=f"JSON-RPC endpoint (default: {default})")
    if sends:
        parser.add_argument("--private-key", metavar="HEX",
                            help="signing key (prefer the METERROOT_PRIVATE_KEY environment variable)")
        parser.add_argument("--confirmations", type=int, default=1, metavar="N",
                            help="blocks to wait for after inclusion (default 1)")
        parser.add_argument("--timeout", type=float, default=120, metavar="S",
                            help="seconds to wait for a transaction (default 120)")


def _leaf_options(parser) -> None:
    parser.add_argument("--output", required=True, type=Path, metavar="OUT")
    parser.add_argument("--batch", required=True, type=int, metavar="B")
    parser.add_argument("--consumer", required=True, metavar="ADDR")
    parser.add_argument("--payee", required=True, metavar="ADDR")


def _wei(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of wei")
    return int(text)


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(text)


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------- handlers
def _up(args) -> int:
    from sinks.chain import anvil

    chain = anvil.start(args.output, port=args.port, chain_id=args.chain_id)
    print(f"chain {chain.chain_id} runs at {chain.url} (pid {chain.pid}); state in {chain.state_file}")
    return 0


def _down(args) -> int:
    from sinks.chain import anvil

    chain = anvil.stop(args.output)
    print(f"stopped the chain at {chain.url}; state saved in {chain.state_file}" if chain
          else f"no chain was running for {args.output}")
    return 0


def _deploy(args) -> int:
    from sinks.chain.deployment import deploy
    from sinks.chain.keys import resolve_account
    from sinks.chain.rpc import Sender, connect

    rpc_url = args.rpc_url or _running_chain_url(args.output)
    if rpc_url is None:
        raise UsageError("pass --rpc-url URL, or --output OUT of a chain started with `meterroot chain up`")
    w3 = connect(rpc_url)
    sender = Sender(w3, resolve_account(args.private_key, w3.eth.chain_id),
                    confirmations=args.confirmations, timeout=args.timeout)
    deployment = deploy(sender, token=args.token, test_token=args.test_token,
                        challenge_period=args.challenge_period, thaw_period=args.thaw_period,
                        admin=args.admin, committer=args.committer, governance=args.governance,
                        rpc_url=rpc_url)
    deployment.write(args.out)
    print(f"deployed registry {deployment.registry} (token {deployment.token}) on chain "
          f"{deployment.chain_id} at block {deployment.block}; wrote {args.out}")
    return 0


def _commit(args) -> int:
    from sinks.chain.settle import ALREADY_COMMITTED, commit_output

    if args.skip_validation:  # printed: the CLI keeps logging quiet (pipelines.cli)
        print("meterroot chain commit: validation gate skipped by --skip-validation (explicit override)",
              file=sys.stderr)
    registry = _registry(args)
    for outcome in commit_output(args.output, registry, skip_validation=args.skip_validation):
        if outcome.action == ALREADY_COMMITTED:
            print(f"batch {outcome.batch}: already committed with root {outcome.root}; skipped")
        else:
            print(f"batch {outcome.batch}: committed root {outcome.root} in tx {outcome.tx_hash} "
                  f"(gas {outcome.gas_used}); claimable from {_utc(outcome.claimable_at)}")
    return 0


def _deposit(args) -> int:
    registry = _registry(args)
    result = registry.deposit_for(args.consumer, args.amount, mint=args.mint)
    print(f"deposited {args.amount} wei for {args.consumer} in tx {result.tx_hash}; "
          f"deposit now {registry.deposit_of(args.consumer)} wei")
    return 0


def _claim(args) -> int:
    from sinks.chain.settle import claim_from_output

    registry = _registry(args)
    result = claim_from_output(args.output, registry, args.batch, args.consumer, args.payee)
    if result.paid:
        print(f"batch {result.batch}: paid {result.paid} wei to {result.payee} from {result.consumer} "
              f"in tx {result.tx_hash}; collected now {result.collected} wei")
    else:
        print(f"batch {result.batch}: nothing paid to {result.payee}; it has collected {result.collected} "
              f"wei from {result.consumer} (tx {result.tx_hash})")
    if result.shortfall:
        print(f"shortfall: {result.shortfall} wei stays claimable once {result.consumer} deposits more")
    return 0


def _proof(args) -> int:
    from sinks.chain.settle import leaf_proof

    print(json.dumps(leaf_proof(args.output, args.batch, args.consumer, args.payee).to_json(), indent=2))
    return 0


def _status(args) -> int:
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import connect
    from sinks.chain.settle import status

    deployment, rpc_url = _deployment_and_url(args)
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id)
    print(json.dumps(status(Registry(w3, deployment).require_code(), args.consumer), indent=2))
    return 0


# ----------------------------------------------------------------------------------- helpers
def _running_chain_url(out: Path | None) -> str | None:
    if out is None:
        return None
    from sinks.chain import anvil

    chain = anvil.running(out)
    return chain.url if chain else None


def _deployment_and_url(args):
    from sinks.chain.deployment import Deployment

    deployment = Deployment.read(args.deployment)
    rpc_url = args.rpc_url or deployment.rpc_url or _running_chain_url(getattr(args, "output", None))
    if rpc_url is None:
        raise UsageError(f"{args.deployment} names no node: pass --rpc-url URL")
    return deployment, rpc_url


def _registry(args):
    """A Registry that can send, from --deployment, --rpc-url and the key options."""
    from sinks.chain.keys import resolve_account
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import Sender, connect

    deployment, rpc_url = _deployment_and_url(args)
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id)
    sender = Sender(w3, resolve_account(args.private_key, deployment.chain_id),
                    confirmations=args.confirmations, timeout=args.timeout)
    return Registry(w3, deployment, sender).require_code()
