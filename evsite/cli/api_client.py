"""The terminal's side of the HTTP API: where it is (``[api]`` of the config), the token, one request.

Why the standard library: these commands only send a handful of JSON requests; the token comes from
``EVSITE_API_TOKEN`` (or ``--token``), never from a file the commands write.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from evsite.cli.common import add_config_arg, load_config_or_exit

TOKEN_ENV = "EVSITE_API_TOKEN"


class ApiCallError(Exception):
    """A request that did not succeed; ``str()`` is the message for the terminal."""


def add_api_args(parser: argparse.ArgumentParser) -> None:
    add_config_arg(parser)
    parser.add_argument("--url", help="API base URL (default: from [api] host/port of the config)")
    parser.add_argument("--token", help=f"API token (default: ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")


class ApiClient:
    def __init__(self, base_url: str, token: str | None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.ssl_context = ssl_context

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        config = load_config_or_exit(args.config)
        api, srv = config.api, config.server
        tls = srv.tls_cert is not None
        ctx = ssl.create_default_context(cafile=str(srv.tls_cert)) if tls and srv.tls_cert.exists() else None
        host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host
        url = args.url or f"{'https' if tls else 'http'}://{host}:{api.port}"
        return cls(url, args.token or os.environ.get(TOKEN_ENV), ctx)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request; the decoded JSON answer, or ``ApiCallError`` saying what went wrong."""
        if not self.token:
            raise ApiCallError(f"no API token: set {TOKEN_ENV} (see `evsite config new-token`)")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60, context=self.ssl_context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                doc = json.loads(err.read())
                message = doc.get("message", err.reason)
                if doc.get("code"):
                    message += f" (code {doc['code']})"
            except (ValueError, AttributeError):
                message = str(err.reason)
            raise ApiCallError(f"{method} {path}: HTTP {err.code}: {message}") from None
        except (urllib.error.URLError, OSError) as err:
            why = getattr(err, "reason", err)
            raise ApiCallError(f"cannot reach the API at {self.base_url}: {why} (is `evsite serve` running with "
                               "[api] enabled?)") from None  # fmt: skip


def run_or_report(fn: Any, args: argparse.Namespace) -> int:
    """Run a command body; an ``ApiCallError`` becomes one line on stderr and exit 1."""
    try:
        return int(fn(ApiClient.from_args(args), args) or 0)
    except ApiCallError as err:
        print(f"evsite: {err}", file=sys.stderr)
        return 1
