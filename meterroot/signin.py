"""Sign-In with Ethereum (EIP-4361) messages: written by the SDK, checked by the gateway.

The message is EIP-4361's text, signed with EIP-191 `personal_sign` by the consumer's key:

    127.0.0.1:8600 wants you to sign in with your Ethereum account:
    0xAbC…

    Sign in to use the provider's service; usage is billed to this account's deposit.

    URI: http://127.0.0.1:8600
    Version: 1
    Chain ID: 31337
    Nonce: 4f3a9c0d1e2b7a66
    Issued At: 2026-12-01T19:00:00Z
    Expiration Time: 2026-12-01T20:00:00Z

`parse` follows EIP-4361's ABNF for these fields (and Not Before, Request ID, Resources);
`verify` checks the signature recovers to the message's address, then domain, chain id, the
nonce and the time window, each failure a SignInRefused naming its reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address

from settlement.errors import MeterrootError, UsageError

PREAMBLE = " wants you to sign in with your Ethereum account:"
VERSION = "1"
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9]{8,}$")
_FIELDS = (("uri", "URI"), ("version", "Version"), ("chain_id", "Chain ID"), ("nonce", "Nonce"),
           ("issued_at", "Issued At"), ("expiration_time", "Expiration Time"),
           ("not_before", "Not Before"), ("request_id", "Request ID"))
_REQUIRED = ("uri", "version", "chain_id", "nonce", "issued_at")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DOMAIN = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=:@\[\]-]+$")  # RFC 3986 authority characters


class SignInRefused(MeterrootError, PermissionError):
    """A sign-in message or signature that does not open a session."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        """malformed, bad_signature, wrong_domain, wrong_chain, unknown_nonce, expired, not_yet_valid."""


@dataclass(frozen=True)
class SignInMessage:
    """The fields of an EIP-4361 message."""

    domain: str
    """RFC 3986 authority the consumer signs in to (host:port of the gateway)."""
    address: str
    """EIP-55 address of the consumer."""
    uri: str
    """The gateway's URL."""
    chain_id: int
    """EIP-155 chain id the registry is on."""
    nonce: str
    """The gateway's single-use nonce (>= 8 alphanumerics)."""
    issued_at: str
    """RFC 3339 time of signing."""
    expiration_time: str | None = None
    """RFC 3339 time after which the session is void."""
    not_before: str | None = None
    """RFC 3339 time before which the session is not valid."""
    statement: str | None = None
    """Human-readable consent; one line, no line breaks."""
    request_id: str | None = None
    """Optional id the gateway may ask to be echoed."""
    version: str = VERSION
    """EIP-4361 version: 1."""
    resources: tuple[str, ...] = field(default_factory=tuple)
    """URIs the consumer also consents to."""

    def text(self) -> str:
        lines = [f"{self.domain}{PREAMBLE}", self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines += [""]
        for name, label in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{label}: {value}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)

    def sign(self, account) -> str:
        """EIP-191 personal_sign of the message text by `account` (an eth_account LocalAccount)."""
        return "0x" + bytes(account.sign_message(encode_defunct(text=self.text())).signature).hex()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str) -> datetime:
    if not _RFC3339.match(text):
        raise SignInRefused("malformed", f"{what} {text!r} is not an RFC 3339 time with an offset")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse(text: str) -> SignInMessage:
    """The message's fields; SignInRefused("malformed") when it is not EIP-4361 text."""
    if not isinstance(text, str) or len(text) > 8192:
        raise SignInRefused("malformed", "the sign-in message must be EIP-4361 text of at most 8 KiB")
    lines = text.split("\n")
    if len(lines) < 8 or not lines[0].endswith(PREAMBLE):
        raise SignInRefused("malformed", f"the message must start with '<domain>{PREAMBLE}'")
    domain = lines[0][:-len(PREAMBLE)]
    if not domain or not _DOMAIN.match(domain):
        raise SignInRefused("malformed", f"the domain {domain!r} is not an RFC 3986 authority")
    address = lines[1]
    if not is_checksum_address(address):
        raise SignInRefused("malformed", f"the address {address!r} must be EIP-55 checksummed")
    if lines[2] != "":
        raise SignInRefused("malformed", "the address must be followed by an empty line")
    at = 3
    statement = None
    if lines[at] != "":
        statement = lines[at]
        at += 1
        if lines[at] != "":
            raise SignInRefused("malformed", "the statement must be one line followed by an empty line")
    at += 1
    values: dict = {}
    labels = {label: name for name, label in _FIELDS}
    resources: list[str] = []
    order = [label for _, label in _FIELDS]
    last = -1
    while at < len(lines):
        line = lines[at]
        at += 1
        if line == "Resources:":
            resources = [r[2:] for r in lines[at:] if r.startswith("- ")]
            if len(resources) != len(lines) - at:
                raise SignInRefused("malformed", "every line after 'Resources:' must be '- <URI>'")
            break
        label, sep, value = line.partition(": ")
        if not sep or label not in labels or not value:
            raise SignInRefused("malformed", f"unexpected line {line!r} in the sign-in message")
        position = order.index(label)
        if position <= last:
            raise SignInRefused("malformed", f"field {label!r} is out of EIP-4361's order or repeated")
        last = position
        values[labels[label]] = value
    missing = [name for name in _REQUIRED if name not in values]
    if missing:
        raise SignInRefused("malformed", f"the sign-in message lacks {', '.join(missing)}")
    if values["version"] != VERSION:
        raise SignInRefused("malformed", f"EIP-4361 version {values['version']!r}: only 1 exists")
    if not values["chain_id"].isdigit():
        raise SignInRefused("malformed", f"Chain ID {values['chain_id']!r} is not a number")
    if not NONCE_PATTERN.match(values["nonce"]):
        raise SignInRefused("malformed", "the nonce must be at least 8 letters and digits")
    for name in ("issued_at", "expiration_time", "not_before"):
        if name in values:
            parse_time(values[name], name.replace("_", " "))
    values["chain_id"] = int(values["chain_id"])
    return SignInMessage(domain=domain, address=address, statement=statement,
                         resources=tuple(resources), **values)


