"""Charger passwords (OCPP 1.6 security profiles 1 and 2: HTTP Basic, username = charge point id).

Why hashed: config.toml and the store end up in backups and bug reports; a leaked hash must not let anyone
impersonate a charger. PBKDF2-SHA256 from the standard library, with a per-password salt, encoded as
``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_SCHEME = "pbkdf2_sha256"
_ITERATIONS = 200_000


def hash_password(password: str, iterations: int = _ITERATIONS) -> str:
    """Return a salted hash string for ``password``."""
    if not password:
        raise ValueError("a charger password must not be empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{_SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False (never an exception) for a malformed hash."""
    try:
        scheme, iterations, salt_hex, digest_hex = encoded.split("$")
        if scheme != _SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt_hex), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)
