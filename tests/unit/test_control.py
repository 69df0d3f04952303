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


def test_peers_are_gathered_from_every_worker_with_a_bounded_wait(tmp_path: Path) -> None:
    async def main() -> None:
        w0 = ControlChannel(tmp_path, 0, faults=FaultRegistry())
        w0.open()
        w1 = ControlChannel(tmp_path, 1, faults=FaultRegistry())
        w1.open()
        w1.peers = lambda: {"s13": [{"address": "127.0.0.1:40000", "state": "OPEN"}], "map": [], "n5g": []}
        got = await w0.gather_peers(timeout=2.0)
        assert got.answers == {
            1: {"s13": [{"address": "127.0.0.1:40000", "state": "OPEN"}], "map": [], "n5g": []}
        }
        assert got.missing == set() and got.truncated == set()
        # a worker whose socket is there but which does not answer (busy, stopping): named, not waited for
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as mute:
            mute.bind(str(tmp_path / "control-2.sock"))
            t0 = asyncio.get_running_loop().time()
            got = await w0.gather_peers(timeout=0.3)
            assert 0.25 <= asyncio.get_running_loop().time() - t0 < 2.0
            assert set(got.answers) == {1} and got.missing == {2}
            # what it should have answered, late: dropped (the request is gone)
            mute.sendto(
                b'{"op":"peers_answer","id":2,"worker":2,"peers":{"s13":[],"map":[],"n5g":[]}}',
                str(tmp_path / "control-0.sock"),
            )
            for junk in (b'{"op":"peers_answer","id":2,"worker":2,"peers":[1]}', b'{"op":"peers_answer"}'):
                mute.sendto(junk, str(tmp_path / "control-0.sock"))
            await _settle()
        (tmp_path / "control-2.sock").unlink()
        # more peers than one datagram holds: cut, and said so
        many = [
            {"address": f"10.0.{i // 250}.{i % 250}:3868", "state": "OPEN", "x": "y" * 200}
            for i in range(2000)
        ]
        w1.peers = lambda: {"s13": many, "map": [], "n5g": []}
        got = await w0.gather_peers(timeout=2.0)
        assert got.truncated == {1} and 0 < len(got.answers[1]["s13"]) < 2000
        assert got.answers[1]["s13"] == many[: len(got.answers[1]["s13"])]
        w0.close()
        w1.close()

    asyncio.run(main())
