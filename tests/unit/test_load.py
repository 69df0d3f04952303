"""The load generator's pieces that need no EIR: plans from options, IMEI files, HDR percentiles, and
the ECRs a load run patches in place — decoded by python-diameter, an independent codec."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from diameter.message import Message

from simulations.load import LoadSummary, load_plan, peer_names, read_imei_file


def test_plans() -> None:
    p = load_plan(count=1000, window=64, rate=None, duration=None)
    assert (p.mode, p.count, p.window, p.rate) == ("closed", 1000, 64, None)
    p = load_plan(count=None, window=None, rate=500.0, duration=2.0)
    assert (p.mode, p.count, p.window, p.rate) == ("open", 1000, 0, 500.0)
    p = load_plan(count=None, window=8, rate=500.0, duration=0.5, peers=3)
    assert (p.mode, p.count, p.window, p.peers) == ("paced", 250, 8, 3)
    p = load_plan(count=300, window=None, rate=100.0, duration=None)
    assert (p.mode, p.count) == ("open", 300)
    with pytest.raises(ValueError, match="--duration needs --rate"):
        load_plan(count=None, window=None, rate=None, duration=1.0)
    with pytest.raises(ValueError, match="--rate needs --duration"):
        load_plan(count=None, window=None, rate=100.0, duration=None)
    with pytest.raises(ValueError, match="not both"):
        load_plan(count=50, window=None, rate=100.0, duration=1.0)


def test_imei_files(tmp_path: Path) -> None:
    f = tmp_path / "imeis.csv"
    f.write_text(
        "imei,status,reason\n35209900176148,white,x\n# a comment\n\n"
        "35-394206-000002,black\n3539420600000301\n"
    )
    assert read_imei_file(f) == ["35209900176148", "35394206000002", "3539420600000301"]
    f.write_text("35209900176148\n3520990017614\n")
    with pytest.raises(ValueError, match=r"imeis.csv:2: '3520990017614' is not an IMEI"):
        read_imei_file(f)
    f.write_text("imei\n")
    with pytest.raises(ValueError, match="no IMEI"):
        read_imei_file(f)
    with pytest.raises(ValueError, match="No such file"):
        read_imei_file(tmp_path / "none.csv")


def test_hdr_percentiles() -> None:
    s = LoadSummary.measure(
        count=1000, window=1, seconds=2.0, latencies=[i / 1000 for i in range(1, 1001)], verdicts={}
    )
    # 3 significant digits: within 0.1 % of the exact nearest-rank values
    assert s.p50_ms == pytest.approx(500, rel=2e-3)
    assert s.p90_ms == pytest.approx(900, rel=2e-3)
    assert s.p99_ms == pytest.approx(990, rel=2e-3)
    assert s.p999_ms == pytest.approx(999, rel=2e-3)
    assert s.max_ms == pytest.approx(1000, rel=2e-3)
    assert s.rate == 500.0 and s.answered == 1000


def test_peer_names() -> None:
    assert peer_names("mme.sim.localdomain", 1) == ["mme.sim.localdomain"]
    assert peer_names("mme.sim.localdomain", 2) == ["mme-1.sim.localdomain", "mme-2.sim.localdomain"]


async def _pipeline_bytes(imeis: list[str], n: int) -> list[bytes]:
    """The ECRs an MME load run sends for ``imeis`` in turn, captured from a loopback socket."""
    from protocols.diameter import DiameterPeer, Role
    from simulations.mme import SimulatedMme, _MmeProtocol

    loop = asyncio.get_running_loop()
    got = bytearray()
    done = asyncio.Event()

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            got.extend(data)
            done.set()

    server = await loop.create_server(Sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    core = DiameterPeer(
        role=Role.INITIATOR, origin_host="mme.test", origin_realm="test", host_ip_addresses=("127.0.0.1",)
    )
    _t, proto = await loop.create_connection(lambda: _MmeProtocol(core), "127.0.0.1", port)
    mme = SimulatedMme(proto, "mme.test", "localdomain")
    pipe = mme.sender(imeis[0], imeis=imeis)
    pipe.send([0.0] * n)
    out: list[bytes] = []
    while True:
        # the first bytes are the CER the core sent at connection_made; then the ECRs
        pos = 0
        msgs = []
        while len(got) - pos >= 20:
            length = int.from_bytes(got[pos + 1 : pos + 4], "big")
            if len(got) - pos < length:
                break
            msgs.append(bytes(got[pos : pos + length]))
            pos += length
        out = [m for m in msgs if int.from_bytes(m[5:8], "big") == 324]
        if len(out) >= n:
            break
        done.clear()
        await asyncio.wait_for(done.wait(), 5)
    assert proto.transport is not None
    proto.transport.close()
    server.close()
    return out


async def test_patched_ecrs_decode_with_python_diameter() -> None:
    imeis = ["35209900176148", "490154203237518", "3539420600000301", "35394206000002"]
    raw = await _pipeline_bytes(imeis, 6)
    msgs = [Message.from_bytes(b) for b in raw]
    assert [type(m).__name__ for m in msgs] == ["MeIdentityCheckRequest"] * 6
    assert [m.terminal_information.imei for m in msgs] == [*imeis, *imeis[:2]]
    hbh = [m.header.hop_by_hop_identifier for m in msgs]
    assert hbh == list(range(hbh[0], hbh[0] + 6))
    assert [m.header.end_to_end_identifier for m in msgs] == hbh
    assert len({m.session_id for m in msgs}) == 6
    assert all(m.destination_realm == b"localdomain" or m.destination_realm == "localdomain" for m in msgs)


class _Terminal:
    """A text stream that says it is a terminal (what the progress line is for)."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


async def test_progress_is_one_rewritten_line_on_a_terminal() -> None:
    from simulations.load import LoadRun, Progress

    run = LoadRun("open", total=None, window=0)
    run.sent = 10
    run.answered(0.002, "white")
    term = _Terminal()
    p = Progress("ECR", term, run=run)  # type: ignore[arg-type]
    assert p.enabled
    p.start()
    while "answered 1" not in term.text:  # bounded by the test timeout
        await asyncio.sleep(0.1)
    p.stop()
    assert term.text.startswith("\r") and "\n" not in term.text
    assert "sent 10  answered 1" in term.text and "p99 2.00 ms" in term.text
    assert term.text.endswith("\r\x1b[K")  # the line is cleared before the summary is printed
    assert not Progress("ECR", io.StringIO()).enabled
