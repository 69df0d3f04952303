"""Streamed request bodies (``HttpLimits.stream_body``) of the sans-IO HTTP core, driven by h2's
and h11's client state machines: the head is handed up at once, the body in chunks, and on HTTP/2
the client's send window reopens only as the service says it took the chunks."""

from __future__ import annotations

import h2.events
import h11

from protocols.http import (
    BodyAborted,
    BodyEnded,
    BodyReceived,
    ConnectionClosed,
    HttpLimits,
    HttpServerConnection,
    ProtocolErrorOccurred,
    RequestReceived,
    RequestStarted,
)
from tests.unit.http.test_server import client, responses


def _server(max_body: int = 1 << 30) -> HttpServerConnection:
    return HttpServerConnection(
        HttpLimits(max_body=max_body, stream_body=lambda m, t, h: m == "POST" and t == "/up")
    )


def _h2_pair(max_body: int = 1 << 30):  # type: ignore[no-untyped-def]
    c, s = client(), _server(max_body)
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    return c, s


def _post(c, path: str = "/up") -> int:  # type: ignore[no-untyped-def]
    sid: int = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "e"), (":path", path)])
    return sid


def test_h2_body_is_handed_up_in_chunks_and_the_window_follows_the_reader() -> None:
    c, s = _h2_pair()
    sid = _post(c)
    evs = s.receive_data(c.data_to_send())
    assert [type(e) for e in evs] == [RequestStarted] and evs[0].target == "/up"
    window = c.local_flow_control_window(sid)  # 1 MiB: our initial_window_size
    assert window == 1 << 20
    sent = 0
    got = b""
    while c.local_flow_control_window(sid) >= 16384:  # the client sends until the window is used up
        c.send_data(sid, b"x" * 16384)
        sent += 16384
        for e in s.receive_data(c.data_to_send()):
            assert isinstance(e, BodyReceived)
            got += e.data
        c.receive_data(s.data_to_send())  # nothing reopens the window: nothing was taken
    assert sent == window and len(got) == sent
    assert c.local_flow_control_window(sid) == 0
    s.body_consumed(sid, len(got))  # the service took it: WINDOW_UPDATE on the stream and connection
    c.receive_data(s.data_to_send())
    assert c.local_flow_control_window(sid) == window
    c.send_data(sid, b"tail", end_stream=True)
    evs = s.receive_data(c.data_to_send())
    assert [type(e) for e in evs] == [BodyReceived, BodyEnded]
    s.send_response(sid, 200, [], b"ok")
    assert responses(c, s.data_to_send()) == {sid: (200, b"ok")}


def test_h2_over_the_limit_is_aborted_then_413_at_the_end() -> None:
    c, s = _h2_pair(max_body=100)
    sid = _post(c)
    s.receive_data(c.data_to_send())
    c.send_data(sid, b"x" * 60)
    assert [type(e) for e in s.receive_data(c.data_to_send())] == [BodyReceived]
    c.send_data(sid, b"x" * 60)
    # reported once, when it goes over
    assert s.receive_data(c.data_to_send()) == [
        BodyAborted(stream_id=sid, reason="too_large"),
        ProtocolErrorOccurred(error="body_too_large", detail="over 100", fatal=False),
    ]
    assert not s.idle  # the core owes the answer
    s.send_response(sid, 400, [], b"early")  # the service's answer is ignored: the core's is 413
    assert responses(c, s.data_to_send()) == {}
    c.send_data(sid, b"x" * 60, end_stream=True)
    assert s.receive_data(c.data_to_send()) == []
    s.send_response(sid, 200, [], b"late")
    assert responses(c, s.data_to_send()) == {sid: (413, b"")}
    assert s.idle


def test_h2_other_requests_are_still_gathered() -> None:
    c, s = _h2_pair()
    sid = _post(c, "/other")
    c.send_data(sid, b"abc", end_stream=True)
    evs = s.receive_data(c.data_to_send())
    assert [type(e) for e in evs] == [RequestReceived] and evs[0].body == b"abc"


