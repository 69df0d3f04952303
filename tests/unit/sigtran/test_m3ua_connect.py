"""The outbound ASP connector of eir.servers.m3ua (``m3ua.connect``), in-process.

The end-to-end behaviour (ASPUP/ASPAC, checkIMEI through the STP, reconnect, ASPDN) is proved by
tests/system/test_map_stp.py against a real ``eir serve``; this pins the back-off, whose delays are
recorded instead of slept so nothing here depends on the clock.
"""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from eir.config import Config, M3uaConfig
from eir.events import NullEvents
from eir.model import CheckRequest, Status, Verdict
from eir.servers import m3ua as server_mod
from protocols.sigtran import m3ua


class WhiteChecker:
    async def check(self, request: CheckRequest) -> Verdict:
        return Verdict(status=Status.WHITE, rule="test")


class Stp(asyncio.Protocol):
    """One association of a scripted STP: drops the EIR at once, or takes it to ASP-ACTIVE first."""

    def __init__(self, script: list[str], srv: server_mod.M3uaServer) -> None:
        self.action = script.pop(0) if script else "stop"
        self.srv = srv
        self.core = m3ua.M3uaConnection(m3ua.M3uaSettings(role=m3ua.Role.SG))
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.action == "stop":
            self.srv.stopping = True  # the connector returns after this association
        if self.action != "activate":
            transport.close()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        events = self.core.receive_data(data, 0.0)
        self.transport.write(self.core.data_to_send())
        if any(isinstance(e, m3ua.AspStateChanged) and e.new is m3ua.AspState.ACTIVE for e in events):
            self.transport.close()  # the STP loses the association once it was up


async def test_backoff_grows_until_an_association_reaches_asp_active(monkeypatch: pytest.MonkeyPatch) -> None:
    """An STP that accepts the TCP connection but drops the ASP before ASP-ACTIVE used to be retried
    every second forever: the back-off was reset by the connect alone. It now grows (1, 2, 4 s) and
    starts again at 1 s only after an association that reached ASP-ACTIVE."""
    srv = server_mod.M3uaServer(
        Config(m3ua=M3uaConfig(listen=[], transports=["tcp"])), WhiteChecker(), NullEvents()
    )
    script = ["drop", "drop", "drop", "activate", "drop", "stop"]
    loop = asyncio.get_running_loop()
    stp = await loop.create_server(lambda: Stp(script, srv), "127.0.0.1", 0)
    port = stp.sockets[0].getsockname()[1]
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float, result: object = None) -> object:
        delays.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)  # the module the connector sleeps through
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(srv._connect_loop(f"127.0.0.1:{port}"), 10)
    finally:
        stp.close()
    assert not script
    assert delays == [1.0, 2.0, 4.0, 1.0, 2.0]
    lines = [(e["retry_in"], e["was_active"]) for e in logs if e["event"] == "m3ua_reconnecting"]
    assert lines == [(1.0, False), (2.0, False), (4.0, False), (1.0, True), (2.0, False)]
    assert [e["new"] for e in logs if e["event"] == "m3ua_asp_state"] == ["INACTIVE", "ACTIVE", "DOWN"]
