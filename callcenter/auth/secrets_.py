"""Hashing of the secrets we hold: passwords with argon2id (argon2-cffi), tokens and session ids
with SHA-256 (they are 32 random bytes: nothing to brute-force), and their generation."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_PREFIX = "cc_"
PREFIX_LENGTH = 11                   # "cc_" and 8 characters: enough to tell tokens apart in a list
MIN_PASSWORD, MAX_PASSWORD = 8, 1024

_hasher = PasswordHasher()           # argon2id, the library's RFC 9106 low-memory profile


@functools.cache
def _dummy() -> str:
    """Verified against when the user does not exist, so both answers take the same time (made on
    first use: hashing costs ~0.2 s, which every command would pay at import)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """An API token: ``cc_`` and 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_secret() -> str:
    """A session id or CSRF token."""
    return secrets.token_urlsafe(32)


def csrf_of(session: str) -> str:
    """A session's CSRF token: derived from its id (32 random bytes, only ever in the HttpOnly
    cookie), so GET /api/me can answer it again to a page loaded later; the database keeps only
    its hash, like the session id's."""
    mac = hmac.new(session.encode("utf-8", "surrogatepass"), b"callcenter csrf v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