def test_h2_an_early_answer_keeps_the_window_moving() -> None:
    """Answered before its body was read (a refusal): the rest is acknowledged at once."""
    c, s = _h2_pair()
    sid = _post(c)
    s.receive_data(c.data_to_send())
    s.send_response(sid, 400, [], b"no")
    assert responses(c, s.data_to_send()) == {sid: (400, b"no")}
    for _ in range(100):  # 1.6 MB, more than the window
        c.send_data(sid, b"x" * 16384)
        assert s.receive_data(c.data_to_send()) == []
        c.receive_data(s.data_to_send())


def test_http11_body_is_streamed_with_100_continue_and_keepalive_after() -> None:
    c = h11.Connection(h11.CLIENT)
    s = _server()
    head = c.send(
        h11.Request(
            method="POST",
            target="/up",
            headers=[("host", "e"), ("content-length", "10"), ("expect", "100-continue")],
        )
    )
    evs = s.receive_data(head)
    assert [type(e) for e in evs] == [RequestStarted] and evs[0].stream_id == 1
    c.receive_data(s.data_to_send())
    assert isinstance(c.next_event(), h11.InformationalResponse)  # 100 Continue
    evs = s.receive_data(c.send(h11.Data(data=b"01234")))
    assert evs == [BodyReceived(stream_id=1, data=b"01234")]
    evs = s.receive_data(c.send(h11.Data(data=b"56789")) + c.send(h11.EndOfMessage()))
    assert evs == [BodyReceived(stream_id=1, data=b"56789"), BodyEnded(stream_id=1)]
    s.send_response(1, 200, [], b"ok")
    c.receive_data(s.data_to_send())
    assert c.next_event().status_code == 200  # type: ignore[union-attr]
    c.next_event()
    c.next_event()
    c.start_next_cycle()
    evs = s.receive_data(
        c.send(h11.Request(method="GET", target="/x", headers=[("host", "e")])) + c.send(h11.EndOfMessage())
    )
    assert [type(e) for e in evs] == [RequestReceived]


def test_http11_over_the_limit_gets_413() -> None:
    s = _server(max_body=5)
    evs = s.receive_data(b"POST /up HTTP/1.1\r\nhost: e\r\ncontent-length: 10\r\n\r\n0123456789")
    assert [type(e) for e in evs] == [RequestStarted, BodyAborted, ProtocolErrorOccurred]
    assert s.data_to_send().startswith(b"HTTP/1.1 413 ")


def test_http11_over_the_limit_is_reported_once_and_answered_by_the_core() -> None:
    """The service answers as soon as its reader sees the abort (before the body ends): ignored,
    the core's 413 comes at the end, one ProtocolErrorOccurred in all; the connection goes on."""
    c = h11.Connection(h11.CLIENT)
    s = _server(max_body=5)
    head = c.send(h11.Request(method="POST", target="/up", headers=[("host", "e"), ("content-length", "10")]))
    evs = s.receive_data(head + c.send(h11.Data(data=b"0123456")))
    assert evs == [
        RequestStarted(
            stream_id=1,
            method="POST",
            target="/up",
            headers=evs[0].headers,
            version=evs[0].version,
            authority="e",
        ),
        BodyAborted(stream_id=1, reason="too_large"),
        ProtocolErrorOccurred(error="body_too_large", detail="over 5", fatal=False),
    ]
    s.send_response(1, 413, [(b"x-service", b"1")], b"service")
    assert s.data_to_send() == b""
    evs = s.receive_data(c.send(h11.Data(data=b"789")) + c.send(h11.EndOfMessage()))
    assert evs == []
    c.receive_data(s.data_to_send())
    resp = c.next_event()
    assert isinstance(resp, h11.Response) and resp.status_code == 413
    assert (b"x-service", b"1") not in resp.headers
    assert isinstance(c.next_event(), h11.EndOfMessage)
    c.start_next_cycle()
    evs = s.receive_data(
        c.send(h11.Request(method="GET", target="/x", headers=[("host", "e")])) + c.send(h11.EndOfMessage())
    )
    assert [type(e) for e in evs] == [RequestReceived]


