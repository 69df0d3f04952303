"""Trust over a real socket (issue 10): peer allow-lists (CEA 3010 and close), addressing (3003 / 3002),
the ECR's Origin-Host bound to the CER's (5012), connection limits — against the real asyncio S13
server on loopback, every answer decoded by python-diameter, every refusal counted in eir_refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from diameter.message import Message as PdMessage
from structlog.testing import capture_logs

from eir.metrics import LOG_SUPPRESSED, REFUSED
from eir.servers.diameter import start
from protocols.diameter import DiameterPeer, Role
from protocols.diameter import dictionary as d
from protocols.diameter.codec import HEADER_LENGTH
from tests.interop.s13_session import Events, TableChecker, s13_config

pytestmark = pytest.mark.system

IMEI = "15123456789012"


class Mme:
    """A raw S13 client over one TCP connection: our initiator core builds, python-diameter reads."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, core: DiameterPeer
    ) -> None:
        self.reader, self.writer, self.core = reader, writer, core

    @classmethod
    async def connect(cls, port: int, origin_host: str = "mme1.lab", origin_realm: str = "lab") -> Mme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        core = DiameterPeer(
            role=Role.INITIATOR,
            origin_host=origin_host,
            origin_realm=origin_realm,
            destination_realm="localdomain",
            identifier_seed=77,
        )
        core.start(0.0)
        return cls(reader, writer, core)

    async def exchange(self, data: bytes) -> Any:
        self.writer.write(data)
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readexactly(HEADER_LENGTH), 5)
        body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head[1:4], "big") - 20), 5)
        self.core.receive_data(head + body, 0.0)
        self.core.data_to_send()
        return PdMessage.from_bytes(head + body)

    async def cer(self) -> Any:
        return await self.exchange(self.core.data_to_send())

    async def ecr(self, **kw: Any) -> Any:
        self.core.send_ecr(0.0, session_id=f"s;{kw.get('destination_host')}", imei=IMEI, **kw)
        return await self.exchange(self.core.data_to_send())

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """``await serve(**diameter_config) -> port``: the S13 server in this event loop."""
    servers = []

    async def make(**diameter: Any) -> int:
        server = await start(s13_config(**diameter), TableChecker(), Events())
        servers.append(server)
        return int(server.addresses()[0][1])

    yield make
    for server in servers:
        await server.shutdown(1.0)


def refused(reason: str) -> float:
    return REFUSED.labels("s13", reason)._value.get()


def failed_avp_codes(m: Any) -> list[int]:
    (failed,) = [a for a in m.avps if a.code == d.FAILED_AVP.code]
    return [a.code for a in failed.value]


async def test_addressing_3003_and_3002(serve: Any) -> None:
    s13 = await serve(accept_realms=["epc.mnc001.mcc001.3gppnetwork.org"])
    before = refused("realm_not_served"), refused("host_not_served")
    mme = await Mme.connect(s13)
    try:
        assert (await mme.cer()).result_code == 2001
        ok = await mme.ecr()  # realm only (TS 29.272: Destination-Host is optional)
        also = await mme.ecr(
            destination_realm="epc.mnc001.mcc001.3gppnetwork.org", destination_host="EIR.localdomain"
        )
        realm = await mme.ecr(destination_realm="other.lab")
        host = await mme.ecr(destination_host="hss.localdomain")
    finally:
        mme.close()
    assert ok.result_code == 2001 and also.result_code == 2001
    assert realm.header.is_error and realm.result_code == 3003
    assert failed_avp_codes(realm) == [d.DESTINATION_REALM.code]
    assert host.header.is_error and host.result_code == 3002
    assert failed_avp_codes(host) == [d.DESTINATION_HOST.code]
    for m in (realm, host):  # RFC 6733 §7.4: we set the Result-Code and are the Origin-Host
        assert m.origin_host == b"eir.localdomain" and not m.find_avps((d.ERROR_REPORTING_HOST.code, 0))
    assert (refused("realm_not_served"), refused("host_not_served")) == (before[0] + 1, before[1] + 1)


