"""`meterroot chain …`: settlement on chain (SettlementRegistry v2, SPEC §6).

    up | down                         a local anvil for OUT
    deploy                            a registry (and its Counter NFT); the deployment file
    commit                            OUT's batches not yet on chain, in order
    deposit                           tokens for a consumer
    permit submit                     signed spend permits (a file, or those OUT keeps)
    claim                             a leaf, with the best permit known (claimWithPermit if new)
    stake | unstake request|execute   a provider's stake
    dispute open | resolve            bonded disputes of a leaf
    revoke                            a batch in its challenge period (and the later ones);
                                      OUT's ledger rolls back to the batch before
    withdraw request | execute        a consumer's deposit, after the thaw, inside its window
    status                            batches, deposit, withdrawal, stake, permits, disputes
    proof                             a leaf's proof as JSON
    token-ids                         every consumer's Counter NFT id (for batch --token-ids)

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

from pipelines.chain_ops_cli import add_client_options, checked_deployment, register_chain_ops, rpc_url_from, \
    sender_from_args
from pipelines.token_ids_cli import register_token_ids
from settlement.errors import UsageError
from sinks.lock import holds_output_lock

SEPARATE_KEYS_EXEMPT_CHAIN_ID = 31337
"""The local development chain (anvil) is the one chain where one key may hold every role."""


def register(subparsers) -> None:
    chain = subparsers.add_parser(
        "chain", help="commit batches on chain, permits, claims, stakes, disputes (a local anvil or any EVM node)",
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

    _deploy_parser(actions)

    commit = actions.add_parser("commit", help="commit every batch of OUT not yet on chain, in order")
    commit.add_argument("--output", required=True, type=Path, metavar="OUT")
    commit.add_argument("--skip-validation", action="store_true",
                        help="commit without the validation gate (an explicit, logged override)")
    commit.add_argument("--data-uri", default="", metavar="URI",
                        help="where OUT's trees and manifests are published (e.g. a `meterroot serve` URL); emitted")
    _node_options(commit)
    commit.set_defaults(func=holds_output_lock("chain commit")(_commit))

    deposit = actions.add_parser("deposit", help="deposit tokens for a consumer")
    deposit.add_argument("--consumer", required=True, metavar="ADDR")
    deposit.add_argument("--amount", required=True, type=_wei, metavar="WEI")
    deposit.add_argument("--mint", action="store_true", help="mint the amount first (test token only)")
    deposit.add_argument("--output", type=Path, metavar="OUT", help="use the chain `chain up` runs for OUT")
    _node_options(deposit)
    deposit.set_defaults(func=_deposit)

    permit = actions.add_parser("permit", help="spend permits on chain").add_subparsers(
        dest="permit_command", required=True, metavar="ACTION")
    submit = permit.add_parser("submit", help="submit signed permits the registry does not hold yet")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--permit", type=Path, metavar="FILE", help="a permit file (JSONL of signed permits)")
    source.add_argument("--output", type=Path, metavar="OUT", help="the permits OUT keeps (`meterroot permits --ingest`)")
    submit.add_argument("--consumer", metavar="ADDR", help="only this consumer's permits")
    submit.add_argument("--payee", metavar="ADDR", help="only permits for this payee")
    _node_options(submit)
    submit.set_defaults(func=_permit_submit)

    claim = actions.add_parser("claim", help="claim what a consumer owes a payee through a batch, with its permit")
    _leaf_options(claim, output_required=False)
    claim.add_argument("--from-api", metavar="URL",
                       help="fetch the proof from a `meterroot serve` (the batch's dataURI) instead of --output")
    claim.add_argument("--permit", type=Path, metavar="FILE",
                       help="take the permit from this file (default: the highest OUT keeps, else the registry's)")
    _node_options(claim)
    claim.set_defaults(func=_claim)

    stake = actions.add_parser("stake", help="stake tokens for a provider (its payouts need the minimum stake)")
    stake.add_argument("--amount", required=True, type=_wei, metavar="WEI")
    stake.add_argument("--provider", metavar="ADDR", help="stake for this provider (default: the signer)")
    stake.add_argument("--mint", action="store_true", help="mint the amount first (test token only)")
    _node_options(stake)
    stake.set_defaults(func=_stake)

    unstake = actions.add_parser("unstake", help="a provider's unstake: request, then execute after the thaw") \
        .add_subparsers(dest="unstake_command", required=True, metavar="ACTION")
    request = unstake.add_parser("request", help="start the unstake thaw of an amount of the signer's stake")
    request.add_argument("--amount", required=True, type=_wei, metavar="WEI")
    _node_options(request)
    request.set_defaults(func=_unstake_request)
    execute = unstake.add_parser("execute", help="take the thawed stake back")
    _node_options(execute)
    execute.set_defaults(func=_unstake_execute)

    dispute = actions.add_parser("dispute", help="bonded disputes of a (consumer, provider) leaf") \
        .add_subparsers(dest="dispute_command", required=True, metavar="ACTION")
    opening = dispute.add_parser("open", help="bond the dispute bond and freeze a leaf's claims")
    opening.add_argument("--batch", required=True, type=int, metavar="B")
    opening.add_argument("--consumer", required=True, metavar="ADDR")
    opening.add_argument("--provider", required=True, metavar="ADDR")
    opening.add_argument("--evidence", required=True, metavar="TEXT",
                         help="the evidence (or where it is published); its keccak256 goes on chain")
    opening.add_argument("--mint", action="store_true", help="mint the bond first (test token only)")
    _node_options(opening)
    opening.set_defaults(func=_dispute_open)
    resolve = dispute.add_parser("resolve", help="governance: uphold (slash) or reject a dispute")
    resolve.add_argument("--id", required=True, type=int, metavar="N", dest="dispute_id")
    verdict = resolve.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--upheld", action="store_true", help="the provider was wrong: slash its stake")
    verdict.add_argument("--rejected", action="store_true", help="the dispute was wrong: the bond goes to the provider")
    resolve.add_argument("--slash", type=_whole, default=0, metavar="WEI",
                         help="stake to slash when upheld (at most max-slash-bps of it; default 0)")
    _node_options(resolve)
    resolve.set_defaults(func=_dispute_resolve)

    revoke = actions.add_parser("revoke", help="governance: revoke a batch in its challenge period and the later ones")
    revoke.add_argument("--batch", required=True, type=int, metavar="B")
    revoke.add_argument("--reason", required=True, metavar="TEXT", help="why; its keccak256 goes on chain")
    revoke.add_argument("--output", type=Path, metavar="OUT",
                        help="roll OUT's ledger back to batch B-1 (the revoked batches are kept in OUT/revoked/)")
    _node_options(revoke)
    revoke.set_defaults(func=holds_output_lock("chain revoke")(_revoke))  # it rolls OUT's ledger back

    withdraw = actions.add_parser("withdraw", help="a consumer's withdrawal: request, then execute in its window") \
        .add_subparsers(dest="withdraw_command", required=True, metavar="ACTION")
    ask = withdraw.add_parser("request", help="start the thaw of an amount of the signer's deposit")
    ask.add_argument("--amount", required=True, type=_wei, metavar="WEI")
    _node_options(ask)
    ask.set_defaults(func=_withdraw_request)
    take = withdraw.add_parser("execute", help="withdraw once thawed, before the window lapses")
    _node_options(take)
    take.set_defaults(func=_withdraw_execute)

    proof = actions.add_parser("proof", help="print a leaf's value, hash, proof and root as JSON")
    _leaf_options(proof)
    proof.set_defaults(func=_proof)

    status = actions.add_parser("status", help="batches; a consumer's deposit, withdrawal, permits; "
                                               "a provider's stake; disputes (read from the chain)")
    status.add_argument("--consumer", metavar="ADDR")
    status.add_argument("--provider", metavar="ADDR")
    status.add_argument("--output", type=Path, metavar="OUT", help="use the chain `chain up` runs for OUT")
    _node_options(status, sends=False)
    status.set_defaults(func=_status)
    register_chain_ops(actions)  # key new|import|address, watch
    register_token_ids(actions)  # the consumer -> Counter NFT id mapping for --token-ids


def _deploy_parser(actions) -> None:
    deploy = actions.add_parser("deploy", help="deploy a SettlementRegistry; write the deployment file",
                                description="Deploy a SettlementRegistry v2. Admin, committer and governance "
                                            "must be three different keys on every chain but 31337.")
    token = deploy.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", metavar="ADDR", help="the ERC-20 deposits and stakes are made in")
    token.add_argument("--test-token", action="store_true",
                       help="deploy a freely mintable TestToken too (development chains only)")
    for role, what in (("admin", "grants and revokes roles (two-step transfer)"),
                       ("committer", "commits batch roots"),
                       ("governance", "revokes batches, resolves disputes")):
        deploy.add_argument(f"--{role}", metavar="ADDR", help=f"{role}: {what} (default: the deployer)")
    deploy.add_argument("--treasury", metavar="ADDR", help="the protocol treasury, as in the tariff "
                                                           "(default 0x…fEE5, the SPEC's example)")
    periods = (("challenge-period", "seconds a batch can be revoked or disputed before it is claimable", "86400"),
               ("max-batch-delay", "seconds the committer promises to take at most to commit usage", "86400"),
               ("thaw-period", "seconds from a withdrawal request to its window; > challenge + max batch delay",
                "604800"),
               ("withdrawal-window", "seconds a thawed withdrawal can be executed before it lapses", "172800"),
               ("dispute-period", "seconds after a batch's challenge period to resolve its disputes", "259200"),
               ("unstake-thaw", "seconds from an unstake request to the unstake; > challenge + dispute period",
                "604800"),
               ("admin-delay", "seconds of the two-step admin transfer", "172800"))
    for name, what, default in periods:
        deploy.add_argument(f"--{name}", type=_seconds, metavar="S", help=f"{what} (default {default})")
    deploy.add_argument("--min-provider-stake", type=_whole, metavar="WEI",
                        help="stake a provider payee must hold to be paid (default 10^18)")
    deploy.add_argument("--dispute-bond", type=_wei, metavar="WEI", help="bond to open a dispute (default 10^17)")
    deploy.add_argument("--max-slash-bps", type=_whole, metavar="BPS",
                        help="most of a stake one upheld dispute slashes, in basis points (default 5000)")
    deploy.add_argument("--out", required=True, type=Path, metavar="FILE", help="deployment file to write")
    deploy.add_argument("--output", type=Path, metavar="OUT", help="use the chain `chain up` runs for OUT")
    _node_options(deploy, deployment=False)
    deploy.set_defaults(func=_deploy)


def _node_options(parser, *, deployment: bool = True, sends: bool = True) -> None:
    if deployment:
        parser.add_argument("--deployment", required=True, type=Path, metavar="FILE",
                            help="deployment file written by `chain deploy`")
    default = "the deployment's node" if deployment else "the chain `chain up` runs for --output"
    parser.add_argument("--rpc-url", metavar="URL", help=f"JSON-RPC endpoint (default: {default})")
    if sends:
        parser.add_argument("--private-key", metavar="HEX",
                            help="signing key, local chain 31337 only (elsewhere --keystore FILE)")
        parser.add_argument("--confirmations", type=int, default=1, metavar="N",
                            help="blocks to wait for after inclusion (default 1)")
        parser.add_argument("--timeout", type=float, default=120, metavar="S",
                            help="seconds to wait for a transaction (default 120)")
    add_client_options(parser, sends=sends)


def _leaf_options(parser, output_required: bool = True) -> None:
    parser.add_argument("--output", required=output_required, type=Path, metavar="OUT")
    parser.add_argument("--batch", required=True, type=int, metavar="B")
    parser.add_argument("--consumer", required=True, metavar="ADDR")
    parser.add_argument("--payee", required=True, metavar="ADDR")


def _wei(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of wei")
    return int(text)


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(text)


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_separate_roles(chain_id: int, admin: str, committer: str, governance: str) -> None:
    """SPEC §6: admin, committer and governance are separate keys on every chain but the local
    development chain; a key holding two of them is refused before anything is sent."""
    if chain_id == SEPARATE_KEYS_EXEMPT_CHAIN_ID:
        return
    roles = {"admin": admin, "committer": committer, "governance": governance}
    shared = [(a, b) for i, a in enumerate(roles) for b in list(roles)[i + 1:] if roles[a].lower() == roles[b].lower()]
    if shared:
        names = ", ".join(f"--{a} and --{b}" for a, b in shared)
        raise UsageError(
            f"{names} are the same key {roles[shared[0][0]]} on chain {chain_id}: one key holding admin, "
            f"committer and governance could commit a root paying itself and nobody could revoke it; pass "
            f"three different addresses with --admin, --committer and --governance (only the local "
            f"development chain {SEPARATE_KEYS_EXEMPT_CHAIN_ID} may use one key for all)")


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
    from dataclasses import replace

    from sinks.chain.deployment import RegistryConfig, checksum, deploy
    from sinks.chain.rpc import connect

    rpc_url = rpc_url_from(args) or _running_chain_url(args.output)
    if rpc_url is None:
        raise UsageError("pass --rpc-url URL, or --output OUT of a chain started with `meterroot chain up`")
    w3 = connect(rpc_url, rpc_timeout=args.rpc_timeout)
    chain_id = w3.eth.chain_id
    sender = sender_from_args(args, w3, chain_id)
    roles = {role: checksum(getattr(args, role), f"--{role}") if getattr(args, role) else sender.address
             for role in ("admin", "committer", "governance")}
    check_separate_roles(chain_id, **roles)
    given = {field: getattr(args, field) for field in (
        "challenge_period", "max_batch_delay", "thaw_period", "withdrawal_window", "dispute_period",
        "unstake_thaw", "admin_delay", "min_provider_stake", "dispute_bond", "max_slash_bps")}
    if args.treasury:
        given["treasury"] = checksum(args.treasury, "--treasury")
    config = replace(RegistryConfig(), **{k: v for k, v in given.items() if v is not None})
    deployment = deploy(sender, token=args.token, test_token=args.test_token, config=config, rpc_url=rpc_url,
                        **roles)
    deployment.write(args.out)
    print(f"deployed registry {deployment.registry} (token {deployment.token}, Counter NFT "
          f"{deployment.counter_nft}) on chain {deployment.chain_id} at block {deployment.block}; "
          f"admin {deployment.admin}, committer {deployment.committer}, governance {deployment.governance}; "
          f"wrote {args.out}")
    return 0


def _commit(args) -> int:
    from sinks.chain.settle import ALREADY_COMMITTED, commit_output

    if args.skip_validation:  # printed: the CLI keeps logging quiet (pipelines.cli)
        print("meterroot chain commit: validation gate skipped by --skip-validation (explicit override)",
              file=sys.stderr)
    registry = _registry(args)
    for outcome in commit_output(args.output, registry, skip_validation=args.skip_validation,
                                 data_uri=args.data_uri):
        if outcome.action == ALREADY_COMMITTED:
            print(f"batch {outcome.batch}: already committed with root {outcome.root}; skipped")
        else:
            print(f"batch {outcome.batch}: committed root {outcome.root} in tx {outcome.tx_hash} "
                  f"(gas {outcome.gas_used}); claimable from {_utc(outcome.claimable_at)}")
    return 0


def _deposit(args) -> int:
    registry = _registry(args)
    result = registry.deposit_for(args.consumer, args.amount, mint=args.mint)
    again = " already (per the journal; --reference TEXT makes another)" if result.resumed else ""
    print(f"deposited {args.amount} wei for {args.consumer}{again} in tx {result.tx_hash}; "
          f"deposit now {registry.deposit_of(args.consumer)} wei")
    return 0


def _permit_submit(args) -> int:
    from sinks.chain.deployment import checksum
    from sinks.chain.permit_claims import SUBMITTED, highest, permits_from_file, stored_permits, submit_permits

    registry = _registry(args)
    permits = permits_from_file(args.permit) if args.permit else stored_permits(args.output)
    consumer = checksum(args.consumer, "--consumer") if args.consumer else None
    payee = checksum(args.payee, "--payee") if args.payee else None
    chosen = highest(permits, consumer, payee)
    if not chosen:
        raise UsageError(f"no permit matches in {args.permit or Path(args.output) / 'permits'}"
                         + (f" for consumer {consumer}" if consumer else "") + (f" and payee {payee}" if payee else ""))
    for outcome in submit_permits(registry, chosen):
        p = outcome.permit
        if outcome.action == SUBMITTED:
            print(f"permit {p.consumer} -> {p.payee}: submitted {p.cumulative_amount} wei in tx {outcome.tx_hash}")
        else:
            print(f"permit {p.consumer} -> {p.payee}: {p.cumulative_amount} wei already covered "
                  f"(the registry holds {outcome.permitted}); not sent")
    return 0


def _claim(args) -> int:
    from sinks.chain.permit_claims import claim_with_permits

    if (args.output is None) == (args.from_api is None):
        raise UsageError("pass either --output OUT (the proof from OUT's tree) or --from-api URL (from a "
                         "`meterroot serve`), not both and not neither")
    registry = _registry(args)
    proof = None
    if args.from_api:
        from sinks.chain.api_proofs import fetch_leaf_proof
        proof = fetch_leaf_proof(args.from_api, args.batch, args.consumer, args.payee,
                                 chain_id=registry.deployment.chain_id, registry=registry.deployment.registry)
    done = claim_with_permits(args.output, registry, args.batch, args.consumer, args.payee, permit_file=args.permit,
                              proof=proof)
    result = done.claim
    how = (f"with its permit for {done.permit.cumulative_amount} wei (claimWithPermit)" if done.permit
           else f"on the registry's permit for {done.permitted} wei")
    if result.paid:
        print(f"batch {result.batch}: paid {result.paid} wei to {result.payee} from {result.consumer} {how} "
              f"in tx {result.tx_hash}; collected now {result.collected} wei")
    else:
        print(f"batch {result.batch}: nothing paid to {result.payee}; it has collected {result.collected} "
              f"wei from {result.consumer} (tx {result.tx_hash})")
    if result.shortfall:
        fix = {"permit": f"{result.consumer} signs a higher permit",
               "deposit": f"{result.consumer} deposits more",
               "committed totals": "the committed totals allow it"}.get(result.cause, "its cause is lifted")
        print(f"shortfall: {result.shortfall} wei (held by the {result.cause}) stays claimable once {fix}")
    return 0


def _stake(args) -> int:
    registry = _registry(args)
    provider = args.provider or registry.sender.address
    result = registry.stake(args.amount, provider=args.provider, mint=args.mint)
    stake = registry.stakes(provider)
    print(f"staked {args.amount} wei for {provider} in tx {result.tx_hash}; stake now {stake.staked} wei "
          f"({stake.bonded} bonded, minimum {registry.deployment.min_provider_stake})")
    return 0


def _unstake_request(args) -> int:
    registry = _registry(args)
    result = registry.request_unstake(args.amount)
    stake = registry.stakes(registry.sender.address)
    print(f"unstake of {args.amount} wei requested in tx {result.tx_hash}; executable from {_utc(stake.unlock_at)} "
          f"with `meterroot chain unstake execute`")
    return 0


def _unstake_execute(args) -> int:
    registry = _registry(args)
    result, returned = _returning(registry, registry.unstake)
    print(f"unstaked {returned} wei to {registry.sender.address} in tx {result.tx_hash}; stake now "
          f"{registry.stakes(registry.sender.address).staked} wei")
    return 0


def _dispute_open(args) -> int:
    from settlement.keccak import keccak256

    registry = _registry(args)
    evidence_hash = keccak256(args.evidence.encode())
    dispute_id, result = registry.open_dispute(args.batch, args.consumer, args.provider, evidence_hash, mint=args.mint)
    info = registry.dispute(dispute_id)
    print(f"dispute {dispute_id} opened on batch {args.batch} ({info.consumer} -> {info.provider}) with a bond of "
          f"{info.bond} wei in tx {result.tx_hash}; the leaf's claims are frozen until governance resolves it "
          f"(by {_utc(info.resolvable_until)})")
    return 0


def _dispute_resolve(args) -> int:
    registry = _registry(args)
    if args.rejected and args.slash:
        raise UsageError("--slash applies to an upheld dispute only; a rejected one sends the bond to the provider")
    result = registry.resolve_dispute(args.dispute_id, args.upheld, args.slash)
    info = registry.dispute(args.dispute_id)
    print(f"dispute {args.dispute_id} {info.state} in tx {result.tx_hash}"
          + (f"; slashed {args.slash} wei of {info.provider}'s stake" if args.upheld else
             f"; the bond of {info.bond} wei went to {info.provider}"))
    return 0


def _revoke(args) -> int:
    from sinks.chain.revocation import revoke

    registry = _registry(args)
    done = revoke(registry, args.batch, args.reason, out=args.output)
    if done.tx_hash:
        print(f"revoked batches {args.batch}..{done.last_batch} in tx {done.tx_hash} (reason hash "
              f"0x{done.reason_hash.hex()}); the next commit is batch {args.batch} again")
    else:
        print(f"batch {args.batch} was already revoked on registry {registry.deployment.registry}; not sent")
    rolled = done.rolled_back
    if rolled is not None:
        print(f"{args.output}: ledger rolled back to batch {args.batch - 1}; batches {rolled.batches} kept in "
              f"{rolled.folder} ({rolled.events} events)")
        print(f"rebuild: meterroot batch --input {rolled.events_file} [--input NEW…] --output {args.output} "
              f"--tariff FILE --chain-id {registry.deployment.chain_id} --registry {registry.deployment.registry}; "
              f"then meterroot chain commit --output {args.output} --deployment {args.deployment}")
    elif args.output is not None:
        print(f"{args.output}: has not settled batch {args.batch}; its ledger is unchanged")
    return 0


def _withdraw_request(args) -> int:
    registry = _registry(args)
    result = registry.request_withdrawal(args.amount)
    pending = registry.withdrawal(registry.sender.address)
    print(f"withdrawal of {args.amount} wei requested in tx {result.tx_hash}; executable from "
          f"{_utc(pending.unlock_at)} until {_utc(pending.lapses_at)} with `meterroot chain withdraw execute` "
          f"(claims keep paying meanwhile; after the window it lapses)")
    return 0


def _withdraw_execute(args) -> int:
    registry = _registry(args)
    result, returned = _returning(registry, registry.withdraw)
    print(f"withdrew {returned} wei to {registry.sender.address} in tx {result.tx_hash}; deposit now "
          f"{registry.deposit_of(registry.sender.address)} wei")
    return 0


def _proof(args) -> int:
    from sinks.chain.settle import leaf_proof

    print(json.dumps(leaf_proof(args.output, args.batch, args.consumer, args.payee).to_json(), indent=2))
    return 0


def _status(args) -> int:
    from sinks.chain.chain_status import chain_status
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import connect

    deployment, rpc_url = _deployment_and_url(args)
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id, rpc_timeout=args.rpc_timeout)
    on_chain, differences = checked_deployment(w3, deployment, strict=False)  # the chain's values rule
    registry = Registry(w3, on_chain).require_code()
    report = chain_status(registry, consumer=args.consumer, provider=args.provider)
    report["deployment_file_differences"] = [str(d) for d in differences]
    print(json.dumps(report, indent=2))
    return 0


# ----------------------------------------------------------------------------------- helpers
def _returning(registry, send):
    """`send()`'s receipt and the wei it returned to the sender (its token balance after - before)."""
    before = registry.token_balance(registry.sender.address)
    result = send()
    return result, registry.token_balance(registry.sender.address) - before


def _running_chain_url(out: Path | None) -> str | None:
    if out is None:
        return None
    from sinks.chain import anvil

    chain = anvil.running(out)
    return chain.url if chain else None


def _deployment_and_url(args):
    from sinks.chain.deployment import Deployment

    deployment = Deployment.read(args.deployment)
    rpc_url = rpc_url_from(args, deployment) or _running_chain_url(getattr(args, "output", None))
    if rpc_url is None:
        raise UsageError(f"{args.deployment} names no node: pass --rpc-url URL (or set METERROOT_RPC_URL)")
    return deployment, rpc_url


def _registry(args):
    """A Registry that can send, from --deployment, --rpc-url and the key options."""
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import connect

    deployment, rpc_url = _deployment_and_url(args)
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id, rpc_timeout=args.rpc_timeout)
    on_chain, _ = checked_deployment(w3, deployment, strict=True)  # refuses a file of another contract
    return Registry(w3, on_chain, sender_from_args(args, w3, deployment.chain_id))
