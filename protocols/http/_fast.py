"""Pieces of the HTTP/2 fast path of :class:`protocols.http.HttpServerConnection`.

Where the time goes with h2 on a busy SBI connection: per request, hyperframe's frame objects,
h2's stream state machine and event objects, header validation generators, HPACK decoding of a
header block the client sends again and again, and HPACK encoding of the same few answers. The
fast path keeps h2 for the connection (preface, SETTINGS, PING, GOAWAY, connection flow control,
every unusual frame) and serves the common stream itself: a request that is one HEADERS frame with
END_HEADERS|END_STREAM on a new stream, and its answer.

It stays in step with h2 because:

* HPACK: every request header block is decoded by h2's own decoder (h2's ``_decode_headers``), so
  the dynamic table is the one h2 would have; a block is remembered only if decoding it did not
  change the table (:class:`CountingTable` counts changes), and a remembered block is reused only
  while the table is unchanged — then decoding it again would give the same fields;
* answers are encoded without touching the encoder's dynamic table (:func:`encode_response_block`:
  static-table references and literals *without indexing*, RFC 7541 §6.1/§6.2.2), so h2's encoder
  state is the one it would have had;
* stream ids, the connection send window and closed-stream bookkeeping are written into h2's
  fields (``highest_inbound_stream_id``, ``outbound_flow_control_window``, ``_closed_streams``), so
  h2 judges later frames on those streams as it judges its own;
* request validation (:func:`request_problem`) follows RFC 9113 §8.2-8.3 as h2's does, and a
  malformed request ends the connection with PROTOCOL_ERROR, as h2 does.

tests/unit/http/test_fast_path.py runs random request sequences through both paths and compares
what the client decodes.
"""

from __future__ import annotations

from hpack.table import HeaderTable

__all__ = ["CountingTable", "encode_response_block", "request_problem"]


class CountingTable(HeaderTable):
    """An HPACK header table that counts its changes (entries added, size changed)."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


# RFC 7541 Appendix A: static table indices of the names (and :status values) our answers use
_STATUS_INDEX = {200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14}
_NAME_INDEX = {
    b":status": 8,
    b"allow": 22,
    b"cache-control": 24,
    b"content-length": 28,
    b"content-type": 31,
    b"date": 33,
    b"location": 46,
    b"retry-after": 53,
    b"server": 54,
    b"www-authenticate": 61,
}


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1 integer with an N-bit prefix; ``first`` holds the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(b: bytes) -> bytes:
    """RFC 7541 §5.2 string literal, not Huffman-coded."""
    return _integer(len(b), 7, 0) + b


def _literal(name: bytes, value: bytes) -> bytes:
    """RFC 7541 §6.2.2 literal header field without indexing (the dynamic table is not touched)."""
    idx = _NAME_INDEX.get(name)
    if idx is not None:
        return _integer(idx, 4, 0x00) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def encode_response_block(status: int, fields: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """The header block of an answer: ``:status`` then ``fields`` (names lower-case), encoded
    without changing the encoder's dynamic table (module docstring)."""
    idx = _STATUS_INDEX.get(status)
    out = [bytes((0x80 | idx,)) if idx is not None else _literal(b":status", str(status).encode())]
    out += [_literal(n, v) for n, v in fields]
    return b"".join(out)


_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))


def request_problem(fields: list[tuple[bytes, bytes]]) -> str | None:
    """Why a request header list is malformed (RFC 9113 §8.2-8.3), or None.

    Pseudo-header fields first, each at most once, only the request ones; ``:method``, ``:scheme``
    and a non-empty ``:path`` present (CONNECT: ``:authority`` and neither of those, §8.5);
    names lower-case; no connection-specific fields; ``te`` only ``trailers``."""
    seen: set[bytes] = set()
    regular = False
    for name, value in fields:
        if b"\x00" in value or b"\r" in value or b"\n" in value or value.strip(b" \t") != value:
            return "illegal characters or surrounding whitespace in a field value"
        if name[:1] == b":":
            if regular:
                return "pseudo-header field after a regular one"
            if name not in _REQUEST_PSEUDO:
                return f"pseudo-header field {name!r} not allowed in a request"
            if name in seen:
                return f"duplicate {name!r}"
            seen.add(name)
            if name == b":path" and not value:
                return "empty :path"
        else:
            regular = True
            if name.lower() != name:
                return "upper-case field name"
            if name in _CONNECTION_SPECIFIC:
                return f"connection-specific field {name!r}"
            if name == b"te" and value != b"trailers":
                return "te other than trailers"
        if not name:
            return "empty field name"
    if b":method" in seen and dict(fields).get(b":method") == b"CONNECT":
        if b":scheme" in seen or b":path" in seen or b":authority" not in seen:
            return "CONNECT with :scheme or :path, or without :authority"
        return None
    if not {b":method", b":scheme", b":path"} <= seen:
        return "missing :method, :scheme or :path"
    return None
