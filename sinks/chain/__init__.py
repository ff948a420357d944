"""Everything meterroot does on an EVM chain: a local anvil, deployment, commits, deposits, claims.

Modules, from the node up:
    anvil        a local anvil kept under OUT/chain/ (`chain up` / `chain down`)
    keys         which key signs (never printed)
    rpc          connect with retries; send, wait for receipts and confirmations; ChainError
    artifacts    the compiled contracts and the decoding of their custom errors
    deployment   deploy a registry (and a test token); the deployment file
    registry     one deployed SettlementRegistry: views and transactions
    batch_files  OUT/batches/<B>: manifests, trees, proofs
    settle       commit OUT's batches idempotently, claim, status
    permit_check what only the chain can say about a permit (ERC-1271 wallets, authorised signers)
    permit_claims  submit permits, claim with the best permit known (claimWithPermit when new)
    revocation   revoke a batch and roll the output folder back with it
    chain_status `chain status`: deposits, withdrawals, permits, stakes, disputes, roles
    local        the whole round trip on a local chain, with consumers' permits, for `meterroot demo`

The demo's entry points are re-exported here.
"""
from sinks.chain.local import (
    DEMO_CHALLENGE_PERIOD,
    DEMO_THAW_PERIOD,
    LocalSettlement,
    connect_registry,
    deploy_local,
    settle_with_permits,
    start_local_chain,
    stop_local_chain,
)

__all__ = [
    "DEMO_CHALLENGE_PERIOD",
    "DEMO_THAW_PERIOD",
    "LocalSettlement",
    "connect_registry",
    "deploy_local",
    "settle_with_permits",
    "start_local_chain",
    "stop_local_chain",
]
