"""`meterroot chain status`: what the registry holds, read from the chain (never from OUT).

    deployment  the deployment file's claims checked against the chain (deployment_checks)
    batches     committed batches with their finality (sinks.chain.settle.status)
    consumer    deposit, available, pending withdrawal (with its window), permits per payee,
                Counter NFT
    provider    stake, unstaking part, bonded, the minimum to be paid
    disputes    every dispute, or those of the consumer / provider asked about
"""
from __future__ import annotations

from sinks.chain.deployment import checksum
from sinks.chain.registry import COMMITTER_ROLE, GOVERNANCE_ROLE, Registry
from sinks.chain.settle import status as batch_status


def chain_status(registry: Registry, *, consumer: str | None = None, provider: str | None = None) -> dict:
    report = batch_status(registry)
    report["deployment"] = deployment_checks(registry)
    now = report["block_timestamp"]
    if consumer is not None:
        report["consumer"] = consumer_status(registry, checksum(consumer, "--consumer"), now)
    if provider is not None:
        report["provider"] = provider_status(registry, checksum(provider, "--provider"))
    report["disputes"] = disputes(registry, consumer=consumer, provider=provider)
    return report


def deployment_checks(registry: Registry) -> dict:
    """Does the chain hold what the deployment file says? {check: true/false} per claim.

    The place for further comparisons of the deployment file to the chain (constructor
    parameters, code hash, …): add them here, each a named boolean."""
    d = registry.deployment
    checks = {
        "admin": registry.default_admin() == d.admin,
        "committer": registry.has_role(COMMITTER_ROLE, d.committer),
        "governance": registry.has_role(GOVERNANCE_ROLE, d.governance),
    }
    pending_admin, schedule = registry.pending_default_admin()
    return {"matches": all(checks.values()), "checks": checks,
            "pending_admin": pending_admin if int(pending_admin, 16) else None,
            "pending_admin_from": schedule or None}


def consumer_status(registry: Registry, consumer: str, now: int) -> dict:
    pending = registry.withdrawal(consumer)
    if not pending.amount:
        state = None
    elif now < pending.unlock_at:
        state = "thawing"
    elif now <= pending.lapses_at:
        state = "executable"
    else:
        state = "lapsed"
    counters = registry.counters(consumer) if registry.counter_nft is not None else None
    return {
        "address": consumer,
        "deposit": str(registry.deposit_of(consumer)),
        "available": str(registry.available(consumer)),
        "pending_withdrawal": {
            "amount": str(pending.amount), "unlocks_at": pending.unlock_at or None,
            "lapses_at": pending.lapses_at or None, "state": state,
        },
        "permits": permits_of(registry, consumer),
        "counter_nft": None if counters is None else {
            "token_id": counters.token_id, "wei_paid": str(counters.wei_paid), "claims": counters.claims,
            "last_batch": counters.last_batch,
        },
    }


def permits_of(registry: Registry, consumer: str) -> list[dict]:
    """Per payee the consumer ever permitted (PermitSubmitted events): permitted and collected."""
    logs = registry.contract.events.PermitSubmitted().get_logs(
        from_block=registry.deployment.block, argument_filters={"consumer": consumer})
    payees = sorted({entry["args"]["payee"] for entry in logs}, key=str.lower)
    return [{"payee": payee, "permitted": str(registry.permitted(consumer, payee)),
             "collected": str(registry.collected(consumer, payee))} for payee in payees]


def provider_status(registry: Registry, provider: str) -> dict:
    stake = registry.stakes(provider)
    minimum = registry.deployment.min_provider_stake
    return {"address": provider, "staked": str(stake.staked), "unstaking": str(stake.unstaking),
            "bonded": str(stake.bonded), "unstake_unlocks_at": stake.unlock_at or None,
            "min_provider_stake": str(minimum), "can_be_paid": stake.bonded >= minimum}


def disputes(registry: Registry, *, consumer: str | None = None, provider: str | None = None) -> list[dict]:
    found = []
    for dispute_id in range(1, registry.dispute_count() + 1):
        d = registry.dispute(dispute_id)
        if consumer is not None and d.consumer.lower() != consumer.lower():
            continue
        if provider is not None and d.provider.lower() != provider.lower():
            continue
        found.append({"id": d.id, "batch": d.batch, "consumer": d.consumer, "provider": d.provider,
                      "challenger": d.challenger, "bond": str(d.bond), "state": d.state,
                      "resolvable_until": d.resolvable_until})
    return found

