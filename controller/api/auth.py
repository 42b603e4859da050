"""Bearer tokens of the HTTP API: SHA-256 digests from ``[api] tokens``, two roles.

Why digests and not a slow hash: tokens are 32 random bytes (``evsite config new-token``), so a fast hash is as
safe as a slow one and checking a request costs microseconds. Why a header and not a cookie: a browser never
attaches an ``Authorization`` header to a cross-site request by itself, so another site cannot act for an
operator whose dashboard is open.

Roles: ``read`` sees everything but changes nothing; ``operator`` may also send commands and change tags,
chargers and the site limit. A missing or unknown token is 401, a read token on a write endpoint 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evsite.config import ApiTokenConfig

ROLES = ("read", "operator")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's ``name`` (recorded with every write) and its role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def token_digest(token: str) -> str:
    """The hex SHA-256 digest that ``[[api.tokens]] sha256`` holds for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def identify(token: str, tokens: Sequence[ApiTokenConfig]) -> Caller | None:
    """The caller holding ``token``, or None. Compares every digest in constant time (no early exit)."""
    digest = token_digest(token).encode()
    found: Caller | None = None
    for t in tokens:
        if hmac.compare_digest(digest, t.sha256.encode()):
            found = Caller(t.name, t.role)
    return found


TokenSource = Callable[[], Sequence[ApiTokenConfig]]
