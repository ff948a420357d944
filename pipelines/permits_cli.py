"""`meterroot permits`: what each consumer consented to pay, against what it owes.

    meterroot permits --output OUT [--ingest FILE …] [--rpc-url URL] [--consumer ADDR] [--json]

--ingest verifies every line of the permit files (EIP-712 SpendPermits, see sinks/permit_files.py)
against OUT's chain id and registry and keeps the valid ones in OUT/permits/; refused lines are
quarantined and named (file:line: reason). --rpc-url lets the chain answer what it alone knows:
ERC-1271 wallet signatures, authorised signers, and the registry's `permitted` amounts.
Exit 1 when a line was refused (the valid ones are kept all the same).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from settlement.errors import ChainError, MeterrootError


def register(subparsers) -> None:
    p = subparsers.add_parser("permits", help="ingest signed spend permits; list what they cover",
                              description=__doc__)
    p.add_argument("--output", required=True, type=Path, metavar="OUT")
    p.add_argument("--ingest", nargs="+", type=Path, default=[], metavar="FILE",
                   help="permit files (JSONL) to verify and keep in OUT/permits/")
    p.add_argument("--rpc-url", metavar="URL",
                   help="a node of the registry's chain: checks ERC-1271 wallets and authorised signers, "
                        "and lists the permits the registry holds")
    p.add_argument("--consumer", metavar="ADDR", help="list only this consumer's payees")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=_with_lock_to_ingest)


def _with_lock_to_ingest(args) -> int:
    """--ingest writes OUT/permits/ (and reads the ledger head it files them under): it holds
    OUT's lock, so two ingests (or an ingest and a revoke) never lose one another's lines; a
    listing only reads and takes none."""
    if not args.ingest:
        return run_permits(args)
    from sinks.lock import holds_output_lock

    return holds_output_lock("permits --ingest")(run_permits)(args)


class PermitsRefused(MeterrootError):
    """Some permit lines were quarantined (exit 1); the valid ones were kept."""


def run_permits(args) -> int:
    from sinks.ledger_store import LedgerStore
    from sinks.permits import coverage, ingest

    chain, on_chain = _chain(args.rpc_url, args.output) if args.rpc_url else (None, None)
    consumer = _address(args.consumer) if args.consumer else None
    report = ingest(args.output, args.ingest, chain) if args.ingest else None
    rows = coverage(args.output, consumer=consumer, on_chain=on_chain)
    if args.json:
        print(json.dumps({"batch": LedgerStore(args.output).head().batch,
                          "pairs": [row.to_json() for row in rows]}, indent=2))
    else:
        _print_table(rows)
    if report is None:
        return 0
    for counts in report.files:
        print(f"{counts.source}: read {counts.read}, accepted {counts.accepted}, duplicates "
              f"{counts.duplicates}, quarantined {counts.quarantined}", file=sys.stderr)
    for row in report.refused:
        print(f"{row['source']}:{row['line']}: {row['reason']}: {row['detail']}", file=sys.stderr)
    if report.refused:
        raise PermitsRefused(
            f"{len(report.refused)} permit line(s) refused and quarantined in "
            f"{Path(args.output) / 'permits' / 'quarantine.jsonl'} (listed above); the "
            f"{report.total('accepted')} valid one(s) are kept with batch {report.batch}")
    return 0


def _print_table(rows) -> None:
    print(f"{'consumer':42}  {'payee':42}  {'owed':>24}  {'permitted':>24}  {'uncovered':>24}")
    for row in rows:
        permitted = str(row.permitted) if row.on_chain is None else f"{max(row.permitted, row.on_chain)}"
        print(f"{row.consumer:42}  {row.payee:42}  {row.owed:>24}  {permitted:>24}  {row.uncovered:>24}")
    owed = sum(row.owed for row in rows)
    covered = sum(row.covered for row in rows)
    full = sum(1 for row in rows if row.uncovered == 0)
    print(f"{len(rows)} pairs, {full} fully covered; owed {owed} wei, covered by permits {covered} wei, "
          f"uncovered {owed - covered} wei")


def _address(text: str) -> str:
    from sinks.chain.deployment import checksum
    return checksum(text, "--consumer")


def _chain(rpc_url: str, out: Path):
    """The signature oracle and the registry's `permitted` view, on OUT's chain and registry."""
    from sinks.chain.permit_check import ChainSignatureOracle, registry_reader
    from sinks.ledger_store import LedgerStore
    from sinks.chain.rpc import connect

    head = LedgerStore(out).head()
    if head is None:
        return None, None  # ingest/coverage refuse it with the message that says what to run
    w3 = connect(rpc_url, expected_chain_id=head.chain_id)
    registry = registry_reader(w3, head.registry)
    if registry is None:
        raise ChainError(f"no contract at registry {head.registry} on chain {head.chain_id} at {rpc_url}; "
                         f"pass the --rpc-url of the node the registry of {out} is deployed on")
    return ChainSignatureOracle(w3, registry), registry.permitted
