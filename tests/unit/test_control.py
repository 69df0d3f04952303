"""The workers' control channel (eir/control.py) between two ends in one loop: fault rules and a
sightings clear sent by worker 0 are applied by worker 1; a worker's hello gets the rules in force;
a bad datagram is dropped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from eir.control import ControlChannel
from eir.faults import FaultRegistry


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_faults_and_sightings_reach_the_other_worker(tmp_path: Path) -> None:
    async def main() -> None:
        f0, f1 = FaultRegistry(), FaultRegistry()
        forgotten: list[str] = []
        w0 = ControlChannel(tmp_path, 0, faults=f0)
        w0.open()
        f0.add({"id": "early", "kind": "result_code"})
        w1 = ControlChannel(tmp_path, 1, faults=f1, forget_sightings=forgotten.append)
        w1.open()  # hello → worker 0 answers with the rules in force
        await _settle()
        assert [r.id for r in f1.rules()] == ["early"]
        f0.add({"id": "slow", "kind": "delay", "delay_ms": 5, "count": 3})
        w0.faults_changed()
        await _settle()
        assert [(r.id, r.count) for r in f1.rules()] == [("early", None), ("slow", 3)]
        f0.clear()
        w0.faults_changed()
        w0.sightings_cleared("35394206000002")
        await _settle()
        assert f1.rules() == [] and not f1.active
        assert forgotten == ["35394206000002"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:  # garbage: logged, dropped
            for junk in (b"\xff", b"{}", b'{"op":"faults","rules":[{"kind":"nope"}]}', b'{"op":"x"}'):
                s.sendto(junk, str(tmp_path / "control-1.sock"))
        await _settle()
        w0.faults_changed()  # still listening
        w0.close()
        w1.close()
        assert not list(tmp_path.glob("control-*.sock"))

    asyncio.run(main())
