"""The N5g-eir server in-process (no subprocess), driven by h2's client core over a real socket:
GOAWAY on shutdown with the in-flight streams answered, the store-failure and overload answers,
bad input counted and answered with GOAWAY, never a crash."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from eir.config import Config, N5gConfig
from eir.metrics import REGISTRY, register_metrics
from eir.model import CheckRequest, Status, Verdict
from eir.servers.n5g import start

pytestmark = pytest.mark.system
register_metrics()

API = "/n5g-eir-eic/v1/equipment-status"


class GateChecker:
    """IMEIs starting with 9 wait for the gate (then white); else the first digit picks the verdict."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[CheckRequest] = []

    async def check(self, request: CheckRequest) -> Verdict:
        self.seen.append(request)
        if request.imei.startswith("9"):
            await self.gate.wait()
            return Verdict(status=Status.WHITE, rule="test")
        status = {"1": Status.WHITE, "2": Status.GREY, "3": Status.BLACK, "4": Status.UNKNOWN}.get(
            request.imei[0], Status.FAILURE
        )
        return Verdict(status=status, rule="test")


class Events:
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        pass


class Client:
    """h2's client core over an asyncio stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.c.initiate_connection()
        self.answers: dict[int, tuple[dict[bytes, bytes], bytes]] = {}
        self.heads: dict[int, dict[bytes, bytes]] = {}
        self.bodies: dict[int, bytes] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.eof = False

    @classmethod
    async def connect(cls, host: str, port: int) -> Client:
        return cls(*await asyncio.open_connection(host, port))

    def get(self, pei: str) -> int:
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(
            sid,
            [(":method", "GET"), (":scheme", "http"), (":authority", "eir"), (":path", f"{API}?pei={pei}")],
            end_stream=True,
        )
        self.w.write(self.c.data_to_send())
        return sid

    async def pump(self, until: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not until():
                data = await self.r.read(65536)
                if not data:
                    self.eof = True
                    return
                for ev in self.c.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        self.heads[ev.stream_id] = dict(ev.headers)
                    elif isinstance(ev, h2.events.DataReceived):
                        self.bodies[ev.stream_id] = self.bodies.get(ev.stream_id, b"") + ev.data
                        self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self.answers[ev.stream_id] = (
                            self.heads[ev.stream_id],
                            self.bodies.get(ev.stream_id, b""),
                        )
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        self.goaway = ev
                out = self.c.data_to_send()
                if out:
                    self.w.write(out)


class RawFrames:
    """HTTP/2 frames from a stream, parsed with hyperframe (no connection state)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.r = reader
        self.buf = b""

    async def until(self, cond: Any, timeout: float = 10.0) -> list[Any]:
        """Frames up to and including the first for which ``cond`` holds (or to EOF)."""
        from hyperframe.frame import Frame

        out: list[Any] = []
        async with asyncio.timeout(timeout):
            while True:
                while len(self.buf) >= 9:
                    f, n = Frame.parse_frame_header(memoryview(self.buf[:9]))
                    if len(self.buf) < 9 + n:
                        break
                    f.parse_body(memoryview(self.buf[9 : 9 + n]))
                    self.buf = self.buf[9 + n :]
                    out.append(f)
                    if cond(f):
                        return out
                chunk = await self.r.read(65536)
                if not chunk:
                    return out
                self.buf += chunk


async def until(cond: Any, timeout: float = 10.0) -> None:
    """Wait for a state the test needs before going on (not a timing assertion)."""
    for _ in range(int(timeout / 0.005)):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def serve(checker: Any, **n5g: Any) -> Any:
    cfg = Config(n5g=N5gConfig(listen=["127.0.0.1:0"], **n5g))
    return await start(cfg, checker, Events())


def metric(name: str, **labels: str) -> float:
    v = REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


async def test_verdicts_failure_and_shutdown_answers_in_flight_streams() -> None:
    checker = GateChecker()
    server = await serve(checker)
    host, port, _ = server.addresses()[0]
    cl = await Client.connect(host, port)
    try:
        fast = {cl.get(f"imei-{d}12345678901234"): d for d in "12345"}
        await cl.pump(lambda: len(cl.answers) == 5)
        got = {d: (cl.answers[s][0][b":status"], cl.answers[s][1]) for s, d in fast.items()}
        assert got["1"] == (b"200", b'{"status":"WHITELISTED"}')
        assert got["2"] == (b"200", b'{"status":"GREYLISTED"}')
        assert got["3"] == (b"200", b'{"status":"BLACKLISTED"}')
        assert got["4"][0] == b"404" and json.loads(got["4"][1])["cause"] == "ERROR_EQUIPMENT_UNKNOWN"
        assert got["5"][0] == b"500" and json.loads(got["5"][1])["cause"] == "SYSTEM_FAILURE"
        slow = [cl.get(f"imei-91{i:013d}") for i in range(3)]
        await until(lambda: len(checker.seen) == 8)  # the server read them (they wait on the gate)
        down = asyncio.create_task(server.shutdown(5.0))
        # h2's client core refuses every frame after a GOAWAY: read raw from here, frames parsed by
        # hyperframe, and acknowledge the shutdown PING by hand
        raw = RawFrames(cl.r)
        first = await raw.until(lambda f: f.type == 0x7)  # a PING, then GOAWAY(2^31-1)
        [ping] = [f for f in first if f.type == 0x6]
        assert (first[-1].last_stream_id, first[-1].error_code) == (2**31 - 1, 0)
        from hyperframe.frame import PingFrame

        cl.w.write(PingFrame(0, flags=["ACK"], opaque_data=ping.opaque_data).serialize())
        final = await raw.until(lambda f: f.type == 0x7)
        assert (final[-1].last_stream_id, final[-1].error_code) == (slow[-1], 0)
        checker.gate.set()
        rest = await raw.until(lambda f: False)  # to the end of the connection
        await down
        answered = {f.stream_id for f in rest if f.type == 0x0 and "END_STREAM" in f.flags}
        assert answered == set(slow)  # every in-flight stream answered
    finally:
        cl.w.close()
        await server.shutdown(1.0)


