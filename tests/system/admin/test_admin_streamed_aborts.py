"""Streamed admin imports that do not end well, against a real ``eir serve``: bodies reset by the
client or over ``admin.max_import_body`` on an HTTP/2 connection that stays open give the
connection's flow-control window back (else, after 1 MiB of them, nothing more can be uploaded on
it); a body the client stalls is timed out after ``admin.idle_timeout`` (408; HTTP/1.1: closed),
counted in ``eir_protocol_errors{error="body_timeout"}`` and logged. The HTTP/2 frames are driven
by python-hyper h2's client state machine and read back from a capture by tshark."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from testkit.capture import dumpcap, missing, require
from testkit.eirproc import EirProcess

pytestmark = pytest.mark.system

WRITE = "write-token-for-aborts"
LIMIT = 100_000
IDLE = 2
CHUNK = b"imei,status\n" + b"35394206000002,black\n" * 700  # 14 kB
START_WINDOW = 65535  # the client's connection send window before our WINDOW_UPDATEs (RFC 9113 §6.9.2)


@pytest.fixture(scope="module")
def eir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EirProcess]:
    p = EirProcess(
        tmp_path_factory.mktemp("aborts"),
        {
            "admin": {"token": WRITE, "max_import_body": LIMIT, "idle_timeout": IDLE},
            "log": {"level": "info", "format": "json"},
        },
    )
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _hostport(eir: EirProcess) -> tuple[str, int, str]:
    hostport = eir.admin_url.split("//")[1].split("/")[0]
    host, port = hostport.rsplit(":", 1)
    return host.strip("[]"), int(port), hostport


def _errors(eir: EirProcess, label: str) -> float:
    for line in eir.metrics_text().splitlines():
        if line.startswith(f'eir_protocol_errors_total{{error="{label}",interface="admin"}}'):
            return float(line.split()[-1])
    return 0.0


class _H2Client:
    def __init__(self, eir: EirProcess) -> None:
        host, port, self.authority = _hostport(eir)
        self.path = eir.admin_url.split(self.authority, 1)[1] + "/lists/import"
        self.sock = socket.create_connection((host, port))
        self.sock.settimeout(0.2)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.c.initiate_connection()
        self.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.c.increment_flow_control_window(1 << 24)
        self.sock.sendall(self.c.data_to_send())
        self.pump_until(lambda evs: self.c.outbound_flow_control_window > START_WINDOW)
        self.window = self.c.outbound_flow_control_window

    def __enter__(self) -> _H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def pump_until(self, done, timeout: float = 5.0) -> list[h2.events.Event]:  # type: ignore[no-untyped-def]
        evs: list[h2.events.Event] = []
        deadline = time.monotonic() + timeout
        while not done(evs) and time.monotonic() < deadline:
            try:
                d = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not d:
                evs.append(h2.events.ConnectionTerminated())
                break
            evs += self.c.receive_data(d)
            self.sock.sendall(self.c.data_to_send())
        return evs

    def start(self, headers: list[tuple[str, str]] | None = None) -> int:
        sid: int = self.c.get_next_available_stream_id()
        self.c.send_headers(
            sid,
            headers
            or [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", self.authority),
                (":path", self.path),
                ("authorization", f"Bearer {WRITE}"),
                ("content-type", "text/csv"),
            ],
        )
        return sid

    def send(self, sid: int, n: int) -> int:
        sent = 0
        while sent < n:
            self.c.send_data(sid, CHUNK)
            sent += len(CHUNK)
        self.sock.sendall(self.c.data_to_send())
        return sent


def _status(evs: list[h2.events.Event], sid: int) -> int | None:
    for e in evs:
        if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
            return int(dict(e.headers)[b":status"])
    return None


def _tshark_frames(pcap: Path, port: int) -> list[dict[str, str]]:
    """Every HTTP/2 frame of the capture, decoded by tshark: its direction, type, stream id,
    length and (WINDOW_UPDATE) increment."""
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-d",
            f"tcp.port=={port},http2",
            "-Y",
            "http2",
            "-T",
            "fields",
            "-e",
            "tcp.dstport",
            "-e",
            "http2.type",
            "-e",
            "http2.streamid",
            "-e",
            "http2.length",
            "-e",
            "http2.window_update.window_size_increment",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    frames: list[dict[str, str]] = []
    for line in out.splitlines():
        dst, types, streams, lengths, incs = (line.split("\t") + [""] * 5)[:5]
        increments = iter(incs.split(",") if incs else [])
        for t, sid, n in zip(types.split(","), streams.split(","), lengths.split(","), strict=True):
            frames.append(
                {
                    "to_server": str(dst == str(port)),
                    "type": t,
                    "stream": sid,
                    "length": n,
                    "increment": next(increments) if t == "8" else "0",
                }
            )
    return frames


@pytest.mark.parametrize("how", ["reset", "too_large"])
def test_h2_cut_off_bodies_give_the_connection_window_back(eir: EirProcess, tmp_path: Path, how: str) -> None:
    """13 bodies of ~88 kB reset mid-way, or 7 of ~190 kB over the 100 kB limit (413): 1.1 to 1.3 MB
    cut off, more than the 1 MiB connection window; after each the client's connection send window
    is back above half of it (h2 announces consumed octets in steps of half a window: without them
    given back it would be 0 by the end), an import on the same connection then succeeds, each cut
    is counted once, and tshark reads from the capture every DATA octet given back by the server's
    connection-level WINDOW_UPDATEs (less than half a window not yet announced)."""
    require(missing("tshark", "dumpcap"))
    _host, port, _ = _hostport(eir)
    label = "body_aborted" if how == "reset" else "body_too_large"
    before = _errors(eir, label)
    rounds, size = (13, 80_000) if how == "reset" else (7, 190_000)
    total = 0
    with dumpcap(tmp_path / "h2.pcap", f"tcp port {port}") as pcap, _H2Client(eir) as cl:
        for _ in range(rounds):
            sid = cl.start()
            total += cl.send(sid, size)
            if how == "reset":
                cl.c.reset_stream(sid)
            else:
                cl.c.end_stream(sid)
            cl.sock.sendall(cl.c.data_to_send())
            evs = cl.pump_until(
                lambda evs, sid=sid: (
                    (how == "reset" or _status(evs, sid) is not None)
                    and cl.c.outbound_flow_control_window > cl.window // 2
                )
            )
            if how == "too_large":
                assert _status(evs, sid) == 413
            # h2 announces what was consumed once it is half the window (hence not == cl.window);
            # lost octets would bring it down to 0 within the rounds
            assert cl.c.outbound_flow_control_window > cl.window // 2, "connection window not given back"
        assert total > 1 << 20
        sid = cl.start()
        cl.c.send_data(sid, b"imei,status\n35394206000010,grey\n", end_stream=True)
        cl.sock.sendall(cl.c.data_to_send())
        evs = cl.pump_until(lambda evs: any(isinstance(e, h2.events.StreamEnded) for e in evs))
        assert _status(evs, sid) == 200
    for _ in range(20):
        if _errors(eir, label) >= before + rounds:
            break
        time.sleep(0.1)
    assert _errors(eir, label) == before + rounds  # each counted once
    frames = _tshark_frames(pcap, port)
    sent = sum(int(f["length"]) for f in frames if f["to_server"] == "True" and f["type"] == "0")
    given_back = sum(
        int(f["increment"])
        for f in frames
        if f["to_server"] == "False" and f["type"] == "8" and f["stream"] == "0"
    )
    # the server's connection-level WINDOW_UPDATEs: its 1 MiB window at start, then the DATA octets
    # (all but less than half a window, announced once there are more)
    assert sent >= total
    top_up = (1 << 20) - START_WINDOW
    assert 0 <= sent - (given_back - top_up) < (1 << 20) // 2, (given_back, sent)
    if how == "reset":
        resets = [f for f in frames if f["to_server"] == "True" and f["type"] == "3"]
        assert len(resets) == rounds


def test_h2_stalled_body_is_timed_out_and_the_connection_stays(eir: EirProcess, tmp_path: Path) -> None:
    require(missing("tshark", "dumpcap"))
    _host, port, _ = _hostport(eir)
    before = _errors(eir, "body_timeout")
    with dumpcap(tmp_path / "stall.pcap", f"tcp port {port}") as pcap, _H2Client(eir) as cl:
        sid = cl.start()
        cl.send(sid, 10_000)
        t0 = time.monotonic()
        evs = cl.pump_until(
            lambda evs: any(isinstance(e, h2.events.StreamReset) for e in evs), timeout=IDLE * 4
        )
        waited = time.monotonic() - t0
        assert _status(evs, sid) == 408
        assert [e.stream_id for e in evs if isinstance(e, h2.events.StreamReset)] == [sid]
        assert waited >= IDLE - 0.1, waited
        # the connection stays: another import on it
        sid2 = cl.start()
        cl.c.send_data(sid2, b"imei,status\n35394206000011,grey\n", end_stream=True)
        cl.sock.sendall(cl.c.data_to_send())
        evs = cl.pump_until(lambda evs: any(isinstance(e, h2.events.StreamEnded) for e in evs))
        assert _status(evs, sid2) == 200
    assert _errors(eir, "body_timeout") == before + 1
    assert eir.wait_for_log("http_body_timeout", reason="timeout")
    # tshark reads the server's side: 408 on the stalled stream, then RST_STREAM NO_ERROR on it
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-d",
            f"tcp.port=={port},http2",
            "-Y",
            f"tcp.srcport=={port} && http2.streamid=={sid} && (http2.type==1 || http2.type==3)",
            "-T",
            "fields",
            "-e",
            "http2.type",
            "-e",
            "http2.headers.status",
            "-e",
            "http2.rst_stream.error",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [[*line.split("\t"), "", "", ""][:3] for line in out.splitlines()]
    statuses = ",".join(r[1] for r in rows if r[1]).split(",")
    errors = ",".join(r[2] for r in rows if r[2]).split(",")
    assert statuses == ["408"], out
    assert errors == ["0"], out  # RST_STREAM NO_ERROR (RFC 9113 §8.1: the answer was complete)


def test_http11_stalled_body_is_timed_out_and_closed(eir: EirProcess) -> None:
    before = _errors(eir, "body_timeout")
    host, port, _ = _hostport(eir)
    path = eir.admin_url.split("//")[1].split("/", 1)[1]
    s = socket.create_connection((host, port))
    s.sendall(
        (
            f"POST /{path}/lists/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE}\r\n"
            "Content-Type: text/csv\r\nContent-Length: 50000\r\n\r\nimei,status\n"
        ).encode()
    )
    s.settimeout(IDLE * 4)
    t0 = time.monotonic()
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    waited = time.monotonic() - t0
    s.close()
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"connection: close" in got.lower()
    assert IDLE - 0.1 <= waited < IDLE * 3, waited
    assert _errors(eir, "body_timeout") == before + 1
    assert eir.wait_for_log("http_body_timeout", reason="timeout")


def test_http11_over_the_limit_with_a_pause_is_413_counted_and_logged_once(eir: EirProcess) -> None:
    """The body goes over the limit, then the client pauses (the service's reader sees the abort
    and answers first): the answer is still the core's 413, counted and logged once."""
    counted = _errors(eir, "body_too_large")
    logged = _too_large_lines(eir)
    host, port, _ = _hostport(eir)
    path = eir.admin_url.split("//")[1].split("/", 1)[1]
    body = b"imei,status\n" + b"35394206000002,black\n" * 20000
    with socket.create_connection((host, port)) as s:
        s.sendall(
            (
                f"POST /{path}/lists/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE}\r\n"
                f"Content-Type: text/csv\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        s.sendall(body[: LIMIT + 50_000])
        time.sleep(0.5)
        s.sendall(body[LIMIT + 50_000 :])
        s.settimeout(IDLE * 2)
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            d = s.recv(65536)
            if not d:
                break
            got += d
    head, _, payload = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), got[:300]
    assert payload.startswith(b"{") and b"request body too large" in payload  # the core's answer
    assert _errors(eir, "body_too_large") == counted + 1
    assert _too_large_lines(eir) == logged + 1


def _too_large_lines(eir: EirProcess) -> int:
    return sum(
        1
        for e in eir.log_events()
        if e.get("event") == "http_protocol_error" and e.get("error") == "body_too_large"
    )


def test_imports_in_flight_are_bounded(eir: EirProcess) -> None:
    """``admin.max_imports_in_flight`` (2): a third import while two are spooling gets 503
    ProblemDetails with Retry-After, counted; once they are done imports are taken again."""
    busy = _errors(eir, "imports_busy")
    with _H2Client(eir) as cl:
        held = [cl.start(), cl.start()]
        for sid in held:
            cl.c.send_data(sid, b"imei,status\n")
        cl.sock.sendall(cl.c.data_to_send())
        cl.pump_until(lambda evs: False, timeout=0.3)  # both are being spooled
        third = cl.start()
        cl.c.send_data(third, b"imei,status\n35394206000012,grey\n", end_stream=True)
        cl.sock.sendall(cl.c.data_to_send())
        evs = cl.pump_until(lambda evs: any(isinstance(e, h2.events.StreamEnded) for e in evs))
        assert _status(evs, third) == 503
        fields = next(dict(e.headers) for e in evs if isinstance(e, h2.events.ResponseReceived))
        assert fields[b"retry-after"] == b"1"
        assert fields[b"content-type"] == b"application/problem+json"
        body = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
        assert b'"cause":"imports_busy"' in body
        for i, sid in enumerate(held):
            cl.c.send_data(sid, f"3539420600002{i},grey\n".encode(), end_stream=True)
        cl.sock.sendall(cl.c.data_to_send())
        evs = cl.pump_until(lambda evs: sum(isinstance(e, h2.events.StreamEnded) for e in evs) == 2)
        assert [_status(evs, sid) for sid in held] == [200, 200]
        again = cl.start()
        cl.c.send_data(again, b"imei,status\n35394206000012,grey\n", end_stream=True)
        cl.sock.sendall(cl.c.data_to_send())
        evs = cl.pump_until(lambda evs: any(isinstance(e, h2.events.StreamEnded) for e in evs))
        assert _status(evs, again) == 200
    assert _errors(eir, "imports_busy") == busy + 1
