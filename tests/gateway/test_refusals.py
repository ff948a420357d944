"""Who the gateway refuses with 402: no available deposit, a pending withdrawal, or usage that
runs ahead of the consumer's permits by more than the credit limit. Refused requests are
neither forwarded nor metered."""
from __future__ import annotations

import time

import pytest

from meterroot.sdk import GatewayRefused

pytestmark = pytest.mark.slow


def _refusal(session, method="eth_blockNumber") -> GatewayRefused:
    with pytest.raises(GatewayRefused) as refused:
        session.rpc(method)
    return refused.value


def test_consumer_without_deposit_is_refused(gateway, new_consumer):
    consumer = new_consumer(deposit=0)
    with consumer.sign_in(gateway.url) as session:
        refusal = _refusal(session)
    assert (refusal.status, refusal.reason) == (402, "no_deposit")
    assert consumer.meter.requests == 0
    assert not any(consumer.address in line for line in gateway.usage_lines())


def test_consumer_with_pending_withdrawal_is_refused_within_a_poll(gateway, new_consumer):
    consumer = new_consumer(deposit=10**18)
    with consumer.sign_in(gateway.url) as session:
        session.rpc("eth_blockNumber")  # served: the standing is now cached for 60 s
        consumer.request_withdrawal(10**17)
        deadline = time.monotonic() + 10
        while True:  # the WithdrawalRequested watcher polls every second
            try:
                session.rpc("eth_blockNumber")
            except GatewayRefused as refusal:
                assert (refusal.status, refusal.reason) == (402, "pending_withdrawal")
                break
            assert time.monotonic() < deadline, "still served 10 s after the withdrawal request"
            time.sleep(0.2)
    assert consumer.balance().pending_withdrawal == 10**17


def test_permits_lagging_past_the_credit_limit_are_refused(start_gateway, new_consumer):
    # The default tariff: 2e9 wei per request + 5e9 per compute unit; eth_blockNumber is 1 + 10 CU,
    # i.e. 52e9 wei a call, of which the provider's 97.5 % is 50.7e9.
    limit = 500 * 10**9
    gateway = start_gateway(credit_limit_wei=limit)
    consumer = new_consumer()
    served = 0
    with consumer.sign_in(gateway.url, permit_every_requests=10**9, permit_every_seconds=10**9) as session:
        while True:
            try:
                session.rpc("eth_blockNumber")
            except GatewayRefused as refusal:
                assert (refusal.status, refusal.reason) == (402, "credit_limit")
                assert int(refusal.body["owed_wei"]) > limit and refusal.body["permitted_wei"] == "0"
                break
            served += 1
            assert served < 100
        # The gateway refuses once the unpermitted amount exceeds the limit: 10 calls (507e9 wei).
        assert served == 10
        answer = session.send_permits()
        assert answer["permitted_wei"] == answer["owed_wei"] == str(consumer.owed()[gateway.provider.address])
        session.rpc("eth_blockNumber")  # served again
    assert consumer.meter.requests == served + 1


def test_permit_of_another_consumer_is_not_taken(gateway, new_consumer):
    alice, mallory = new_consumer(), new_consumer()
    with alice.sign_in(gateway.url) as session:
        session.rpc("eth_blockNumber")
        alice.sign_permits()
        stolen = [p.to_json() for p in alice.latest_permits()]
    with mallory.sign_in(gateway.url) as session:
        response = session.client.post("/meterroot/permits", json={"permits": stolen})
    assert response.status_code == 400
    assert {r["reason"] for r in response.json()["refused"]} == {"bad_address"}
