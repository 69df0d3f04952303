"""The workers' control channel (eir/control.py) between two ends in one loop: fault rules and a
sightings clear sent by worker 0 are applied by worker 1; a worker's hello gets the rules in force;
a bad datagram is dropped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

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


def test_the_rule_set_is_capped_so_it_always_fits_one_datagram() -> None:
    import json

    from eir.control import MAX_MESSAGE
    from eir.faults import RULES_MAX_OCTETS, FaultLimitError

    f = FaultRegistry(max_rules=3)
    for _ in range(3):
        f.add({"kind": "delay", "delay_ms": 1})
    with pytest.raises(FaultLimitError, match="at most 3 fault rules"):
        f.add({"kind": "delay"})
    with pytest.raises(FaultLimitError):
        f.load([{"kind": "delay"}] * 4)
    assert len(f.rules()) == 3  # nothing changed
    # whatever the count, the octets: long peer globs (escaped in JSON) hit the octet cap first
    f = FaultRegistry(max_rules=1000)
    peer = "\x01" * 2000
    with pytest.raises(FaultLimitError, match="octets"):
        for i in range(1000):
            f.add({"kind": "close", "id": f"x{i}", "peer": peer})
    assert 0 < len(f.rules()) < 1000
    msg = json.dumps({"op": "faults", "rules": f.specs()}, separators=(",", ":")).encode()
    assert len(msg) <= MAX_MESSAGE and RULES_MAX_OCTETS + 100 <= MAX_MESSAGE


def test_back_to_back_changes_all_reach_a_worker_whose_queue_fills(tmp_path: Path) -> None:
    """F4: every change sends the whole set; the receiver's queue (max_dgram_qlen, 10) fills when
    they come back to back, and the sends it refuses are retried with the latest set."""

    async def main() -> None:
        f0, f1 = FaultRegistry(), FaultRegistry()
        w0 = ControlChannel(tmp_path, 0, faults=f0)
        w0.open()
        w1 = ControlChannel(tmp_path, 1, faults=f1)
        w1.open()
        await _settle()
        for i in range(100):  # no await in between: worker 1 reads nothing meanwhile
            f0.add({"id": f"r{i}", "kind": "result_code", "imei": "35394206000002"})
            w0.faults_changed()
        assert w0.owed  # its queue filled
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not w0.owed:
                break
        assert not w0.owed
        assert [r.id for r in f1.rules()] == [f"r{i}" for i in range(100)]
        for i in range(100):  # and the removals (a DELETE must not leave the fault active there)
            f0.remove(f"r{i}")
            w0.faults_changed()
        await _settle()
        await _settle()
        assert f1.rules() == [] and not f1.active
        w0.close()
        w1.close()

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


def test_clears_are_owed_in_order_and_given_up_when_nobody_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eir.control as control
    from eir.metrics import CONTROL_UNDELIVERED

    monkeypatch.setattr(control, "RETRY_ROUNDS", 5)

    async def main() -> None:
        f0 = FaultRegistry()
        w0 = ControlChannel(tmp_path, 0, faults=f0)
        w0.open()
        deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # bound, never read: a hung worker
        deaf.bind(str(tmp_path / "control-2.sock"))
        forgotten: list[str] = []
        w1 = ControlChannel(tmp_path, 1, faults=FaultRegistry(), forget_duplicate=forgotten.append)
        w1.open()
        await _settle()
        imeis = [f"3539420600{i:04d}" for i in range(40)]
        for imei in imeis:
            w0.duplicate_cleared(imei)
        before = CONTROL_UNDELIVERED._value.get()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not w0.owed:
                break
        assert forgotten == imeis  # every one, in order
        assert not w0.owed  # the deaf one was given up after RETRY_ROUNDS, counted
        assert CONTROL_UNDELIVERED._value.get() > before
        (tmp_path / "control-2.sock").unlink()  # a worker not there is owed nothing (its hello)
        w0.duplicate_cleared(imeis[0])
        assert not w0.owed
        deaf.close()
        w0.close()
        w1.close()

    asyncio.run(main())


def test_a_duplicate_clear_reaches_the_other_workers_tracker(tmp_path: Path) -> None:
    """F6: under --workers the admin API (worker 0) clears the store and its own tracker; worker 1
    drops the flag at once (not at its next classification) and its pairs not yet written behind
    (else its write-behind would put the pre-clear history back)."""
    from eir.config import DuplicateConfig
    from eir.duplicates import DAY, DuplicateTracker
    from eir.store.memory import MemoryStore

    imei, other = "35394206000002", "35394206000010"

    async def main() -> None:
        store = MemoryStore()
        await store.open()
        cfg = DuplicateConfig(enabled=True, threshold=2, daily_avg=1.0, min_seen_days=1)
        now = 400 * DAY
        t0 = DuplicateTracker(store, cfg, clock=lambda: now)
        t1 = DuplicateTracker(store, cfg, clock=lambda: now)
        for t in (t0, t1):
            t.observe(imei, "001010000000001", now)
            t.observe(imei, "001010000000002", now)
            t.observe(other, "001010000000003", now)
        await t0.classify()
        await t1.load()
        assert t0.is_flagged(imei) and t1.is_flagged(imei)
        t1.observe(imei, "001010000000009", now)  # a pair worker 1 has not written yet
        w0 = ControlChannel(tmp_path, 0, faults=FaultRegistry(), forget_duplicate=t0.forget)
        w0.open()
        w1 = ControlChannel(tmp_path, 1, faults=FaultRegistry(), forget_duplicate=t1.forget)
        w1.open()
        await _settle()
        assert await t0.clear(imei) == (True, 2)  # what the admin route does in worker 0 …
        w0.duplicate_cleared(imei)  # … then it tells the others
        await _settle()
        assert not t1.is_flagged(imei)
        assert await t1.flush() == 1  # only the other IMEI's pair is written: nothing pre-clear
        assert await store.daily_history(imei) == []
        assert [r[0] for r in await store.daily_history(other)] == [400]
        w0.close()
        w1.close()
        await store.close()

    asyncio.run(main())
