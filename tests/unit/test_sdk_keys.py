"""The SDK's consumer key: a hex key or an encrypted keystore; errors never show the key."""
from __future__ import annotations

import json

import pytest
from eth_account import Account

from meterroot.sdk.consumer import KEYSTORE_PASSWORD_ENV, load_account
from settlement.errors import UsageError


def test_key_or_keystore(tmp_path, monkeypatch):
    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=1000)))
    assert load_account(key=account.key.hex()).address == account.address
    assert load_account(keystore=keystore, password="pw").address == account.address
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "pw")
    assert load_account(keystore=keystore).address == account.address


def test_wrong_password_bad_key_and_both_are_refused_without_the_key(tmp_path):
    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="pbkdf2", iterations=1000)))
    with pytest.raises(UsageError, match="wrong password") as refused:
        load_account(keystore=keystore, password="nope")
    assert account.key.hex()[2:] not in str(refused.value)
    with pytest.raises(UsageError, match="32-byte hex"):
        load_account(key="0x1234")
    with pytest.raises(UsageError, match="either"):
        load_account(key=account.key.hex(), keystore=keystore)
