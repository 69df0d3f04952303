"""Clone sightings written behind by a real ``eir serve``: a clean stop writes everything queued;
a ``kill -9`` loses at most what arrived since the last batch (``policy.clone.flush_interval``)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from simulations.mme import SimulatedMme

FLUSH = 0.2


def _imsi_rows(eir: Any) -> int:
    path = Path(str(eir.tmp / "data" / "eir.db") + "-obs")
    con = sqlite3.connect(path)
    try:
        return int(
            # kind 3: an IMSI seen over S13 (eir/store/sqlite.py _KIND_CODE)
            con.execute("SELECT count(DISTINCT imei || value) FROM sightings WHERE kind = 3").fetchone()[0]
        )
    finally:
        con.close()


async def _send(eir: Any, first: int, n: int) -> None:
    mme = await SimulatedMme.connect(*eir.diameter)
    try:
        for i in range(first, first + n):
            r = await mme.check(f"{35209900000000 + i}", imsi=f"26201{i:010d}")
            assert r.verdict == "white"
    finally:
        await mme.close()


async def test_a_clean_stop_writes_every_sighting_and_kill_9_only_the_last_batch(eir_factory: Any) -> None:
    eir = eir_factory({"policy": {"clone": {"flush_interval": FLUSH}}})
    await _send(eir, 0, 300)
    # written behind within the flush interval: wait for it (bounded), then kill -9
    deadline = time.monotonic() + 20 * FLUSH + 5
    while _imsi_rows(eir) < 300 and time.monotonic() < deadline:
        time.sleep(FLUSH / 4)
    assert _imsi_rows(eir) == 300, "every sighting older than the flush interval is on disk"
    eir.proc.send_signal(signal.SIGKILL)
    eir.proc.wait(10)
    assert _imsi_rows(eir) == 300, "kill -9 after the batch lost nothing"

    # restarted: the window is read back, and a clean stop right after the checks writes them all
    eir.start()
    await _send(eir, 1000, 200)
    assert eir.stop() == 0
    assert _imsi_rows(eir) == 500
