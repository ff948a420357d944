"""`meterroot demo`'s real flow: consumers pay for real JSON-RPC requests, to the wei.

local chain + registry (and its Counter NFT) -> a provider stakes and starts `meterroot gateway`
in front of anvil's own JSON-RPC -> two SDK consumers deposit, sign in (EIP-4361) and make a few
hundred requests, signing spend permits as they go -> the gateway stops, its usage files are
settled by the batch pipeline, validated and reconciled -> the permits the gateway kept are
ingested -> the root is committed -> the provider's and the treasury's leaves are claimed with
those permits -> what was paid equals what the SDK signed; the Counter NFTs show it."""
from __future__ import annotations

from pathlib import Path

from settlement.errors import InvariantBroken

REQUESTS = (220, 140)
"""Requests of the two demo consumers."""


def _wei(amount: int) -> str:
    return f"{amount:,} wei"


def _use(session, requests: int, registry: str) -> None:
    """A mix of what a dapp asks a node: reads of the chain, of an account, of a contract."""
    token_call = {"to": registry, "data": "0xfc0c546a"}  # token()
    for i in range(requests):
        kind = i % 6
        if kind == 0:
            session.rpc("eth_blockNumber")
        elif kind == 1:
            session.rpc("eth_getBalance", [session.consumer.address, "latest"])
        elif kind == 2:
            session.rpc("eth_call", [token_call, "latest"])
        elif kind == 3:
            session.rpc("eth_getBlockByNumber", ["latest", False])
        elif kind == 4:
            session.post("/", json=[{"jsonrpc": "2.0", "id": n, "method": m, "params": []}
                                    for n, m in enumerate(("eth_chainId", "eth_gasPrice"))])
        else:
            session.rpc("web3_clientVersion")  # not in the metering table: the default rule


