"""Who may connect: path and subprotocol checks, known ids, auto-registration, HTTP Basic (profile 1), TLS (2)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from controller.csms import CentralSystem
from tests.controller.conftest import PASSWORDS
from tests.controller.ocpp_client import basic_auth, charge_point


async def refused_status(url: str, subprotocols: list[str] | None = None, headers: dict | None = None) -> int:
    with pytest.raises(InvalidStatus) as err:
        async with connect(url, subprotocols=subprotocols, additional_headers=headers, open_timeout=5):
            pass
    return err.value.response.status_code


@pytest.mark.parametrize(
    ("path", "subprotocols", "status"),
    [
        ("/ocpp/", ["ocpp1.6"], 404),  # no charge point id
        ("/other/CP1", ["ocpp1.6"], 404),  # wrong prefix
        ("/ocpp/CP1/extra", ["ocpp1.6"], 404),
        ("/ocpp/CP1", None, 400),  # no subprotocol offered
        ("/ocpp/CP1", ["ocpp2.0.1"], 400),  # only another version offered
        ("/ocpp/STRANGER", ["ocpp1.6"], 404),  # unknown id, auto-registration off
        ("/ocpp/" + "X" * 49, ["ocpp1.6"], 400),  # longer than the store keeps
    ],
)
async def test_refused_before_the_upgrade(
    csms: CentralSystem, path: str, subprotocols: list[str] | None, status: int
) -> None:
    url = f"ws://127.0.0.1:{csms.port}{path}"
    assert await refused_status(url, subprotocols) == status
    await csms.flush()
    assert csms.store.charge_point("STRANGER") is None
    assert csms.connected == set()


async def test_subprotocol_is_negotiated_and_percent_encoded_ids_work(make_csms) -> None:
    csms: CentralSystem = await make_csms(allow_unknown_chargers=True)
    async with connect(csms.url + "CP%5FX", subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"
        await ws.send('[2,"1","Heartbeat",{}]')
        await ws.recv()
        assert csms.connected == {"CP_X"}


async def test_unknown_charger_is_auto_registered_only_when_allowed(make_csms) -> None:
    csms: CentralSystem = await make_csms(allow_unknown_chargers=True)
    async with charge_point(csms.url, "NEW-1") as cp:
        await cp.call(call.Heartbeat())
    await csms.flush()
    row = csms.store.charge_point("NEW-1")
    assert row is not None and row.auto_registered
    assert not csms.store.charge_point("CP1").auto_registered
    assert [e.kind for e in csms.store.events(cp_id="NEW-1")][:2] == ["auto_registered", "connected"]


async def test_basic_auth_accepts_the_right_password(make_csms) -> None:
    csms: CentralSystem = await make_csms(require_auth=True)
    for _ in range(2):  # the second time comes from the verified-password cache
        async with charge_point(csms.url, "CP-AUTH", password=PASSWORDS["CP-AUTH"]) as cp:
            assert (await cp.call(call.Heartbeat())).current_time


@pytest.mark.parametrize(
    ("cp_id", "headers"),
    [
        ("CP-AUTH", None),  # no credentials
        ("CP-AUTH", basic_auth("CP-AUTH", "wrong")),
        ("CP-AUTH", basic_auth("CP1", PASSWORDS["CP-AUTH"])),  # username must be the charge point id
        ("CP-AUTH", {"Authorization": "Basic !!notbase64"}),
        ("CP-AUTH", {"Authorization": "Bearer abc"}),
        ("CP1", basic_auth("CP1", "anything")),  # a charger without a stored password
        ("STRANGER", basic_auth("STRANGER", "x")),  # unknown, even with auto-registration on
    ],
)
async def test_bad_credentials_get_401_and_nothing_is_stored(make_csms, cp_id: str, headers: dict | None) -> None:
    csms: CentralSystem = await make_csms(require_auth=True, allow_unknown_chargers=True)
    assert await refused_status(csms.url + cp_id, ["ocpp1.6"], headers) == 401
    await csms.flush()
    assert csms.store.events(cp_id=cp_id) == []
    assert csms.store.charge_point("STRANGER") is None
    row = csms.store.charge_point(cp_id)
    assert row is None or row.last_seen is None


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_security_profile_2_tls_and_basic_auth(make_csms, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    csms: CentralSystem = await make_csms(require_auth=True, tls_cert=str(cert), tls_key=str(key))
    assert csms.url.startswith("wss://")
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with charge_point(csms.url, "CP-AUTH", password=PASSWORDS["CP-AUTH"], ssl_context=client_ctx) as cp:
        res = await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        assert res.status == "Accepted"
    with pytest.raises(InvalidStatus) as err:
        async with connect(csms.url + "CP-AUTH", subprotocols=["ocpp1.6"], ssl=client_ctx):
            pass
    assert err.value.response.status_code == 401
    with pytest.raises((InvalidHandshake, OSError, TimeoutError)):  # plain ws:// to a TLS port: no WebSocket
        async with connect(csms.url.replace("wss://", "ws://") + "CP-AUTH", subprotocols=["ocpp1.6"], open_timeout=2):
            pass


async def test_a_charger_with_a_stored_password_must_authenticate_even_without_require_auth(
    csms: CentralSystem,
) -> None:
    assert not csms.config.server.require_auth
    assert await refused_status(csms.url + "CP-AUTH", ["ocpp1.6"]) == 401
    async with charge_point(csms.url, "CP-AUTH", password=PASSWORDS["CP-AUTH"]) as cp:
        assert await cp.call(call.Heartbeat())
    async with charge_point(csms.url, "CP1") as cp:  # no stored password: profile 0 still works
        assert await cp.call(call.Heartbeat())