def _stalling(idle: float = 1.0) -> HttpServerConnection:
    return HttpServerConnection(
        HttpLimits(idle_timeout=idle, stream_body=lambda m, t, h: m == "POST" and t == "/up")
    )


def test_h2_stalled_body_is_timed_out_with_408_and_the_connection_stays() -> None:
    c, s = client(), _stalling()
    s.start(0.0)
    s.receive_data(c.data_to_send(), 0.0)
    c.receive_data(s.data_to_send())
    s.receive_data(c.data_to_send(), 0.0)
    c.receive_data(s.data_to_send())
    sid = _post(c)
    assert [type(e) for e in s.receive_data(c.data_to_send(), 0.0)] == [RequestStarted]
    c.send_data(sid, b"imei,status\n")
    assert [type(e) for e in s.receive_data(c.data_to_send(), 0.5)] == [BodyReceived]
    # octets held by the service: the client may be waiting for the window, no stall yet
    assert s.get_timer() == 1.5
    assert s.handle_timer(1.6) == []
    s.body_consumed(sid, 12)
    c.receive_data(s.data_to_send())
    assert s.get_timer() == 2.6
    assert s.handle_timer(2.5) == []
    assert s.handle_timer(2.6) == [BodyAborted(stream_id=sid, reason="timeout")]
    assert not s.closed and s.idle
    got = c.receive_data(s.data_to_send())
    status = [int(dict(e.headers)[b":status"]) for e in got if isinstance(e, h2.events.ResponseReceived)]
    assert status == [408]
    assert s.handle_timer(2.7) == [] and not s.closed  # the idle clock started again at the abort
    # the connection goes on: another request is answered
    sid2 = c.get_next_available_stream_id()
    c.send_headers(
        sid2, [(":method", "GET"), (":scheme", "http"), (":authority", "e"), (":path", "/x")], end_stream=True
    )
    evs = s.receive_data(c.data_to_send(), 3.0)
    assert [type(e) for e in evs] == [RequestReceived]


def test_http11_stalled_body_is_timed_out_with_408_and_close() -> None:
    c = h11.Connection(h11.CLIENT)
    s = _stalling()
    s.start(0.0)
    head = c.send(
        h11.Request(method="POST", target="/up", headers=[("host", "e"), ("content-length", "100")])
    )
    assert [type(e) for e in s.receive_data(head + c.send(h11.Data(data=b"imei")), 0.0)] == [
        RequestStarted,
        BodyReceived,
    ]
    s.body_consumed(1, 4)
    assert s.handle_timer(0.9) == []
    assert s.handle_timer(1.0) == [
        BodyAborted(stream_id=1, reason="timeout"),
        ConnectionClosed(reason="body_timeout"),
    ]
    assert s.closed and s.idle
    c.receive_data(s.data_to_send())
    resp = c.next_event()
    assert isinstance(resp, h11.Response) and resp.status_code == 408
    assert (b"connection", b"close") in resp.headers


def test_a_gathered_request_and_an_idle_connection_keep_their_timeout() -> None:
    """The stall timeout only concerns streamed bodies; a streamed body that ended is not timed."""
    c = h11.Connection(h11.CLIENT)
    s = _stalling()
    s.start(0.0)
    head = c.send(h11.Request(method="POST", target="/up", headers=[("host", "e"), ("content-length", "4")]))
    evs = s.receive_data(head + c.send(h11.Data(data=b"imei")) + c.send(h11.EndOfMessage()), 0.0)
    assert [type(e) for e in evs] == [RequestStarted, BodyReceived, BodyEnded]
    assert s.handle_timer(5.0) == []  # answer pending: busy, not stalled
    s.send_response(1, 200, [], b"ok")
    assert s.get_timer() == 6.0
