"""`meterroot chain token-ids`: write the consumer -> Counter NFT id mapping a run checks
`token_id` against (`meterroot batch|stream --token-ids FILE`, quarantine reason bad_token_id)."""
from __future__ import annotations

from pathlib import Path

from pipelines.chain_ops_cli import add_client_options, checked_deployment, rpc_url_from
from settlement.errors import UsageError


def register_token_ids(actions) -> None:
    p = actions.add_parser("token-ids", help="write every consumer's Counter NFT id (for --token-ids)",
                           description="Read every Counter NFT the registry minted (ids 1..totalMinted, "
                                       "owners at one block) and write the consumer -> token id mapping "
                                       "as JSON, or CSV when FILE ends in .csv.")
    p.add_argument("--deployment", required=True, type=Path, metavar="FILE",
                   help="deployment file written by `chain deploy`")
    p.add_argument("--rpc-url", metavar="URL", help="JSON-RPC endpoint (default: the deployment's node)")
    p.add_argument("--block", type=_block, metavar="N", help="read at this block (default: the latest)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="mapping file to write")
    add_client_options(p, sends=False)
    p.set_defaults(func=_token_ids)


def _block(text: str) -> int:
    import argparse

    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a block number (a whole number >= 0)")
    return int(text)


def _token_ids(args) -> int:
    from settlement.token_ids import write_token_ids
    from sinks import atomic
    from sinks.chain.counter_tokens import read_counter_tokens
    from sinks.chain.deployment import Deployment
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import connect

    deployment = Deployment.read(args.deployment)
    rpc_url = rpc_url_from(args, deployment)
    if rpc_url is None:
        raise UsageError(f"{args.deployment} names no node: pass --rpc-url URL (or set METERROOT_RPC_URL)")
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id, rpc_timeout=args.rpc_timeout)
    on_chain, _ = checked_deployment(w3, deployment, strict=True)
    if args.block is not None and args.block > w3.eth.block_number:
        raise UsageError(f"--block {args.block} is past the chain's head {w3.eth.block_number}")
    tokens = read_counter_tokens(Registry(w3, on_chain), args.block)
    text = write_token_ids(tokens.known, csv_form=args.out.suffix.lower() == ".csv")
    atomic.write_bytes(args.out, text.encode("ascii"))
    print(f"wrote the Counter NFT ids of {len(tokens.known)} consumers (Counter NFT {tokens.counter_nft}, "
          f"block {tokens.block}) to {args.out}")
    return 0
