"""EIP-4361 messages: the text the SDK signs parses back to the same fields, and every rule the
gateway relies on refuses with its own reason."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from eth_account import Account

from meterroot import signin

NOW = datetime(2026, 12, 1, 19, 0, tzinfo=timezone.utc)
ACCOUNT = Account.from_key("0x" + "11" * 32)


def message(**changes) -> signin.SignInMessage:
    built = signin.build(ACCOUNT, domain="127.0.0.1:8600", uri="http://127.0.0.1:8600", chain_id=31337,
                         nonce="a1b2c3d4e5f6", issued_at=NOW, lifetime_seconds=600, statement="Sign in.")
    return dataclasses.replace(built, **changes)


def verify(m: signin.SignInMessage, signature: str | None = None, now=NOW):
    return signin.verify(m.text(), signature or m.sign(ACCOUNT), domain="127.0.0.1:8600", chain_id=31337,
                         now=now, max_lifetime_seconds=3600)


def test_text_follows_eip4361_and_parses_back():
    m = message(resources=("https://example.org/terms",))
    text = m.text()
    assert text.splitlines()[:6] == [
        "127.0.0.1:8600 wants you to sign in with your Ethereum account:", ACCOUNT.address, "",
        "Sign in.", "", "URI: http://127.0.0.1:8600"]
    assert "Issued At: 2026-12-01T19:00:00Z" in text and "Expiration Time: 2026-12-01T19:10:00Z" in text
    assert signin.parse(text) == m


def test_message_without_statement_parses_back():
    m = message(statement=None)
    assert m.text().split("\n")[2:5] == ["", "", "URI: http://127.0.0.1:8600"]
    assert signin.parse(m.text()) == m


def test_valid_message_verifies():
    assert verify(message()).address == ACCOUNT.address


@pytest.mark.parametrize("changes, now, reason", [
    ({"domain": "evil.example"}, NOW, "wrong_domain"),
    ({"chain_id": 1}, NOW, "wrong_chain"),
    ({}, NOW + timedelta(minutes=11), "expired"),
    ({"not_before": "2026-12-01T19:05:00Z"}, NOW, "not_yet_valid"),
    ({"issued_at": "2026-12-01T20:00:00Z", "expiration_time": "2026-12-01T20:05:00Z"}, NOW, "not_yet_valid"),
    ({"expiration_time": "2026-12-03T19:00:00Z"}, NOW, "malformed"),  # beyond the gateway's longest session
    ({"expiration_time": None}, NOW, "malformed"),
])
def test_rules_refuse_with_their_reason(changes, now, reason):
    with pytest.raises(signin.SignInRefused) as refused:
        verify(message(**changes), now=now)
    assert refused.value.reason == reason


def test_signature_of_another_key_or_text_is_refused():
    with pytest.raises(signin.SignInRefused) as refused:
        verify(message(), signature=message().sign(Account.create()))
    assert refused.value.reason == "bad_signature"
    with pytest.raises(signin.SignInRefused) as refused:
        verify(message(statement="Sign in!"), signature=message().sign(ACCOUNT))
    assert refused.value.reason == "bad_signature"


@pytest.mark.parametrize("text", [
    "", "hello", message().text().replace("Version: 1", "Version: 2"),
    message().text().replace(ACCOUNT.address, ACCOUNT.address.lower()),
    message().text().replace("Nonce: a1b2c3d4e5f6", "Nonce: short"),
    message().text().replace("Issued At: 2026-12-01T19:00:00Z", "Issued At: yesterday"),
    message().text() + "\nURI: http://again",
])
def test_text_that_is_not_eip4361_is_malformed(text):
    with pytest.raises(signin.SignInRefused) as refused:
        signin.parse(text)
    assert refused.value.reason == "malformed"
