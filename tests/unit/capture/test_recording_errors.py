"""``eir serve --pcap`` records every byte the EIR sends, the error paths included: the M3UA ERR of the
internal-error path (the core raised) and the ERR that refuses a source at accept — read back by
tshark, an independent decoder."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from eir import recording
from eir.config import Config, M3uaConfig
from eir.events import NullEvents
from eir.model import CheckRequest, Status, Verdict
from eir.servers import m3ua as server_mod
from protocols.sigtran import m3ua
from protocols.sigtran.stack import EirSigtranStack
from testkit.peers import require_peer


class _Grey:
    async def check(self, request: CheckRequest) -> Verdict:
        return Verdict(status=Status.GREY, rule="test")


async def _start(**m3ua_cfg: object) -> server_mod.M3uaServer:
    cfg = Config(m3ua=M3uaConfig(listen=["127.0.0.1:0"], transports=["tcp"], **m3ua_cfg))  # type: ignore[arg-type]
    return await server_mod.start(cfg, _Grey(), NullEvents())


def _m3ua_rows(path: Path) -> list[list[str]]:
    """(message class, type, error code, diagnostic) of every M3UA message in the file, per tshark."""
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "m3ua",
            "-T",
            "fields",
            "-e",
            "m3ua.message_class",
            "-e",
            "m3ua.message_type",
            "-e",
            "m3ua.error_code",
            "-e",
            "m3ua.diagnostic_information",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "malformed" not in out.stdout.lower() + out.stderr.lower()
    return [line.split("\t") for line in out.stdout.splitlines()]


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)  # everything until the server closes
    finally:
        writer.close()


async def test_the_internal_error_err_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_peer("tshark", "it decodes the recording independently")

    def broken(self: object, data: bytes, now: float, stream: int | None = None) -> list[object]:
        raise RuntimeError("core bug")

    monkeypatch.setattr(EirSigtranStack, "receive_data", broken)
    path = tmp_path / "eir.pcapng"
    recording.start(str(path))
    srv = await _start()
    try:
        aspup = m3ua.encode_message(m3ua.MessageType.ASPUP)
        reply = await _exchange(srv.addresses()[0][1], aspup)
        assert reply[:4] == b"\x01\x00\x00\x00"  # what the peer got: an ERR
    finally:
        await srv.shutdown(1.0)
        recording.stop()
    rows = _m3ua_rows(path)
    assert rows[0][:2] == ["3", "1"]  # ASPUP, from the peer
    assert rows[1][:3] == ["0", "0", "7"]  # ERR Protocol Error, from the EIR
    assert rows[1][3].replace(":", "") == aspup.hex()  # the input as Diagnostic Information
    assert len(rows) == 2


async def test_the_err_that_refuses_a_source_is_recorded(tmp_path: Path) -> None:
    require_peer("tshark", "it decodes the recording independently")
    path = tmp_path / "eir.pcapng"
    recording.start(str(path))
    srv = await _start(allow_sources=["192.0.2.0/24"])
    try:
        reply = await _exchange(srv.addresses()[0][1], m3ua.encode_message(m3ua.MessageType.ASPUP))
        assert reply[:4] == b"\x01\x00\x00\x00"
    finally:
        await srv.shutdown(1.0)
        recording.stop()
    rows = _m3ua_rows(path)
    assert [r[:3] for r in rows] == [["0", "0", "13"]]  # Refused - Management Blocking
