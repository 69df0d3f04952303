"""``eir lists observations``: what a running ``eir serve`` saw over S13, MAP and N5g-eir comes
out as DIRBS's operator dump ``date,imei,imsi,msisdn,rat`` with the RAT of the interface (S13 006
E-UTRAN, MAP 002 GERAN, N5g none) and the MSISDN where the request carried one (Huawei checkIMEI
form, ``msisdn-`` GPSI), on each observations store (SQLite, PostgreSQL, Redis; the memory store
lives in one process: tests/unit/test_sightings.py). Every row is checked against the column rules
of DIRBS-Core's OperatorImportSchema_v2 (the importer a national system runs; we have no parser
of our own for operator dumps).

S13 goes through python-diameter's own peer stack and N5g-eir through httpx over HTTP/2 (both
independent of our codecs, and they decode the answers). The MAP Huawei form with an MSISDN is
non-standard (pycrate and tshark call it malformed), so the MSC's argument is checked against the
layout of the captured Huawei trace in tests/unit/sigtran/test_map_checkimei.py instead."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from protocols.imei import luhn_check_digit
from simulations.msc import SimulatedMsc
from testkit.services import postgres_server, postgres_url, redis_server, redis_url
from tests.interop.test_s13_python_diameter import _node_session
from tests.unit.test_formats import DIRBS_OPERATOR_ROW

__all__ = ["postgres_server", "postgres_url", "redis_server", "redis_url"]  # fixtures used here

pytestmark = pytest.mark.system

S13_IMSI = "001010123456789"  # what the python-diameter session sends as User-Name
S13_IMEI, MAP_IMEI, N5G_IMEI, N5G_BAD = "35209900176148", "35693803564380", "35693803564398", "35693803564372"
MAP_IMSI, MAP_MSISDN = "410011234567890", "923001234567"
N5G_IMSI, N5G_MSISDN = "262019876543210", "4915112345678"


@pytest.mark.parametrize("obs", ["sqlite", "postgres", "redis"])
async def test_dump_has_rat_and_msisdn(eir_factory: Any, obs: str, request: pytest.FixtureRequest) -> None:
    store: dict[str, Any] = {}
    if obs != "sqlite":
        store["observations_url"] = request.getfixturevalue(f"{obs}_url")
    eir = eir_factory({"store": store} if store else None, lists=f"imei,status\n{S13_IMEI},white\n")

    _, port = eir.diameter
    answers = await asyncio.wait_for(asyncio.to_thread(_node_session, port, [(S13_IMEI, None)]), 60)
    assert (answers[0].result_code, answers[0].equipment_status) == (2001, 0)

    host, mport = eir.m3ua
    msc = await SimulatedMsc.connect(host, mport)
    try:
        r = await msc.check(MAP_IMEI, version=3, imsi=MAP_IMSI, msisdn=MAP_MSISDN)
        assert r.verdict == "white"
    finally:
        await msc.close()

    async with httpx.AsyncClient(http1=False, http2=True, base_url=eir.n5g_url, timeout=10) as c:
        api = "/n5g-eir-eic/v1/equipment-status"
        pei = f"imei-{N5G_IMEI}{luhn_check_digit(N5G_IMEI)}"
        ok = await c.get(f"{api}?pei={pei}&supi=imsi-{N5G_IMSI}&gpsi=msisdn-{N5G_MSISDN}")
        assert (ok.status_code, ok.json()) == (200, {"status": "WHITELISTED"})
        # no GPSI: the IMSI is seen, with no MSISDN
        ok = await c.get(f"{api}?pei=imei-{N5G_BAD}{luhn_check_digit(N5G_BAD)}&supi=imsi-{N5G_IMSI}")
        assert ok.status_code == 200

    today = datetime.fromtimestamp(time.time(), UTC).strftime("%Y%m%d")
    want = sorted(
        [
            f"{today},{S13_IMEI},{S13_IMSI},,006",
            f"{today},{MAP_IMEI},{MAP_IMSI},{MAP_MSISDN},002",
            f"{today},{N5G_IMEI},{N5G_IMSI},{N5G_MSISDN},",
            f"{today},{N5G_BAD},{N5G_IMSI},,",
        ]
    )
    dump: list[str] = []
    for _ in range(100):  # the sightings are written behind (flush_interval)
        dump = eir.cli("lists", "observations").stdout.splitlines()
        if len(dump) > len(want):
            break
        await asyncio.sleep(0.1)
    assert dump[0] == "date,imei,imsi,msisdn,rat"
    assert sorted(dump[1:]) == want
    assert all(DIRBS_OPERATOR_ROW.match(line) for line in dump[1:])
    # the clone rule counts each of those IMSIs once, MSISDN or not (eir sightings show)
    shown = eir.cli("sightings", "show", MAP_IMEI).stdout
    assert MAP_IMSI in shown and MAP_MSISDN not in shown
