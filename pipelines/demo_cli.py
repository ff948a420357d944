"""`meterroot demo`: the main job end to end on embedded defaults, narrated.

generate events -> local chain + registry -> batch -> validate + reconcile -> commit the root ->
the top consumers sign spend permits with their keys, OUT ingests them -> deposits and provider
stakes -> wait out the challenge period -> claim every leaf of theirs with its permit -> balances;
a claim for a consumer who signed nothing is refused."""
from __future__ import annotations

import shutil
from pathlib import Path

from settlement.errors import UsageError
from settlement.synthetic import consumer_key, population, synthetic_events
from sinks.event_files import write_events

DEFAULT_TARIFF = Path(__file__).parent / "defaults" / "tariff.yaml"
MARKER = ".meterroot-demo"


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the whole job on generated events and a local chain",
                              description=__doc__)
    p.add_argument("--output", default="demo-out", metavar="DIR",
                   help="demo output directory (default demo-out; a previous demo there is replaced)")
    p.add_argument("--events", type=int, default=50_000, metavar="N")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--signers", type=int, default=3, metavar="N",
                   help="how many of the top consumers sign permits and are claimed from (default 3)")
    p.add_argument("--keep-chain", action="store_true", help="leave the local chain running")
    p.add_argument("--generated", action="store_true",
                   help="settle generated events instead of the real flow (SDK consumers -> gateway -> anvil)")
    p.set_defaults(func=run_demo)


def _fresh(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).exists():
            raise UsageError(f"--output {out} exists and was not made by `meterroot demo`; "
                             "pass another --output so nothing of yours is replaced")
        from sinks.chain.local import stop_local_chain
        stop_local_chain(out)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by meterroot demo; replaced by the next demo\n")


def _wei(amount: int) -> str:
    return f"{amount:,} wei ({amount / 10**18:.6f} tokens)"


def run_demo(args) -> int:
    from expectations.reconcile import reconcile_output
    from expectations.runner import validate_output
    from pipelines.batch import settle
    from sinks.catalog import build_catalog, connect
    from settlement.tariff import load_tariff
    from sinks.chain.local import deploy_local, settle_with_permits, start_local_chain, stop_local_chain

    if args.signers < 1:
        raise UsageError(f"--signers must be at least 1, got {args.signers}")
    out = Path(args.output)
    _fresh(out)
    if not args.generated:
        from pipelines.demo_gateway import run_gateway_demo
        return run_gateway_demo(out, keep_chain=args.keep_chain)
    events = out / "input" / "usage.jsonl"
    write_events(synthetic_events(args.events, seed=args.seed), events, "jsonl")
    print(f"1. generated {args.events:,} usage events -> {events}")

    chain = start_local_chain(out)
    try:
        deployment = deploy_local(chain.url, treasury=load_tariff(str(DEFAULT_TARIFF)).treasury,
                                  deployment_file=out / "chain" / "deployment.json")
        print(f"2. local chain {chain.url} (chain id {deployment.chain_id}); registry {deployment.registry}, "
              f"test token {deployment.token}")

        result = settle([str(events)], str(DEFAULT_TARIFF), str(out), deployment.chain_id,
                        deployment.registry, ["--runner=FnApiRunner"])
        run = result.run
        print(f"3. batch {result.batch}: read {run['read']:,}, accepted {run['accepted']:,}, "
              f"duplicates {run['duplicates']:,}, quarantined {run['quarantined']:,}")
        print(f"   root {result.manifest['root']}, {result.manifest['leaf_count']:,} leaves, "
              f"total {_wei(int(result.manifest['total']))}")

        report = validate_output(out, batches=[result.batch])
        recon = reconcile_output(out)
        build_catalog(out)
        print(f"4. quality: validation {'passed' if report.success else 'FAILED'} "
              f"(Data Docs: {out / 'quality' / 'index.html'}); reconcile "
              f"{'matches to the wei' if recon.success else 'FOUND DIFFERENCES'} over "
              f"{recon.lines_compared:,} lines; SQL catalog {out / 'catalog.duckdb'}")
        if not (report.success and recon.success):
            return 1

        con = connect(out)
        ranked = con.sql("SELECT consumer, sum(amount_wei)::DECIMAL(38,0) AS owed FROM settlement_lines "
                         "GROUP BY consumer ORDER BY owed DESC, consumer LIMIT ?",
                         params=[args.signers + 1]).fetchall()
        con.close()
        signers, unsigned = ranked[:args.signers], ranked[args.signers:]
        print("5. top consumers by amount owed:")
        for who, owed in signers:
            print(f"     {who}  {_wei(int(owed))}")

        keys = _consumer_keys([who for who, _ in signers])
        settled = settle_with_permits(out, deployment, keys)
        for commit in settled.commits:
            print(f"6. batch {commit.batch} root {commit.action} on chain (tx {commit.tx_hash}, "
                  f"{commit.gas_used:,} gas)")
        counts = settled.ingested.files[0]
        print(f"7. the top consumers signed {counts.read} spend permits with their own keys "
              f"({settled.permit_file}); `meterroot permits` verified them: accepted {counts.accepted}, "
              f"quarantined {counts.quarantined}; kept in {out / 'permits'}")
        print(f"8. deposited {_wei(sum(settled.deposited.values()))} for {len(settled.deposited)} consumers; "
              f"staked {_wei(sum(settled.staked.values()))} for {len(settled.staked)} providers; "
              f"challenge period waited out on the local clock")
        paid = sum(c.claim.paid for c in settled.claims)
        gas = sorted(c.claim.gas_used for c in settled.claims)
        print(f"9. claimed {len(settled.claims)} leaves of batch {settled.batch} with their permits "
              f"(claimWithPermit, {gas[0]:,}-{gas[-1]:,} gas): paid {_wei(paid)}")
        for payee, (before, after) in settled.balances.items():
            print(f"     {payee}  balance {_wei(before)} -> {_wei(after)}")
        if unsigned:
            _refused_without_permit(out, deployment, settled.batch, unsigned[0][0])
        print(f"Try: .venv/bin/meterroot permits --output {out} --consumer {signers[0][0]}")
    finally:
        if not args.keep_chain:
            stop_local_chain(out)
    return 0


def _consumer_keys(addresses: list[str]) -> dict:
    """The keys of generated consumers (settlement.synthetic.consumer_key), by address."""
    consumers = population()[0]
    index = {address: i for i, address in enumerate(consumers)}
    return {address: consumer_key(index[address]) for address in addresses}


def _refused_without_permit(out: Path, deployment, batch: int, consumer: str) -> None:
    """Ask the registry itself to pay a leaf whose consumer signed nothing: it refuses."""
    from settlement.errors import ChainError, InvariantBroken
    from sinks.chain.batch_files import CONSUMER, PAYEE, find_leaf, load_tree, read_batch
    from sinks.chain.local import connect_registry

    local = read_batch(out, batch)
    tree = load_tree(local)
    payee = next(v[PAYEE] for v in tree.values if v[CONSUMER] == consumer)
    proof = find_leaf(local, tree, consumer, payee)
    registry = connect_registry(deployment)
    try:
        registry.claim(batch, consumer, payee, proof.cumulative, proof.proof)
    except ChainError as refused:
        print(f"10. consumer {consumer} signed no permit: the registry refuses to pay its leaf ({refused})")
        return
    raise InvariantBroken(f"the registry paid a leaf of {consumer}, who signed no permit")
