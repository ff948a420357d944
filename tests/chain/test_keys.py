"""Keys: v3 keystores (ours, foundry's, geth-style pbkdf2), strict raw keys, nothing secret shown."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from eth_account import Account

from pipelines.cli import main
from settlement.errors import UsageError
from sinks.chain.keys import (
    keystore_address,
    load_keystore,
    parse_private_key,
    resolve_account,
    write_keystore,
)

FIXTURES = Path(__file__).parent / "fixtures" / "keystores"
FOUNDRY_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
GETH_PBKDF2_ADDRESS = "0xd47fef20Ec7c3b37Be2CB041E80A53CA00E858cA"
FAST = {"kdf": "pbkdf2", "iterations": 2048}  # the format is the same; only the test is faster


def run(capsys, *argv):
    code = main(["chain", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_keystore_written_by_eth_account_round_trips(tmp_path):
    account = Account.create()
    file = tmp_path / "key.json"
    (file).write_text(json.dumps(Account.encrypt(account.key, "pw", kdf="scrypt", iterations=2**10)))
    assert load_keystore(file, "pw").address == account.address
    ours = tmp_path / "ours.json"
    assert write_keystore(ours, account.key, "pw2", **FAST) == account.address
    assert Account.from_key(Account.decrypt(json.loads(ours.read_text()), "pw2")).address == account.address
    assert oct(ours.stat().st_mode & 0o777) == "0o600"


def test_a_foundry_cast_scrypt_keystore_decrypts_to_its_address():
    password = (FIXTURES / "foundry-cast-scrypt.password").read_text().strip()
    assert load_keystore(FIXTURES / "foundry-cast-scrypt.json", password).address == FOUNDRY_ADDRESS


def test_a_geth_style_pbkdf2_keystore_decrypts_to_its_address():
    password = (FIXTURES / "geth-pbkdf2.password").read_text().strip()
    assert load_keystore(FIXTURES / "geth-pbkdf2.json", password).address == GETH_PBKDF2_ADDRESS


def test_a_wrong_password_is_refused_without_echoing_it():
    with pytest.raises(UsageError, match="wrong password") as caught:
        load_keystore(FIXTURES / "geth-pbkdf2.json", "not-the-password-x7")
    assert "not-the-password-x7" not in str(caught.value)


def test_a_keystore_is_never_overwritten(tmp_path):
    file = tmp_path / "key.json"
    write_keystore(file, Account.create().key, "pw", **FAST)
    before = file.read_text()
    with pytest.raises(UsageError, match="never overwritten"):
        write_keystore(file, Account.create().key, "pw", **FAST)
    assert file.read_text() == before


@pytest.mark.parametrize("key", ["ab" * 31 + "c", "0x" + "ab" * 31 + "c", "ab" * 33, "0x" + "zz" * 32, "0" * 64,
                                 "f" * 64])
def test_a_key_that_is_not_exactly_32_valid_bytes_is_refused_without_echoing_it(key):
    with pytest.raises(UsageError) as caught:
        parse_private_key(key)
    assert key not in str(caught.value) and key.removeprefix("0x") not in str(caught.value)


def test_a_63_hex_digit_key_is_not_padded_into_another_account(monkeypatch):
    short = "ab" * 31 + "c"
    monkeypatch.setenv("METERROOT_PRIVATE_KEY", short)
    with pytest.raises(UsageError, match="exactly 64 hex digits"):
        resolve_account(None, 31337)


def test_private_key_on_the_command_line_is_refused_outside_the_local_chain():
    key = "0x" + "11" * 32
    with pytest.raises(UsageError) as caught:
        resolve_account(key, 1)
    message = str(caught.value)
    assert "refused on chain 1" in message and "/proc/<pid>/cmdline" in message and "--keystore" in message
    assert key[2:] not in message
    assert resolve_account(key, 31337).address == Account.from_key(key).address


def test_key_new_import_and_address_never_print_the_key(tmp_path, capsys, monkeypatch):
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-pass-phrase\n")
    created = tmp_path / "new.json"
    code, out, err = run(capsys, "key", "new", "--keystore", created, "--password-file", password_file,
                         "--kdf", "pbkdf2", "--kdf-iterations", 4096)
    assert code == 0, err
    address = out.split()[-1]
    assert load_keystore(created, "s3cret-pass-phrase").address == address

    key = Account.create().key
    monkeypatch.setattr("sys.stdin", io.StringIO("0x" + key.hex() + "\n"))
    imported = tmp_path / "imported.json"
    code, out2, err2 = run(capsys, "key", "import", "--keystore", imported, "--password-file", password_file,
                           "--kdf", "pbkdf2", "--kdf-iterations", 4096)
    assert code == 0, err2
    assert Account.from_key(key).address in out2

    code, out3, err3 = run(capsys, "key", "address", "--keystore", FIXTURES / "foundry-cast-scrypt.json",
                           "--password-file", FIXTURES / "foundry-cast-scrypt.password")
    assert code == 0 and out3.strip() == FOUNDRY_ADDRESS
    assert keystore_address(imported) == Account.from_key(key).address  # from its address field
    everything = out + err + out2 + err2 + out3 + err3 + created.read_text() + imported.read_text()
    assert key.hex() not in everything and "s3cret-pass-phrase" not in everything


def test_key_import_refuses_a_63_digit_key_from_stdin(tmp_path, capsys, monkeypatch):
    password_file = tmp_path / "password"
    password_file.write_text("pw\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("ab" * 31 + "c\n"))
    code, out, err = run(capsys, "key", "import", "--keystore", tmp_path / "k.json", "--password-file", password_file)
    assert code == 2 and "not a 32-byte hex key" in err
    assert not (tmp_path / "k.json").exists() and ("ab" * 31 + "c") not in out + err


def test_a_keystore_without_a_password_and_no_terminal_asks_for_a_password_file(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(UsageError, match="--password-file"):
        resolve_account(None, 1, keystore=FIXTURES / "geth-pbkdf2.json")