def verify(text: str, signature: str, *, domain: str, chain_id: int, now: datetime,
           max_lifetime_seconds: int) -> SignInMessage:
    """The message, once its signature, domain, chain id and time window hold. The caller
    checks and spends the nonce (it alone knows which it issued)."""
    message = parse(text)
    try:
        raw = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
        signer = Account.recover_message(encode_defunct(text=text), signature=raw)
    except (ValueError, TypeError, AttributeError):
        raise SignInRefused("bad_signature", "the signature is not a 65-byte hex EIP-191 signature") from None
    if signer != message.address:
        raise SignInRefused("bad_signature", f"the signature is not {message.address}'s")
    if message.domain != domain:
        raise SignInRefused("wrong_domain", f"the message signs in to {message.domain!r}, this gateway is {domain!r}")
    if message.chain_id != chain_id:
        raise SignInRefused("wrong_chain", f"the message is for chain {message.chain_id}, the registry is on "
                                           f"chain {chain_id}")
    issued = parse_time(message.issued_at, "Issued At")
    if (issued - now).total_seconds() > 60:
        raise SignInRefused("not_yet_valid", f"Issued At {message.issued_at} is in the future")
    if message.not_before is not None and parse_time(message.not_before, "Not Before") > now:
        raise SignInRefused("not_yet_valid", f"the session is not valid before {message.not_before}")
    if message.expiration_time is None:
        raise SignInRefused("malformed", "the message needs an Expiration Time (sessions are bounded)")
    expires = parse_time(message.expiration_time, "Expiration Time")
    if expires <= now:
        raise SignInRefused("expired", f"the session expired at {message.expiration_time}")
    if (expires - issued).total_seconds() > max_lifetime_seconds:
        raise SignInRefused("malformed", f"the session may last at most {max_lifetime_seconds} s; sign a "
                                         f"shorter Expiration Time")
    return message


def build(account, *, domain: str, uri: str, chain_id: int, nonce: str, issued_at: datetime,
          lifetime_seconds: int, statement: str | None = None) -> SignInMessage:
    """The message the SDK signs to sign in to a gateway."""
    from datetime import timedelta
    if not NONCE_PATTERN.match(nonce):
        raise UsageError(f"the gateway's nonce {nonce!r} is not EIP-4361 (8+ alphanumerics)")
    return SignInMessage(domain=domain, address=account.address, uri=uri, chain_id=chain_id, nonce=nonce,
                         issued_at=rfc3339(issued_at),
                         expiration_time=rfc3339(issued_at + timedelta(seconds=lifetime_seconds)),
                         statement=statement)
