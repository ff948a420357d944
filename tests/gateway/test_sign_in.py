"""Sign-in with Ethereum at a real gateway: only a fresh message signed by its own address, for
this gateway's domain and chain, within its time window, opens a session; nothing else does."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from eth_account import Account

from meterroot import signin
from meterroot.sdk import GatewayRefused

pytestmark = pytest.mark.slow


def _nonce(url: str) -> str:
    return httpx.post(url + "/meterroot/nonce").json()["nonce"]


def _message(gateway, account, *, issued_at=None, lifetime=600, **changes) -> signin.SignInMessage:
    message = signin.build(account, domain=f"127.0.0.1:{gateway.port}", uri=gateway.url, chain_id=31337,
                           nonce=_nonce(gateway.url), issued_at=issued_at or datetime.now(timezone.utc),
                           lifetime_seconds=lifetime)
    return dataclasses.replace(message, **changes)


def _sign_in(gateway, text: str, signature: str) -> httpx.Response:
    return httpx.post(gateway.url + "/meterroot/sign-in", json={"message": text, "signature": signature})


def _refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["reason"] == reason, response.text


def test_signed_message_opens_a_session_that_serves(gateway, new_consumer):
    consumer = new_consumer()
    with consumer.sign_in(gateway.url) as session:
        assert int(session.rpc("eth_chainId"), 16) == 31337
        assert session.info["consumer"] == consumer.address


def test_forged_signature_is_refused(gateway):
    victim, forger = Account.create(), Account.create()
    message = _message(gateway, victim)
    _refused(_sign_in(gateway, message.text(), message.sign(forger)), "bad_signature")


def test_edited_message_is_refused(gateway):
    account = Account.create()
    message = _message(gateway, account)
    signature = message.sign(account)
    longer = dataclasses.replace(message, expiration_time=signin.rfc3339(datetime.now(timezone.utc) + timedelta(days=1)))
    _refused(_sign_in(gateway, longer.text(), signature), "bad_signature")


def test_expired_message_is_refused(gateway):
    account = Account.create()
    message = _message(gateway, account, issued_at=datetime.now(timezone.utc) - timedelta(hours=2), lifetime=3600)
    _refused(_sign_in(gateway, message.text(), message.sign(account)), "expired")


def test_replayed_sign_in_is_refused(gateway):
    account = Account.create()
    message = _message(gateway, account)
    signature = message.sign(account)
    assert _sign_in(gateway, message.text(), signature).status_code == 200
    _refused(_sign_in(gateway, message.text(), signature), "unknown_nonce")


def test_nonce_the_gateway_never_issued_is_refused(gateway):
    account = Account.create()
    message = _message(gateway, account, nonce="a1b2c3d4e5f6a7b8")
    _refused(_sign_in(gateway, message.text(), message.sign(account)), "unknown_nonce")


def test_message_for_another_domain_is_refused(gateway):
    account = Account.create()
    message = _message(gateway, account, domain="provider.example:443")
    _refused(_sign_in(gateway, message.text(), message.sign(account)), "wrong_domain")


def test_message_for_another_chain_is_refused(gateway):
    account = Account.create()
    message = _message(gateway, account, chain_id=1)
    _refused(_sign_in(gateway, message.text(), message.sign(account)), "wrong_chain")


def test_text_that_is_not_eip4361_is_refused(gateway):
    account = Account.create()
    _refused(_sign_in(gateway, "let me in", "0x" + "00" * 65), "malformed")


def test_request_without_or_with_unknown_token_is_refused(gateway):
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    _refused(httpx.post(gateway.url + "/", json=call), "no_session")
    _refused(httpx.post(gateway.url + "/", json=call, headers={"Authorization": "Bearer forged"}), "no_session")


def test_sdk_reports_a_refused_sign_in(gateway, new_consumer, monkeypatch):
    consumer = new_consumer(deposit=0)
    monkeypatch.setattr(consumer, "chain_id", 5)  # signs for another chain than the registry's
    with pytest.raises(GatewayRefused) as refused:
        consumer.sign_in(gateway.url)
    assert (refused.value.status, refused.value.reason) == (401, "wrong_chain")
