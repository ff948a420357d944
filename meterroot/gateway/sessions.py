"""Sign-in nonces and session tokens, both bounded in number and in time.

A nonce is issued by `POST /auth/nonce`, lives `nonce_seconds` and is spent by the first sign-in
that names it, valid or not, so a signed message can never be replayed. A successful sign-in
gets a random bearer token valid until the message's Expiration Time; each request presents it
(`Authorization: Bearer …`). Beyond `max_sessions` the oldest sessions are dropped (their
consumers sign in again); nothing here grows without bound.
"""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from meterroot import signin


@dataclass(frozen=True)
class Session:
    """A signed-in consumer."""

    consumer: str
    """EIP-55 address that signed the message."""
    expires_at: float
    """Unix time the message's Expiration Time names."""


class SessionBook:
    def __init__(self, *, domain: str, chain_id: int, max_sessions: int = 100_000,
                 max_nonces: int = 100_000, nonce_seconds: float = 300, max_lifetime_seconds: int = 86_400):
        self.domain = domain
        self.chain_id = chain_id
        self.max_sessions = max_sessions
        self.max_nonces = max_nonces
        self.nonce_seconds = nonce_seconds
        self.max_lifetime_seconds = max_lifetime_seconds
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def issue_nonce(self) -> str:
        now = time.time()
        while self._nonces and (len(self._nonces) >= self.max_nonces or
                                next(iter(self._nonces.values())) < now):
            self._nonces.popitem(last=False)
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = now + self.nonce_seconds
        return nonce

    def sign_in(self, message: str, signature: str) -> tuple[str, Session]:
        """(token, session) for a valid message naming a nonce this gateway issued and nobody spent;
        SignInRefused otherwise."""
        parsed = signin.parse(message)
        expires = self._nonces.pop(parsed.nonce, None)  # spent whatever happens next
        if expires is None or expires < time.time():
            raise signin.SignInRefused("unknown_nonce", "the nonce was not issued by this gateway, has "
                                                        "expired or was already used; ask for a new one")
        checked = signin.verify(message, signature, domain=self.domain, chain_id=self.chain_id,
                                now=datetime.now(timezone.utc), max_lifetime_seconds=self.max_lifetime_seconds)
        session = Session(checked.address,
                          signin.parse_time(checked.expiration_time, "Expiration Time").timestamp())
        token = secrets.token_urlsafe(32)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        self._sessions[token] = session
        return token, session

    def session(self, token: str) -> Session | None:
        """The live session of a bearer token; None when unknown or expired (then forgotten)."""
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires_at <= time.time():
            del self._sessions[token]
            return None
        return session

    def __len__(self) -> int:
        return len(self._sessions)
