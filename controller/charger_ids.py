"""Which charge point ids the central system accepts.

Why a rule of our own: the id arrives as the last segment of the WebSocket URL (percent-decoded), is the HTTP
Basic user name, a primary key in the store and a field of every log line. Test benches registered ids such as
``LF\\ninjected`` (a forged log line), NUL bytes (HTTP 500 on PostgreSQL), emoji and ``..``. OCPP 1.6 calls
the id ``chargeBoxIdentity`` (CiString20 in its SOAP days); the 1.6 security whitepaper allows up to 48.

The accepted set: printable ASCII ``0x21``–``0x7E`` except the URL and header separators ``: / \\ ? # % [ ]``
(``:`` separates the Basic-auth user name from the password), and no ``..`` anywhere (a path traversal in any
tool that files per-charger data). Length: ``[server] max_cp_id_length`` (20 by default, at most 48).
"""

from __future__ import annotations

#: Printable ASCII characters that are not allowed in an id (separators of URLs and Basic auth).
FORBIDDEN = frozenset(":/\\?#%[]")
#: The store's column width: the hard upper bound of ``max_cp_id_length``.
MAX_STORED_LENGTH = 48


def cp_id_problem(cp_id: str, max_length: int) -> str | None:
    """Why ``cp_id`` is not an acceptable new charge point id, or None when it is."""
    if not cp_id:
        return "empty id"
    if len(cp_id) > max_length:
        return f"longer than {max_length} characters"
    for ch in cp_id:
        if not "\x21" <= ch <= "\x7e":
            return f"character {ch!r} is not printable ASCII"
        if ch in FORBIDDEN:
            return f"character {ch!r} is a separator"
    if ".." in cp_id:
        return "contains '..'"
    return None