async def test_peer_allow_list_by_origin_host_and_realm(serve: Any) -> None:
    s13 = await serve(allow_hosts=["mme1.*"], allow_realms=["lab"])
    before = refused("unknown_peer")
    good = await Mme.connect(s13, "MME1.lab")
    bad_host = await Mme.connect(s13, "mme2.lab")
    bad_realm = await Mme.connect(s13, "mme1.lab", "elsewhere")
    try:
        assert (await good.cer()).result_code == 2001
        assert (await good.ecr()).result_code == 2001
        for mme in (bad_host, bad_realm):
            cea = await mme.cer()
            assert cea.header.is_error and cea.result_code == 3010
            assert cea.origin_host == b"eir.localdomain"
            assert await mme.closed_by_server()
    finally:
        for mme in (good, bad_host, bad_realm):
            mme.close()
    assert refused("unknown_peer") == before + 2


async def test_peer_allow_list_by_source_address(serve: Any) -> None:
    s13 = await serve(allow_sources=["192.0.2.0/24", "2001:db8::/32"])
    mme = await Mme.connect(s13)
    try:
        cea = await mme.cer()
        assert cea.header.is_error and cea.result_code == 3010 and "127.0.0.1" in cea.error_message
        assert await mme.closed_by_server()
    finally:
        mme.close()


async def test_origin_host_must_be_the_cers_unless_the_peer_forwards(serve: Any) -> None:
    s13 = await serve(forwarding_peers=["dra*.lab"])
    before = refused("origin_mismatch")
    mme, dra = await Mme.connect(s13, "mme1.lab"), await Mme.connect(s13, "dra1.lab")
    try:
        assert (await mme.cer()).result_code == 2001 and (await dra.cer()).result_code == 2001
        mme.core.origin_host = dra.core.origin_host = "mme7.lab"  # ECRs now claim another origin
        spoofed = await mme.ecr()
        forwarded = await dra.ecr()
        assert (await mme.ecr()).result_code == 5012  # still refused: the connection stays open
    finally:
        mme.close()
        dra.close()
    assert not spoofed.header.is_error and spoofed.result_code == 5012
    assert failed_avp_codes(spoofed) == [d.ORIGIN_HOST.code]
    assert forwarded.result_code == 2001
    assert refused("origin_mismatch") == before + 2


async def test_connections_per_source_are_limited(serve: Any) -> None:
    s13 = await serve(max_connections_per_source=2)
    before = refused("connection_limit_per_source")
    first = [await Mme.connect(s13) for _ in range(2)]
    try:
        for mme in first:
            assert (await mme.cer()).result_code == 2001
        extra = await Mme.connect(s13)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await extra.cer()  # closed at accept: nothing answered
        extra.close()
        assert refused("connection_limit_per_source") == before + 1
        first.pop().close()
        await asyncio.sleep(0.05)
        for _ in range(100):  # the server sees the close; then a new connection is admitted
            again = await Mme.connect(s13)
            try:
                if (await again.cer()).result_code == 2001:
                    break
            except (ConnectionError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.02)
            finally:
                again.close()
        else:
            pytest.fail("a connection was never admitted again")
    finally:
        for mme in first:
            mme.close()


async def test_connections_in_total_are_limited(serve: Any) -> None:
    s13 = await serve(max_connections=1)
    before = refused("connection_limit")
    one = await Mme.connect(s13)
    try:
        assert (await one.cer()).result_code == 2001
        extra = await Mme.connect(s13)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await extra.cer()
        extra.close()
    finally:
        one.close()
    assert refused("connection_limit") == before + 1


async def test_refusal_warnings_are_rate_limited_and_all_counted(serve: Any) -> None:
    s13 = await serve()
    kind = "diameter_protocol_error:realm-not-served"
    before_suppressed, before_refused = LOG_SUPPRESSED.labels(kind)._value.get(), refused("realm_not_served")
    mme = await Mme.connect(s13)
    try:
        assert (await mme.cer()).result_code == 2001
        with capture_logs() as logs:
            for _ in range(30):
                assert (await mme.ecr(destination_realm="other.lab")).result_code == 3003
    finally:
        mme.close()
    warned = [e for e in logs if e["event"] == "diameter_protocol_error"]
    assert len(warned) == 10  # log.rate_limit_burst
    assert LOG_SUPPRESSED.labels(kind)._value.get() == before_suppressed + 20
    assert refused("realm_not_served") == before_refused + 30
