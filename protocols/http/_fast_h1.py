"""Pieces of the HTTP/1.1 fast path of :class:`protocols.http.HttpServerConnection`.

Where the time goes with h11 on a keep-alive connection: per request, five events (Request,
EndOfMessage, Response, Data, EndOfMessage) each through h11's state machine, header
normalisation and validation in both directions, and the receive buffer's line extraction — about
70 µs of CPU per request on the lab host, more than the admin API's whole check. The fast path
serves the common request itself: one whole head in one ``receive_data``, no body, nothing that
changes h11's framing or connection state; everything else goes to h11 as before.

It stays in step with h11 because a request is taken only while h11 is between requests (both
sides IDLE, nothing buffered), and a taken request is one after which h11 would be IDLE again once
answered: HTTP/1.1, exactly one ``Host``, no ``Content-Length``, ``Transfer-Encoding``,
``Connection``, ``Upgrade``, ``Expect`` or ``HTTP2-Settings``, not CONNECT. The grammar accepted
(RFC 9112 §3 request-line, RFC 9110 §5.1/§5.5 field names and values) is a subset of h11's:
obs-fold, obs-text, bare LF, leading empty lines and anything else fall to h11, which judges them.
An answer is written here only if h11 would write the same bytes (:func:`encode_response`);
otherwise the request is replayed into a fresh h11 connection and answered through it.

tests/unit/http/test_fast_h1.py runs request/answer sequences through both paths and compares
events and bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["encode_response", "parse_request"]

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = rb"(?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*")
_OUT_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-z]+")
_OUT_VALUE = re.compile(_VALUE)

_NOT_FAST = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect", b"http2-settings")
)
"""Request fields that change h11's framing, keep-alive or upgrade handling: h11 reads those."""
_OURS = frozenset((b"content-length", b"transfer-encoding", b"connection", b"host"))
"""Answer fields h11 rewrites or reorders (framing, keep-alive, Host first): h11 writes those."""

Parsed = tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...], bytes]
"""(method, target, header fields with lower-case names, Host value)."""


def parse_request(data: bytes, limit: int) -> Parsed | None:
    """``data`` as one whole simple request (module docstring), or None: h11 reads it."""
    if len(data) > limit or data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    lines = data[:-4].split(b"\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        return None
    method, target = m.group(1), m.group(2)
    if method == b"CONNECT":
        return None
    fields: list[tuple[bytes, bytes]] = []
    host: bytes | None = None
    match = _FIELD.fullmatch
    for line in lines[1:]:
        f = match(line)
        if f is None:
            return None
        name = f.group(1).lower()
        value = f.group(2)
        if name in _NOT_FAST:
            return None
        if name == b"host":
            if host is not None:
                return None
            host = value
        fields.append((name, value))
    if host is None:
        return None
    return method, target, tuple(fields), host


def encode_response(
    status: int, reason: bytes, fields: Sequence[tuple[bytes, bytes]], body: bytes, *, head: bool, close: bool
) -> bytes | None:
    """The bytes h11 would write for this answer: the status line, the service's ``fields`` in
    order, ``content-length`` (of ``body``, also for HEAD), ``connection: close`` if ``close``, then
    the body unless ``head``; or None when h11 would write something else or refuse the answer (a
    field it rewrites, :data:`_OURS`; an invalid name or value; a status out of 200-599; a body on
    a 204/304)."""
    if not 200 <= status <= 599 or (body and status in (204, 304)):
        return None
    out = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    name_ok = _OUT_NAME.fullmatch
    value_ok = _OUT_VALUE.fullmatch
    for name, value in fields:
        if name in _OURS or name_ok(name) is None or value_ok(value) is None:
            return None
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(b"content-length: %d\r\n" % len(body))
    if close:
        out.append(b"connection: close\r\n")
    out.append(b"\r\n")
    if body and not head:
        out.append(body)
    return b"".join(out)