async def test_overload_answers_503_with_retry_after() -> None:
    checker = GateChecker()
    server = await serve(checker, overload_pending=2, retry_after=3)
    host, port, _ = server.addresses()[0]
    cl = await Client.connect(host, port)
    before = metric("eir_protocol_errors_total", interface="n5g", error="overload")
    try:
        waiting = [cl.get(f"imei-91{i:013d}") for i in range(2)]
        await until(lambda: server.pending == 2)
        over = cl.get("imei-911111111111111")
        await cl.pump(lambda: over in cl.answers)
        head, body = cl.answers[over]
        assert head[b":status"] == b"503" and head[b"retry-after"] == b"3"
        assert json.loads(body)["cause"] == "NF_CONGESTION"
        checker.gate.set()
        await cl.pump(lambda: all(s in cl.answers for s in waiting))
        assert metric("eir_protocol_errors_total", interface="n5g", error="overload") == before + 1
        assert server.pending == 0
    finally:
        cl.w.close()
        await server.shutdown(1.0)


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x04\x00\x00\x00\x00\x00junk",
            "frame_size_error",
        ),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
            + b"\x00\x00\x05\x01\x05\x00\x00\x00\x02abcde",
            "protocol_error",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", "bad_request"),
    ],
)
async def test_bad_input_is_counted_and_answered_never_a_crash(data: bytes, label: str) -> None:
    server = await serve(GateChecker())
    host, port, _ = server.addresses()[0]
    r, w = await asyncio.open_connection(host, port)
    internal = metric("eir_protocol_errors_total", interface="n5g", error="internal")
    before = metric("eir_protocol_errors_total", interface="n5g", error=label)
    try:
        w.write(data)
        async with asyncio.timeout(5):
            out = await r.read()  # the server answers (GOAWAY / 400) and closes
        assert out
        assert metric("eir_protocol_errors_total", interface="n5g", error=label) == before + 1
        assert metric("eir_protocol_errors_total", interface="n5g", error="internal") == internal
    finally:
        w.close()
        await server.shutdown(1.0)


async def test_idle_connection_closed_with_goaway() -> None:
    server = await serve(GateChecker(), idle_timeout=0.3)
    host, port, _ = server.addresses()[0]
    cl = await Client.connect(host, port)
    try:
        cl.w.write(cl.c.data_to_send())
        sid = cl.get("imei-112345678901234")
        await cl.pump(lambda: sid in cl.answers)
        await cl.pump(lambda: cl.eof, timeout=10)  # the server closes once idle
        assert cl.goaway is not None and cl.goaway.error_code == 0
        await until(lambda: not server.connections)
    finally:
        cl.w.close()
        await server.shutdown(1.0)


async def test_client_connections_are_bounded_per_source() -> None:
    """The N5g-eir listener holds at most max_connections_per_source connections from one address:
    the next is closed at accept, counted in eir_refused_total, and a place freed is reusable."""
    server = await serve(GateChecker(), max_connections_per_source=2)
    host, port, _ = server.addresses()[0]
    labels = {"interface": "n5g", "reason": "connection_limit_per_source"}
    before = metric("eir_refused_total", **labels)
    request = f"GET /n5g-eir-eic/v1/equipment-status?pei=imei-{'1' + '2' * 14} HTTP/1.1\r\nHost: x\r\n\r\n"
    held = [await asyncio.open_connection(host, port) for _ in range(2)]
    try:
        for r, w in held:  # admitted: answered
            w.write(request.encode())
            assert (await asyncio.wait_for(r.readline(), 10)).startswith(b"HTTP/1.1 200")
        r3, w3 = await asyncio.open_connection(host, port)
        try:
            w3.write(request.encode())
            with pytest.raises(ConnectionError):
                if await asyncio.wait_for(r3.read(), 10) == b"":
                    raise ConnectionResetError  # closed without an answer
        finally:
            w3.close()
        assert metric("eir_refused_total", **labels) == before + 1
        held[0][1].close()
        await until(lambda: len(server.connections) == 1)
        r4, w4 = await asyncio.open_connection(host, port)  # the freed place is taken again
        w4.write(request.encode())
        assert (await asyncio.wait_for(r4.readline(), 10)).startswith(b"HTTP/1.1 200")
        w4.close()
    finally:
        for _, w in held:
            w.close()
        await server.shutdown(1.0)
