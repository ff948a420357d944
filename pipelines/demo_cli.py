"""`meterroot demo`: the main job end to end on embedded defaults, narrated.

generate events -> local chain + registry -> batch -> validate + reconcile -> commit the root ->
deposit for a consumer -> wait out the challenge period -> claim one leaf -> balances."""
from __future__ import annotations

import shutil
from pathlib import Path

from settlement.errors import UsageError

DEFAULT_TARIFF = Path(__file__).parent / "defaults" / "tariff.yaml"
MARKER = ".meterroot-demo"


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the whole job on generated events and a local chain",
                              description=__doc__)
    p.add_argument("--output", default="demo-out", metavar="DIR",
                   help="demo output directory (default demo-out; a previous demo there is replaced)")
    p.add_argument("--events", type=int, default=50_000, metavar="N")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep-chain", action="store_true", help="leave the local chain running")
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
    from sinks.chain.local import deploy_local, settle_one_leaf, start_local_chain, stop_local_chain
    from settlement.synthetic import synthetic_events
    from sinks.event_files import write_events

    out = Path(args.output)
    _fresh(out)
    events = out / "input" / "usage.jsonl"
    write_events(synthetic_events(args.events, seed=args.seed), events, "jsonl")
    print(f"1. generated {args.events:,} usage events -> {events}")

    chain = start_local_chain(out)
    try:
        deployment = deploy_local(chain.url, deployment_file=out / "chain" / "deployment.json")
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
        top = con.sql("SELECT consumer, sum(amount_wei)::DECIMAL(38,0) AS owed FROM settlement_lines "
                      "GROUP BY consumer ORDER BY owed DESC, consumer LIMIT 3").fetchall()
        consumer = top[0][0]
        payee = con.sql("SELECT provider FROM settlement_lines WHERE consumer = ? GROUP BY provider "
                        "ORDER BY sum(provider_wei) DESC, provider LIMIT 1", params=[consumer]).fetchall()[0][0]
        con.close()
        print("5. top consumers by amount owed:")
        for who, owed in top:
            print(f"     {who}  {_wei(int(owed))}")

        settled = settle_one_leaf(out, deployment, consumer=consumer, payee=payee)
        for commit in settled.commits:
            print(f"6. batch {commit.batch} root {commit.action} on chain (tx {commit.tx_hash}, "
                  f"{commit.gas_used:,} gas)")
        print(f"7. deposited {_wei(settled.deposited)} for consumer {settled.consumer}; "
              "challenge period waited out on the local clock")
        print(f"8. claimed batch {settled.batch} leaf for payee {settled.payee} "
              f"(cumulative {_wei(settled.cumulative)}):")
        print(f"     payee balance before {_wei(settled.balance_before)}")
        print(f"     payee balance after  {_wei(settled.balance_after)}")
        print(f"Try: .venv/bin/meterroot query --output {out} --report provider-revenue")
    finally:
        if not args.keep_chain:
            stop_local_chain(out)
    return 0