def run_gateway_demo(out: Path, *, keep_chain: bool) -> int:
    from eth_account import Account

    from expectations.reconcile import reconcile_output
    from expectations.runner import validate_output
    from meterroot.gateway import process
    from meterroot.sdk import Consumer
    from pipelines.batch import settle
    from pipelines.demo_cli import DEFAULT_TARIFF
    from settlement.tariff import load_tariff
    from sinks.chain import anvil
    from sinks.chain.batch_files import CONSUMER, PAYEE, load_tree, read_batch
    from settlement.token_ids import write_token_ids
    from sinks import atomic
    from sinks.chain.counter_tokens import read_counter_tokens
    from sinks.chain.local import connect_registry, deploy_local, start_local_chain, stop_local_chain
    from sinks.chain.permit_claims import claim_with_permits
    from sinks.chain.registry import advance_time
    from sinks.chain.settle import commit_output
    from sinks.permits import ingest

    tariff = load_tariff(str(DEFAULT_TARIFF))
    chain = start_local_chain(out)
    gateway = None
    try:
        deployment = deploy_local(chain.url, treasury=tariff.treasury, deployment_file=out / "chain" / "deployment.json")
        registry = connect_registry(deployment)
        w3 = registry.w3
        print(f"1. local chain {chain.url}: registry {deployment.registry}, test token {deployment.token}, "
              f"Counter NFT {registry.contract.functions.counterNFT().call()}")

        provider = Account.create()
        registry.stake(deployment.min_provider_stake, provider=provider.address, mint=True)
        port = anvil.free_port()
        url = f"http://127.0.0.1:{port}"
        usage_dir = out / "usage"
        options = ["--upstream", chain.url, "--listen", f"127.0.0.1:{port}", "--usage-dir", str(usage_dir),
                   "--registry", deployment.registry, "--rpc-url", chain.url, "--tariff", str(DEFAULT_TARIFF)]
        log_file = out / "gateway.log"
        gateway = process.launch(options, provider.key.hex(), log_file)
        process.wait_healthy(url, gateway, log_file)
        print(f"2. provider {provider.address} staked {_wei(deployment.min_provider_stake)} and serves anvil's "
              f"JSON-RPC through `meterroot gateway` at {url} (log {log_file})")

        consumers = []
        for i, requests in enumerate(REQUESTS):
            account = Account.create()
            w3.provider.make_request("anvil_setBalance", [account.address, hex(10**19)])
            consumer = Consumer(key=account.key.hex(), registry=deployment.registry, rpc_url=chain.url,
                                tariff=tariff, permit_file=out / "consumers" / f"permits-{i + 1}.jsonl")
            consumer.deposit(10**18, mint=True)
            with consumer.sign_in(url, permit_every_requests=50) as session:
                _use(session, requests, deployment.registry)
            consumers.append(consumer)
            owed = consumer.owed()
            print(f"3.{i + 1} consumer {consumer.address} (Counter NFT #{consumer.counter().token_id}) deposited "
                  f"{_wei(10**18)}, signed in and made {session.requests} requests; its own meter owes "
                  + ", ".join(f"{p} {_wei(a)}" for p, a in sorted(owed.items())) + f" (permits in {consumer.permit_file})")

        process.stop(gateway)
        files = sorted(usage_dir.glob("usage-*.jsonl"))
        events = sum(len(p.read_text().splitlines()) for p in files)
        print(f"4. gateway stopped: {events} usage events in {len(files)} file(s) under {usage_dir}")

        token_ids = out / "chain" / "token-ids.json"  # what `meterroot chain token-ids` writes
        tokens = read_counter_tokens(registry)
        atomic.write_bytes(token_ids, write_token_ids(tokens.known, csv_form=False).encode("ascii"))
        result = settle([str(usage_dir / "usage-*.jsonl")], str(DEFAULT_TARIFF), str(out), deployment.chain_id,
                        deployment.registry, ["--runner=FnApiRunner"], token_ids=str(token_ids))
        run = result.run
        print(f"   the events' token ids checked against the {len(tokens.known)} Counter NFTs on chain "
              f"(block {tokens.block}, {token_ids})")
        report, recon = validate_output(out, batches=[result.batch]), reconcile_output(out)
        print(f"5. batch {result.batch}: read {run['read']}, accepted {run['accepted']}, quarantined "
              f"{run['quarantined']}; root {result.manifest['root']}, {result.manifest['leaf_count']} leaves, total "
              f"{_wei(int(result.manifest['total']))}; validation {'passed' if report.success else 'FAILED'}, "
              f"reconcile {'matches to the wei' if recon.success else 'FOUND DIFFERENCES'}")
        if not (report.success and recon.success and run["quarantined"] == 0):
            return 1

        kept = usage_dir / ".permits" / "latest.jsonl"
        counts = ingest(out, [kept]).files[0]
        print(f"6. the permits the gateway kept ({kept}) ingested: accepted {counts.accepted}, "
              f"quarantined {counts.quarantined}")

        for commit in commit_output(out, registry):
            print(f"7. batch {commit.batch} root {commit.action} on chain (tx {commit.tx_hash})")
        now, claimable = registry.block_timestamp(), registry.batch(result.batch).claimable_at
        if now < claimable:
            advance_time(w3, claimable - now)

        leaves = load_tree(read_batch(out, result.batch)).values
        before = {p: registry.token_balance(p) for p in (provider.address, tariff.treasury)}
        paid: dict[tuple[str, str], int] = {}
        for value in leaves:
            done = claim_with_permits(out, registry, result.batch, value[CONSUMER], value[PAYEE])
            paid[(value[CONSUMER], value[PAYEE])] = done.claim.paid
        signed = {(c.address, payee): amount for c in consumers for payee, amount in c.owed().items()}
        if paid != signed:
            raise InvariantBroken(f"claims paid {paid}, the SDK signed permits for {signed}")
        print(f"8. {len(paid)} leaves claimed with the gateway's permits; every claim paid exactly what the "
              f"consumer's SDK signed:")
        for payee, name in ((provider.address, "provider"), (tariff.treasury, "treasury")):
            print(f"     {name} {payee} balance {_wei(before[payee])} -> {_wei(registry.token_balance(payee))}")
        print("9. Counter NFTs (counters computed on chain, tokenURI JSON):")
        for consumer in consumers:
            counter = consumer.counter()
            print(f"     #{counter.token_id} {consumer.address}: wei paid {_wei(counter.wei_paid)}, claims "
                  f"{counter.claims}, last batch {counter.last_batch}; deposit left {_wei(consumer.balance().deposit)}")
        from pipelines.demo_availability import run_availability_scene  # SPEC §14
        if run_availability_scene(out, chain_url=chain.url, deployment=deployment, registry=registry,
                                  tariff_path=DEFAULT_TARIFF, consumer=consumers[0].address) != 0:
            return 1
        print(f"Try: .venv/bin/meterroot query --output {out} --report consumer-bill --consumer {consumers[0].address}")
    finally:
        if gateway is not None:
            process.stop(gateway)
        if not keep_chain:
            stop_local_chain(out)
    return 0
