"""Scale-out: two ``eir serve`` processes sharing PostgreSQL (the lists) and Redis (the clone
observations, ``store.observations_url``), driven over S13 by the simulated MME.

They give the same verdicts, each sees a list import made through the other at once, and a clone
whose two sightings reach different instances is caught (the second instance counts the first
one's sighting, which is only in Redis).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from simulations.mme import SimulatedMme
from testkit.services import (
    postgres_server,
    postgres_url,
    redis_server,
    redis_url,
    start_postgres,
    start_redis,
)

__all__ = ["postgres_server", "postgres_url", "redis_server", "redis_url"]  # fixtures used here

pytestmark = pytest.mark.system

LISTS = "imei,status\n35394206000002,black\n35394207,grey\n"
LISTED, IN_TAC, UNLISTED = "35394206000002", "35394207123456", "35394208000008"
CLONED = "35394209000005"


async def _ask(eir: Any, imeis: list[str], imsi: str | None) -> list[str]:
    mme = await SimulatedMme.connect(*eir.diameter)
    try:
        return [(await mme.check(i, imsi=imsi)).verdict for i in imeis]
    finally:
        await mme.close()


def _verdicts(eir: Any, imeis: list[str], imsi: str | None = None) -> list[str]:
    """One S13 connection from the simulated MME, one ECR per IMEI (the EIR's log on failure)."""
    try:
        return asyncio.run(_ask(eir, imeis, imsi))
    except Exception as e:
        raise AssertionError(f"{type(e).__name__}: {e}\n{eir.log()[-6000:]}") from e


def test_two_instances_share_lists_and_clone_sightings(
    eir_factory: Any, postgres_url: str, redis_url: str
) -> None:
    config = {
        "store": {"url": postgres_url, "observations_url": redis_url},
        "m3ua": {"enabled": False},
        "policy": {
            "unknown_equipment": "white",
            "clone": {
                "enabled": True,
                "max_imsis": 2,
                "window": 600,
                "distinct_origins": False,
                "verdict": "grey",
            },
        },
    }
    a = eir_factory(config, lists=LISTS)  # the lists go to PostgreSQL through a's CLI
    b = eir_factory(config)

    # 1. the same verdicts from both
    imeis = [LISTED, IN_TAC, UNLISTED]
    expected = ["black", "grey", "white"]
    assert _verdicts(a, imeis) == expected
    assert _verdicts(b, imeis) == expected

    # 2. a list import through b's CLI reaches both running instances (LISTEN/NOTIFY drops their
    #    cached answers); bounded wait, as the notification travels asynchronously
    new = b.tmp / "new.csv"
    new.write_text("imei,status\n35394206000002,white\n35394208000008,black\n")
    b.cli("lists", "import", str(new))
    want = ["white", "white", "black"]  # the TAC row is gone with the full import
    for eir in (a, b):
        deadline = time.monotonic() + 10
        got = _verdicts(eir, imeis)
        while got != want and time.monotonic() < deadline:
            time.sleep(0.1)
            got = _verdicts(eir, imeis)
        assert got == want, eir.log()[-3000:]

    # 3. one IMEI, two IMSIs, each sighting at a different instance: a clone. Sightings travel
    #    between instances within flush_interval + share_interval (eir/sightings.py), so b may
    #    answer a check or two before it knows of a's: bounded retries, never "never".
    assert _verdicts(a, [CLONED], imsi="001010000000001") == ["white"]
    for eir, imsi in ((b, "001010000000002"), (a, "001010000000001")):
        deadline = time.monotonic() + 10
        got = _verdicts(eir, [CLONED], imsi=imsi)
        while got != ["grey"] and time.monotonic() < deadline:
            time.sleep(0.2)
            got = _verdicts(eir, [CLONED], imsi=imsi)
        assert got == ["grey"], eir.log()[-3000:]
    b.wait_for_log("clone_suspected", imei=CLONED)
    assert a.stop() == 0  # a clean stop writes what is queued
    assert b.stop() == 0
    # the sightings are in Redis (not only in either process)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # one sorted set per writer (eir/store/redis.py): the two instances' rows of this IMEI
        members = [m for k in r.scan_iter("eir:obs:w:*") for m in r.zrange(k, 0, -1)]
        # kind e: an IMSI seen over S13 (eir/sightings.py)
        assert sorted(m for m in members if m.startswith(f"{CLONED}|e")) == [
            f"{CLONED}|e001010000000001",
            f"{CLONED}|e001010000000002",
        ]
    finally:
        r.close()


def test_store_outages_end_to_end(eir_factory: Any) -> None:
    """Lists in PostgreSQL, sightings in Redis (private servers: they are stopped here). With the
    observations store down the lists still decide and the clone rule counts in memory (the
    write-behind logs its lost batches); with the list store down
    an uncached IMEI gets the configured fallback (S13 5012); both recover by themselves."""
    pg, rd = start_postgres(), start_redis()
    try:
        config = {
            "store": {"url": pg.new_database(), "observations_url": rd.url, "on_unavailable": "failure"},
            "m3ua": {"enabled": False},
            "policy": {"unknown_equipment": "white", "clone": {"enabled": True, "max_imsis": 2}},
        }
        eir = eir_factory(config, lists=LISTS)
        assert _verdicts(eir, [LISTED], imsi="001010000000001") == ["black"]

        rd.stop()
        assert _verdicts(eir, [LISTED, UNLISTED], imsi="001010000000001") == ["black", "white"]
        eir.wait_for_log("sightings_not_written")  # the write-behind lost its store, not a check
        rd.start()

        pg.stop()
        # cached answers may still come from the checker; an IMEI never asked before cannot
        assert _verdicts(eir, [IN_TAC]) == ["error 5012"]
        eir.wait_for_log("store_unavailable")
        pg.start()
        deadline = time.monotonic() + 15
        got = _verdicts(eir, [IN_TAC])
        while got != ["grey"] and time.monotonic() < deadline:
            time.sleep(0.2)
            got = _verdicts(eir, [IN_TAC])
        assert got == ["grey"]
        eir.wait_for_log("store_recovered")
        assert eir.stop() == 0
    finally:
        pg.destroy()
        rd.destroy()
