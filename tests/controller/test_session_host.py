"""The session sees the central system only through ``SessionHost``: the central system implements it, and
``controller/ocpp/session.py`` imports nothing from ``controller.csms`` (not even for type checking)."""

from __future__ import annotations

import ast
from pathlib import Path

from controller.csms import CentralSystem
from controller.ocpp.session import SessionHost

SESSION = Path(__file__).resolve().parents[2] / "controller" / "ocpp" / "session.py"


async def test_the_central_system_is_a_session_host(make_csms) -> None:
    csms: CentralSystem = await make_csms()
    assert isinstance(csms, SessionHost)


def test_session_module_does_not_import_the_central_system() -> None:
    imported = set()
    for node in ast.walk(ast.parse(SESSION.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert "evsite.ocppj.dispatch" in imported, "the session routes through the shared router"
    assert not any(m == "controller.csms" or m.startswith("controller.csms.") for m in imported), imported
