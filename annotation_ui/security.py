"""Passwords, session tokens and CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
"""scrypt cost: about 16 MiB and a few tens of milliseconds per login."""


def hash_password(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """(salt, hash) with a fresh random salt per user."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return salt, digest


def check_password(password: str, salt: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, salt)[1], expected)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Sessions are stored by digest, so a copy of the database does not hold live cookies."""
    return hashlib.sha256(token.encode()).hexdigest()


def derived_token(token: str, purpose: str) -> str:
    """A second secret computed from a session token (HMAC keyed by the token).

    The session's CSRF token is derived rather than random so the database needs to keep
    only its digest, yet every page can still show it.
    """
    mac = hmac.new(token.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())
