"""X.1255 identifier discovery through a Handle.Net-style REST API: requests and records, sans-IO.

The Handle System's REST interface answers ``GET /api/handles/{prefix}/{suffix}`` with JSON
``{"responseCode": 1, "handle": "...", "values": [{"index": 1, "type": "...", "data": {"format":
"string", "value": "..."}}]}`` — responseCode 1 found, 100 handle not found (HTTP 404), others an
error. No standard record layout for device identifiers exists; this project defines its own and
keeps it small (documented as ours, not a standard):

* handle ``<prefix>/imei-<14 digits>`` (the IMEI without check digit or SVN);
* typed values (format ``string``): ``EIR.STATUS`` = ``white`` | ``grey`` | ``black`` (what the
  record's authority says about the device), and optionally ``EIR.TAC``, ``EIR.BRAND``,
  ``EIR.MODEL``, ``EIR.REASON``.

Here: the request bytes (HTTP/1.0, so that the answer is never chunked and ends at EOF), the
response parser (status line, headers, body; bounded) and the record codec, for the client in
eir/handle.py and the server in simulations/handle.py. No I/O, no clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = [
    "FOUND",
    "MAX_RESPONSE",
    "NOT_FOUND",
    "STATUS_TYPE",
    "HandleProtocolError",
    "HandleRecord",
    "build_get",
    "decode_record",
    "encode_record",
    "imei_handle",
    "parse_http_response",
]

FOUND = 1
NOT_FOUND = 100
STATUS_TYPE = "EIR.STATUS"
TYPES = ("EIR.STATUS", "EIR.TAC", "EIR.BRAND", "EIR.MODEL", "EIR.REASON")
MAX_RESPONSE = 65536
"""Bytes of one answer (status line, headers, body) a client reads at most."""


class HandleProtocolError(Exception):
    """The answer is not an HTTP response carrying a Handle REST record."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandleRecord:
    handle: str
    values: dict[str, str] = field(default_factory=dict)
    """type → value (the first value of each type)."""

    @property
    def status(self) -> str | None:
        return self.values.get(STATUS_TYPE)


def imei_handle(prefix: str, imei14: str) -> str:
    return f"{prefix}/imei-{imei14}"


def build_get(host: str, handle: str) -> bytes:
    """The request for one handle (HTTP/1.0: one answer, read to EOF)."""
    path = "/api/handles/" + quote(handle, safe="/-._~")
    return f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode("ascii")


def parse_http_response(data: bytes) -> tuple[int, bytes]:
    """A whole HTTP/1.x response → (status code, body); HandleProtocolError when it is not one."""
    if len(data) > MAX_RESPONSE:
        raise HandleProtocolError(f"answer larger than {MAX_RESPONSE} bytes")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise HandleProtocolError("no end of the HTTP header")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HandleProtocolError(f"not an HTTP status line: {lines[0][:60]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            body = body[: int(value.strip())]
    return int(parts[1]), body


def decode_record(status: int, body: bytes) -> HandleRecord | None:
    """A Handle REST answer → the record, None for "handle not found"; HandleProtocolError else."""
    try:
        doc = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        raise HandleProtocolError(f"HTTP {status}: body is not JSON") from None
    if not isinstance(doc, dict):
        raise HandleProtocolError(f"HTTP {status}: body is not a JSON object")
    code = doc.get("responseCode")
    if code == NOT_FOUND or (status == 404 and code is None):
        return None
    if status != 200 or code != FOUND:
        raise HandleProtocolError(f"HTTP {status}, responseCode {code!r}")
    values: dict[str, str] = {}
    raw = doc.get("values", [])
    if not isinstance(raw, list):
        raise HandleProtocolError("values is not a list")
    for v in sorted((v for v in raw if isinstance(v, dict)), key=lambda v: v.get("index", 0)):
        t, data = v.get("type"), v.get("data")
        if isinstance(t, str) and isinstance(data, dict) and isinstance(data.get("value"), str):
            values.setdefault(t, data["value"])
    return HandleRecord(handle=str(doc.get("handle", "")), values=values)


def encode_record(record: HandleRecord | None, handle: str) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of the answer for ``handle`` (the server side)."""
    if record is None:
        return 404, json.dumps({"responseCode": NOT_FOUND, "handle": handle}).encode()
    values = [
        {"index": i, "type": t, "data": {"format": "string", "value": v}}
        for i, (t, v) in enumerate(record.values.items(), start=1)
    ]
    return 200, json.dumps({"responseCode": FOUND, "handle": handle, "values": values}).encode()
