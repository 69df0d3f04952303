"""DELETE /api/v1/sightings/{imei}: an operator clears a clone suspicion through the running EIR's
admin API (checker.clear_sightings) — the next check of the IMEI is white again. httpx is the
client; the S13 checks come from the simulated MME."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from simulations.mme import SimulatedMme
from testkit.eirproc import EirProcess

pytestmark = pytest.mark.system

WRITE, READ = "write-token-for-tests", "read-token-for-tests"
IMEI = "35209900176148"


@pytest.fixture(scope="module")
def eir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EirProcess]:
    p = EirProcess(
        tmp_path_factory.mktemp("admin-clear"),
        {
            "admin": {"tokens": [{"token": READ, "role": "read"}], "token": WRITE},
            "lists": {"import_on_start": []},
            "log": {"level": "info", "format": "json"},
        },
    )
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _client(eir: EirProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=eir.admin_url, headers={"authorization": f"Bearer {token}"}, timeout=10)


async def _checks(eir: EirProcess, imsis: list[str]) -> list[str]:
    mme = await SimulatedMme.connect(*eir.diameter)
    try:
        return [(await mme.check(IMEI, imsi=imsi)).verdict for imsi in imsis]
    finally:
        await mme.close()


def test_an_operator_clears_a_suspicion_through_the_admin_api(eir: EirProcess) -> None:
    got = asyncio.run(_checks(eir, [f"26201000000000{i}" for i in range(3)]))
    assert got == ["white", "white", "grey"]
    with _client(eir, WRITE) as c:
        assert c.get(f"/sightings/{IMEI}").json()["clone_suspected"] is True
        with _client(eir, READ) as ro:
            assert ro.delete(f"/sightings/{IMEI}").status_code == 403
        r = c.delete(f"/sightings/{IMEI}0")  # 15 digits: the spare digit
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["imei"] == IMEI and body["cleared"] >= 0
        seen = c.get(f"/sightings/{IMEI}").json()
        assert (seen["imsis"], seen["clone_suspected"]) == ([], False)
        assert c.delete("/sightings/123").status_code == 400
    assert asyncio.run(_checks(eir, ["262010000000009"])) == ["white"]
    assert eir.wait_for_log("admin_sightings_cleared")["imei"] == IMEI
