"""Admission: who may open an OCPP connection, decided before the WebSocket upgrade.

Rules, in order (each refusal is an HTTP status, a ``connection_refused`` log line and nothing stored):

1. the path is ``<path_prefix>/<chargePointId>`` (else 404);
2. the id follows ``controller.charger_ids`` (else 400); an id already known from the store or config that
   predates the rule is admitted with a ``cp_id_nonconforming`` warning, so upgrading never strands a charger;
3. the client offers subprotocol ``ocpp1.6`` (else 400);
4. with ``require_auth``, or when the charger has a stored password, HTTP Basic credentials checked by the
   ``PasswordGate`` (401 wrong, 429 back-off, 503 too many queued);
5. the id is known, or ``allow_unknown_chargers`` is on *now* (read from the live config at every request),
   in which case it is auto-registered; else 404. An id removed from the config is refused (404) even then.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from controller.charger_ids import MAX_STORED_LENGTH, cp_id_problem
from controller.password_gate import PasswordGate, Verdict
from controller.registry import ChargerRegistry
from evsite.config import Config
from evsite.log import log_event

log = logging.getLogger("controller.admission")

SUBPROTOCOL = "ocpp1.6"


class Admission:
    """``process_request`` for ``websockets.serve``: returns None to admit, or the refusal response."""

    def __init__(
        self,
        config: Callable[[], Config],
        registry: ChargerRegistry,
        gate: PasswordGate,
        register_unknown: Callable[[str], Awaitable[None]],
    ) -> None:
        self._config = config
        self.registry = registry
        self.gate = gate
        self._register_unknown = register_unknown
        self._warned: set[str] = set()

    async def process_request(self, connection: Any, request: Any) -> Any:
        srv = self._config().server
        path = urlsplit(request.path).path
        prefix = srv.path_prefix.rstrip("/") + "/"
        cp_id = unquote(path[len(prefix) :]) if path.startswith(prefix) else ""
        if not cp_id or "/" in cp_id:
            return self._refuse(connection, HTTPStatus.NOT_FOUND, "missing_cp_id", None, f"expected {prefix}<id>")
        known = self.registry.known.get(cp_id)
        problem = cp_id_problem(cp_id, srv.max_cp_id_length)
        if problem is not None:
            if known is None or len(cp_id) > MAX_STORED_LENGTH:
                return self._refuse(
                    connection, HTTPStatus.BAD_REQUEST, "invalid_cp_id", cp_id[:MAX_STORED_LENGTH], problem
                )
            self.warn_nonconforming(cp_id, problem)
        offered = {p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")}
        if SUBPROTOCOL not in offered:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, "no_subprotocol", cp_id, "ocpp1.6 required")
        # A charger with a stored password always authenticates, even before the site turns require_auth on:
        # otherwise anyone could connect under its id without one.
        if srv.require_auth or (known is not None and known.password_hash):
            address = _peer_host(connection)
            verdict = await self.gate.check(
                cp_id, known.password_hash if known else None, request.headers.get("Authorization"), address
            )
            if verdict is not Verdict.OK:
                return self._auth_refusal(connection, verdict, cp_id, address)
        if known is None:
            if cp_id in self.registry.removed:
                return self._refuse(connection, HTTPStatus.NOT_FOUND, "removed_charger", cp_id, "unknown id")
            if not srv.allow_unknown_chargers:
                return self._refuse(connection, HTTPStatus.NOT_FOUND, "unknown_charger", cp_id, "unknown id")
            await self._register_unknown(cp_id)
        connection.evsite_cp_id = cp_id
        return None

    def warn_nonconforming(self, cp_id: str, problem: str) -> None:
        """Once per id: a known charger whose id breaks today's rule keeps working, and the operator is told."""
        if cp_id not in self._warned:
            self._warned.add(cp_id)
            log_event(log, "cp_id_nonconforming", logging.WARNING, cp_id=cp_id, problem=problem)

    def _auth_refusal(self, connection: Any, verdict: Verdict, cp_id: str, address: str) -> Any:
        if verdict is Verdict.BACKOFF:
            resp = self._refuse(connection, HTTPStatus.TOO_MANY_REQUESTS, "auth_backoff", cp_id, "retry later")
            resp.headers["Retry-After"] = str(self.gate.retry_after_s(cp_id, address))
        elif verdict is Verdict.BUSY:
            resp = self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "auth_busy", cp_id, "retry later")
            resp.headers["Retry-After"] = "5"
        else:
            resp = self._refuse(connection, HTTPStatus.UNAUTHORIZED, "auth_failed", cp_id, "bad credentials")
            resp.headers["WWW-Authenticate"] = 'Basic realm="evsite", charset="UTF-8"'
        return resp

    @staticmethod
    def _refuse(connection: Any, status: HTTPStatus, why: str, cp_id: str | None, text: str) -> Any:
        log_event(
            log,
            "connection_refused",
            logging.WARNING,
            cp_id=cp_id,
            status=int(status),
            why=why,
            detail=text,
            address=_peer_host(connection),
        )
        return connection.respond(status, text + "\n")


def _peer_host(connection: Any) -> str:
    """The peer's IP address (the back-off key's second half)."""
    try:
        return str(connection.remote_address[0])
    except (AttributeError, IndexError, TypeError):
        return "?"
