"""The operator's side of `meterroot chain`: keys, the client options, `chain watch`.

    meterroot chain key new     --keystore FILE [--password-file FILE] [--kdf scrypt|pbkdf2]
    meterroot chain key import  --keystore FILE [--password-file FILE]   (the key is read from stdin)
    meterroot chain key address --keystore FILE [--password-file FILE]
    meterroot chain watch --output OUT --deployment FILE [--webhook URL] [--poll-seconds S] ...

`add_client_options` gives every sending command --keystore/--password-file, the fee caps,
--replace-after, --reference and --rpc-timeout; `sender_from_args` builds the Sender they
describe, journaled in OUT/chain/journal.jsonl (or beside the deployment file). The RPC URL
may come from METERROOT_RPC_URL instead of argv (an API key in argv is visible in `ps`).
"""
from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import threading
from pathlib import Path

from settlement.errors import UsageError

RPC_URL_ENV = "METERROOT_RPC_URL"


def register_chain_ops(actions) -> None:
    """Add `key` and `watch` to `meterroot chain`'s actions."""
    key = actions.add_parser("key", help="create, import or show an encrypted keystore (never prints a key)")
    verbs = key.add_subparsers(dest="key_command", required=True, metavar="VERB")
    new = verbs.add_parser("new", help="create a new random key in a v3 keystore")
    new.add_argument("--kdf", choices=("scrypt", "pbkdf2"), default="scrypt",
                     help="key derivation (default scrypt, as geth and foundry write)")
    new.set_defaults(func=_key_new)
    imported = verbs.add_parser("import", help="encrypt a private key read from stdin (or a hidden prompt)")
    imported.add_argument("--kdf", choices=("scrypt", "pbkdf2"), default="scrypt")
    imported.set_defaults(func=_key_import)
    address = verbs.add_parser("address", help="print a keystore's address")
    address.set_defaults(func=_key_address)
    for parser in (new, imported):
        parser.add_argument("--kdf-iterations", type=int, metavar="N",
                            help="scrypt n (a power of two, default 262144) or pbkdf2 rounds (default 1000000); "
                                 "fewer is faster to unlock and to crack")
    for parser in (new, imported, address):
        parser.add_argument("--keystore", required=True, type=Path, metavar="FILE")
        parser.add_argument("--password-file", type=Path, metavar="FILE",
                            help="file whose first line is the password (default: ask on the terminal)")

    watch = actions.add_parser("watch", help="operator loop: commit each new batch, alert on withdrawals, "
                                             "disputes and revocations; stops cleanly on SIGTERM")
    watch.add_argument("--output", required=True, type=Path, metavar="OUT")
    watch.add_argument("--webhook", metavar="URL", help="POST each alert as JSON to this URL")
    watch.add_argument("--poll-seconds", type=float, default=12.0, metavar="S",
                       help="seconds between steps (default 12, one mainnet block)")
    watch.add_argument("--data-uri", default="", metavar="URI",
                       help="where OUT's batches are published (e.g. a `meterroot serve` URL), emitted with each commit")
    watch.add_argument("--skip-validation", action="store_true",
                       help="commit without the validation gate (an explicit, logged override)")
    watch.add_argument("--deployment", required=True, type=Path, metavar="FILE",
                       help="deployment file written by `chain deploy`")
    watch.add_argument("--rpc-url", metavar="URL", help=f"JSON-RPC endpoint (default: ${RPC_URL_ENV}, then "
                                                        f"the deployment's node)")
    watch.add_argument("--private-key", metavar="HEX", help="signing key, local chain 31337 only")
    watch.add_argument("--confirmations", type=int, default=1, metavar="N")
    watch.add_argument("--timeout", type=float, default=120, metavar="S")
    add_client_options(watch)
    watch.set_defaults(func=_watch)


