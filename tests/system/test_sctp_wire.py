"""S13 and MAP over real SCTP, as the wire shows them: ``eir serve`` with both interfaces on SCTP,
the simulated MME and MSC, a capture of loopback read back by tshark.

What the capture must show (:mod:`testkit.sctp_capture`): every Diameter DATA chunk with PPID 46
(RFC 6733 §2.1.1) on stream 0; every M3UA DATA chunk with PPID 3 (RFC 4666 §1.4.7.1), its management
messages (ASPSM, ASPTM) on stream 0 and its DATA messages on a stream other than 0 (§1.4.7), both
ways; one M3UA or Diameter message per SCTP message; and the ABORT chunk of the association the MSC
aborted, after which the EIR cleaned up and a new association worked.

Needs kernel SCTP: ``make test-sctp`` runs it in a VM (this machine's kernel has none).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from netio.sctp import sctp_available
from simulations.mme import SimulatedMme
from simulations.msc import SimulatedMsc
from testkit import sctp_capture
from testkit.eirproc import EirProcess

pytestmark = [
    pytest.mark.system,
    pytest.mark.sctp,
    pytest.mark.skipif(
        sctp_available() is not None,
        reason=f"no kernel SCTP here: {sctp_available()} (`make test-sctp` runs this in a VM that has it)",
    ),
    pytest.mark.peer("tshark", "tshark reads the SCTP capture: PPIDs, streams, ABORT"),
]

WHITE, BLACK = "35809101685355", "35693803564380"
LISTS = f"imei,status\n{WHITE},white\n{BLACK},black\n"


class Capture:
    """``dumpcap`` on loopback, SCTP only, into a pcapng file (bounded: stopped by the test, and
    after 300 s by itself)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.err = path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.err.open("wb") as errf:
            self.proc = subprocess.Popen(
                ["dumpcap", "-q", "-i", "lo", "-f", "sctp", "-a", "duration:300", "-w", str(self.path)],
                stdout=subprocess.DEVNULL,
                stderr=errf,
            )
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            # "Capturing on" comes before the interface is open; the file's header comes after
            if b"Capturing on" in self.err.read_bytes() and self.path.exists() and self.path.stat().st_size:
                print(f"dumpcap capturing after {time.monotonic() - t0:.1f} s")
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dumpcap did not start: {self.err.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.5)  # the last packets reach the ring buffer
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def capture(tmp_path: Path) -> Any:
    cap = Capture(tmp_path / "sctp.pcapng")
    cap.start()
    yield cap
    cap.stop()


@pytest.fixture
def eir(tmp_path: Path) -> Any:
    """One ``eir serve``, both interfaces on SCTP only. Started here rather than by ``eir_factory``:
    under the VM's emulated CPU (TCG) Python takes tens of seconds to start, so the time allowed is
    longer, and the lists are imported at start (no ``eir lists import`` process first)."""
    (tmp_path / "lists.csv").write_text(LISTS)
    proc = EirProcess(
        tmp_path / "eir",
        {
            "diameter": {"transports": ["sctp"]},
            "m3ua": {"transports": ["sctp"]},
            "policy": {"clone": {"enabled": False}},
            "lists": {"import_on_start": [str(tmp_path / "lists.csv")]},
        },
    )
    t0 = time.monotonic()
    proc.start(timeout=240)
    print(f"eir serve ready after {time.monotonic() - t0:.1f} s")
    yield proc
    proc.stop()


async def test_s13_and_map_over_sctp_on_the_wire(eir: Any, capture: Capture) -> None:
    (dh, dp, dt), (mh, mp, mt) = eir.ready["diameter"][0], eir.ready["m3ua"][0]
    assert (dt, mt) == ("sctp", "sctp")

    # S13: the simulated MME; its pipelined load puts several ECRs in one write
    mme = await SimulatedMme.connect(dh, dp, sctp=True)
    try:
        assert (await mme.check(WHITE)).verdict == "white"
        assert (await mme.load(BLACK, count=40, window=8)).verdicts == {"black": 40}
    finally:
        await mme.close()

    # MAP: the simulated MSC, an ABORT, the EIR cleans up, a new association
    msc = await SimulatedMsc.connect(mh, mp, sctp=True)
    assert (await msc.check(WHITE, version=3)).verdict == "white"
    assert (await msc.check(BLACK, version=2)).verdict == "black"
    assert msc._p.transport is not None
    msc._p.transport.abort()
    await asyncio.wait_for(msc._p.closed.wait(), 5)
    gone = await asyncio.to_thread(eir.wait_for_log, "m3ua_disconnected", 30)
    assert gone["transport"] == "sctp"
    assert 'eir_peers{interface="map"} 0.0' in eir.metrics_text()
    msc = await SimulatedMsc.connect(mh, mp, sctp=True)
    try:
        assert (await msc.check(BLACK, version=3)).verdict == "black"
        assert 'eir_peers{interface="map"} 1.0' in eir.metrics_text()
        assert not msc._p.errors
    finally:
        await msc.close()
    assert await asyncio.to_thread(eir.stop) == 0
    errors = [e for e in eir.log_events() if e.get("event") in ("m3ua_error_sent", "m3ua_internal_error")]
    assert not errors, errors
    capture.stop()  # (the fixture's stop at the end is then a no-op)

    # ECR and ECA of 1 + 40 checks; Begin and End of 3 checkIMEIs
    expect = {"ecrs": 2 * (1 + 40), "m3ua_data": 2 * 3}
    # The capture, read by tshark here, or (make test-sctp) left for the host's tshark, which is
    # much faster than one under the VM's emulated CPU
    if out := os.environ.get("EIR_TEST_SCTP_CAPTURE_DIR"):
        shutil.copy(capture.path, Path(out) / "sctp.pcapng")
        (Path(out) / "ports.json").write_text(json.dumps({"diameter": dp, "m3ua": mp, **expect}))
        print(f"capture left in {out} for the host's tshark (testkit.sctp_capture)")
    else:
        print(sctp_capture.check(capture.path, dp, mp, **expect))
