"""The HTTP/1.1 fast path is the h11 path: random client scripts (simple requests, requests with a
body, ``Connection: close``, duplicate or missing ``Host``, obs-fold, bare LF, upgrade offers,
pipelined requests and heads split over several reads, EOF) and random answers (GET and HEAD, 204,
fields h11 rewrites, invalid values, a close in the middle) run against a connection with the fast
path and one without (every request through h11); the server events and the bytes out must be the
same. The answers are also read back by ``http.client`` (the standard library's parser, which
shares nothing with h11 or the fast path)."""

from __future__ import annotations

import http.client
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.http import HttpLimits, HttpServerConnection, RequestReceived
from protocols.http._fast_h1 import encode_response, parse_request

REQUESTS = [
    b"GET /api/v1/check?imei=490154203237518 HTTP/1.1\r\nHost: 127.0.0.1:9465\r\nUser-Agent: h2load\r\n"
    b"Accept: */*\r\nauthorization: Bearer t\r\n\r\n",
    b"HEAD /api/v1/health HTTP/1.1\r\nhost: e\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nHost: e\r\nX-Empty:\r\nX-Sp:  a b \t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nHost: f\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: e\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nX-Fold: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\nHost: e\n\n",
    b"\r\nGET / HTTP/1.1\r\nHost: e\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nX-Obs: caf\xe9\r\n\r\n",
    b"POST /api/v1/lists/entries HTTP/1.1\r\nHost: e\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    b"CONNECT e:443 HTTP/1.1\r\nHost: e:443\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: e\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: e\r\nBad Name: x\r\n\r\n",
]

ANSWERS: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = [
    (200, [(b"content-type", b"application/json"), (b"cache-control", b"no-store")], b'{"a":1}'),
    (404, [(b"content-type", b"application/problem+json")], b'{"status":404}'),
    (204, [], b""),
    (204, [], b"oops"),  # h11 refuses a body on a 204: the connection is given up on both paths
    (200, [(b"connection", b"keep-alive")], b"x"),
    (200, [(b"X-Upper", b"v")], b"x"),
    (200, [(b"x-bad", b"a\r\nb")], b"x"),
    (200, [(b"x-empty", b"")], b""),
    (599, [], b"z"),
]


def _run(fast: bool, chunks: list[bytes], answers: list[int], close_at: int | None) -> list[Any]:
    s = HttpServerConnection(HttpLimits(fast_path=fast, max_header_list_size=4096))
    log: list[Any] = []
    k = 0

    def handle(events: list[Any]) -> None:
        nonlocal k
        pending = list(events)
        while pending:
            ev = pending.pop(0)
            log.append(
                (
                    type(ev).__name__,
                    getattr(ev, "stream_id", None),
                    getattr(ev, "method", None),
                    getattr(ev, "target", None),
                    getattr(ev, "headers", None),
                    getattr(ev, "body", None),
                    getattr(ev, "authority", None),
                    getattr(ev, "error", None),
                )
            )
            if isinstance(ev, RequestReceived):
                if close_at == k:
                    log.append(("close", s.close(0.0)))
                status, fields, body = ANSWERS[answers[k % len(answers)]]
                k += 1
                s.send_response(ev.stream_id, status, fields, body, head=ev.method == "HEAD")
                log.append(("out", s.data_to_send(), s.closed))
                pending += s.pending_events()

    for data in chunks:
        if s.closed:
            break
        handle(s.receive_data(data, 0.0))
        log.append(("out", s.data_to_send(), s.closed))
    return log


@st.composite
def scripts(draw: Any) -> tuple[list[bytes], list[int], int | None]:
    reqs = draw(st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=6))
    wire = b"".join(reqs)
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True) if b > a]
    if draw(st.booleans()):
        chunks.append(b"")  # EOF
    answers = draw(st.lists(st.integers(0, len(ANSWERS) - 1), min_size=1, max_size=6))
    close_at = draw(st.none() | st.integers(0, 5))
    return chunks, answers, close_at


@settings(max_examples=400, deadline=None)
@given(scripts())
def test_fast_path_equals_h11_path(script: tuple[list[bytes], list[int], int | None]) -> None:
    chunks, answers, close_at = script
    assert _run(True, chunks, answers, close_at) == _run(False, chunks, answers, close_at)


def test_fast_path_is_taken_and_h11_untouched() -> None:
    s = HttpServerConnection()
    for _ in range(3):
        (ev,) = s.receive_data(REQUESTS[0], 0.0)
        assert s._h1_fast == REQUESTS[0]  # taken by the fast path
        s.send_response(ev.stream_id, 200, [(b"content-type", b"application/json")], b"{}")
        assert s.pending_events() == []
        assert (
            s.data_to_send()
            == b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        )
    c = s._h1
    assert c is not None and c.their_state.__name__ == "IDLE" and c.our_state.__name__ == "IDLE"


def test_parse_request_takes_only_simple_requests() -> None:
    assert parse_request(REQUESTS[0], 4096) == (
        b"GET",
        b"/api/v1/check?imei=490154203237518",
        (
            (b"host", b"127.0.0.1:9465"),
            (b"user-agent", b"h2load"),
            (b"accept", b"*/*"),
            (b"authorization", b"Bearer t"),
        ),
        b"127.0.0.1:9465",
    )
    assert parse_request(REQUESTS[2], 4096) == (
        b"DELETE",
        b"/x",
        ((b"host", b"e"), (b"x-empty", b""), (b"x-sp", b"a b")),
        b"e",
    )
    assert parse_request(REQUESTS[0], 64) is None  # over the head bound: h11 judges it
    assert parse_request(REQUESTS[0] + REQUESTS[1], 4096) is None  # two requests: h11 holds the second
    for raw in REQUESTS[3:]:
        assert parse_request(raw, 4096) is None, raw


@given(
    st.sampled_from(ANSWERS[:3] + ANSWERS[7:]),
    st.booleans(),
    st.booleans(),
)
def test_answers_read_back_by_http_client(
    answer: tuple[int, list[tuple[bytes, bytes]], bytes], head: bool, close: bool
) -> None:
    status, fields, body = answer
    out = encode_response(status, b"Reason", fields, body, head=head, close=close)
    assert out is not None

    class _Sock:
        def makefile(self, _mode: str) -> io.BytesIO:
            return io.BytesIO(out)

    r = http.client.HTTPResponse(_Sock(), method="HEAD" if head else "GET")  # type: ignore[arg-type]
    r.begin()
    assert r.status == status and r.reason == "Reason"
    assert [(k.encode(), v.encode()) for k, v in r.getheaders()][: len(fields)] == fields
    assert r.getheader("content-length") == str(len(body))
    assert r.will_close is close
    assert r.read() == (b"" if head or status in (204, 304) else body)