def add_client_options(parser, *, sends: bool = True) -> None:
    """The keystore, fee and patience options of a command that talks to a node."""
    parser.add_argument("--rpc-timeout", type=_positive, default=120.0, metavar="S",
                        help="seconds to wait out an unanswering node before giving up (default 120)")
    if not sends:
        return
    parser.add_argument("--keystore", type=Path, metavar="FILE", help="encrypted v3 keystore of the signing key")
    parser.add_argument("--password-file", type=Path, metavar="FILE",
                        help="file whose first line is the keystore password (default: ask on the terminal)")
    parser.add_argument("--max-fee-gwei", metavar="GWEI", help="never pay more than this per gas (base fee + tip)")
    parser.add_argument("--priority-fee-gwei", metavar="GWEI", help="never tip more than this per gas")
    parser.add_argument("--replace-after", type=_positive, default=120.0, metavar="S",
                        help="replace a transaction unmined after S seconds with bumped fees (default 120)")
    parser.add_argument("--reference", default="", metavar="TEXT",
                        help="makes an otherwise identical transaction a new intent (e.g. a second equal deposit)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


# ------------------------------------------------------------------------- building blocks
def rpc_url_from(args, deployment=None) -> str | None:
    return args.rpc_url or os.environ.get(RPC_URL_ENV) or (deployment.rpc_url if deployment else None)


def journal_for(args):
    """OUT/chain/journal.jsonl, else a journal beside the deployment file being read or written."""
    from sinks.chain.journal import Journal

    out = getattr(args, "output", None)
    if out is not None:
        return Journal.for_output(out)
    file = getattr(args, "deployment", None) or getattr(args, "out", None)
    return Journal(Path(file).with_name(Path(file).stem + ".journal.jsonl"))


def sender_from_args(args, w3, chain_id: int):
    """The Sender the command's key, fee, patience and journal options describe."""
    from sinks.chain.fees import FeeCaps
    from sinks.chain.keys import DEV_CHAIN_IDS, resolve_account
    from sinks.chain.rpc import Sender

    caps = FeeCaps.from_gwei(args.max_fee_gwei, args.priority_fee_gwei)
    account = resolve_account(args.private_key, chain_id, keystore=args.keystore,
                              password_file=args.password_file)
    return Sender(w3, account, confirmations=args.confirmations, timeout=args.timeout,
                  poll_interval=0.1 if chain_id in DEV_CHAIN_IDS else 2.0, journal=journal_for(args),
                  fee_caps=caps, replace_after=args.replace_after, scope=args.reference)


def checked_deployment(w3, deployment, *, strict: bool, local_roots: dict | None = None):
    """The deployment as the chain has it; its differences from the file are printed, and with
    `strict` (before sending) those that mean another contract are refused."""
    from sinks.chain.deployment import SEVERE_FIELDS, compare_with_chain
    from sinks.chain.registry import Registry

    Registry(w3, deployment).require_code()
    on_chain, differences = compare_with_chain(w3, deployment, local_roots)
    for difference in differences:
        print(f"meterroot chain: warning: the deployment file differs from the chain: {difference}",
              file=sys.stderr)
    severe = [d for d in differences if d.field in SEVERE_FIELDS]
    if strict and severe:
        raise UsageError("the deployment file does not describe the registry on chain ("
                         + "; ".join(map(str, severe)) + "); use the file `chain deploy` wrote")
    return on_chain, differences


# ------------------------------------------------------------------------------- handlers
def _new_password(args) -> str:
    from sinks.chain.keys import read_password

    if args.password_file is not None or not (sys.stdin and sys.stdin.isatty()):
        return read_password(args.password_file, args.keystore)
    first = getpass.getpass(f"new password for {args.keystore}: ")
    if not first or first != getpass.getpass("repeat it: "):
        raise UsageError("the passwords are empty or differ; nothing written")
    return first


def _key_new(args) -> int:
    from eth_account import Account

    from sinks.chain.keys import write_keystore

    password = _new_password(args)
    address = write_keystore(args.keystore, Account.create().key, password, kdf=args.kdf,
                             iterations=args.kdf_iterations)
    print(f"created keystore {args.keystore} for address {address}")
    return 0


def _key_import(args) -> int:
    from sinks.chain.keys import parse_private_key, write_keystore

    if sys.stdin is not None and sys.stdin.isatty():
        text = getpass.getpass("private key (hidden): ")
    else:
        text = sys.stdin.readline() if sys.stdin is not None else ""
    key = parse_private_key(text, "the private key read from stdin")
    address = write_keystore(args.keystore, key, _new_password(args), kdf=args.kdf, iterations=args.kdf_iterations)
    print(f"imported the key of {address} into keystore {args.keystore}")
    return 0


def _key_address(args) -> int:
    from sinks.chain.keys import keystore_address

    print(keystore_address(args.keystore, args.password_file))
    return 0


def _watch(args) -> int:
    from sinks.chain.deployment import Deployment
    from sinks.chain.registry import Registry
    from sinks.chain.rpc import connect
    from sinks.chain.watch import Watcher

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    deployment = Deployment.read(args.deployment)
    rpc_url = rpc_url_from(args, deployment)
    if rpc_url is None:
        raise UsageError(f"{args.deployment} names no node: pass --rpc-url URL or set {RPC_URL_ENV}")
    w3 = connect(rpc_url, expected_chain_id=deployment.chain_id, rpc_timeout=args.rpc_timeout)
    on_chain, _ = checked_deployment(w3, deployment, strict=True)
    registry = Registry(w3, on_chain, sender_from_args(args, w3, deployment.chain_id))
    watcher = Watcher(args.output, registry, webhook=args.webhook, skip_validation=args.skip_validation,
                      confirmations=args.confirmations, data_uri=args.data_uri,
                      emit=lambda line: print(line, flush=True))
    return watcher.run(stop, args.poll_seconds)
