"""SCTP sockets for the M3UA and Diameter servers and the simulated MSC: one home for the kernel
probe, the listening socket and the client connect.

One-to-one style sockets (``SOCK_STREAM`` + ``IPPROTO_SCTP``, RFC 6458 §3) so asyncio treats them
as streams; each carries its payload protocol identifier as the default on every message sent
(``SCTP_DEFAULT_SEND_PARAM``): 3 for M3UA (RFC 4666 §1.4.7.1), 46 for Diameter (RFC 6733 §2.1.1).
Kernels without SCTP (containers, CI) are common: :func:`sctp_available` says why, and callers fall
back to TCP with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = [
    "SCTP_PPID_DIAMETER",
    "SCTP_PPID_M3UA",
    "default_send_param",
    "sctp_available",
    "sctp_connect_socket",
    "sctp_listen_socket",
    "set_default_ppid",
]

SCTP_PPID_M3UA = 3
"""RFC 4666 §1.4.7.1 / IANA: SCTP payload protocol identifier for M3UA."""
SCTP_PPID_DIAMETER = 46
"""RFC 6733 §2.1.1 / IANA: SCTP payload protocol identifier for Diameter."""
_SCTP_DEFAULT_SEND_PARAM = 10  # linux/sctp.h SCTP_DEFAULT_SEND_PARAM
_SNDRCVINFO = struct.Struct("=HHHxxIIIIIi")
"""``struct sctp_sndrcvinfo``: stream, ssn, flags, ppid, context, timetolive, tsn, cumtsn, assoc_id."""


def sctp_available() -> str | None:
    """None when SCTP sockets can be created here, else the reason (kernel without SCTP …)."""
    proto = getattr(socket, "IPPROTO_SCTP", None)
    if proto is None:
        return "this Python has no socket.IPPROTO_SCTP"
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    except OSError as e:
        return f"the kernel refuses SCTP sockets ({e.strerror or e}; is the sctp module loaded?)"
    s.close()
    return None


def set_default_ppid(sock: socket.socket, ppid: int) -> None:
    """Send every message with payload protocol identifier ``ppid`` (network byte order on the
    wire). Best effort: a kernel refusing the option still carries the traffic, with PPID 0."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_SCTP, _SCTP_DEFAULT_SEND_PARAM, default_send_param(ppid))


def default_send_param(ppid: int) -> bytes:
    """The ``struct sctp_sndrcvinfo`` (RFC 6458 §5.3.2) naming ``ppid``; the kernel copies the
    field to the wire as is, so it is stored in network byte order."""
    return _SNDRCVINFO.pack(0, 0, 0, socket.htonl(ppid), 0, 0, 0, 0, 0)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def sctp_listen_socket(
    host: str, port: int, ppid: int, *, reuse_port: bool = False, backlog: int = 128
) -> socket.socket:
    """A bound, listening, non-blocking one-to-one SCTP socket for ``loop.create_server(sock=…)``.
    ``reuse_port`` lets several worker processes share the port. Closed again if any step fails."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        set_default_ppid(sock, ppid)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def sctp_connect_socket(host: str, port: int, ppid: int) -> socket.socket:
    """A connected, non-blocking one-to-one SCTP socket for ``loop.create_connection(sock=…)``.
    The socket is closed if the connect fails or is cancelled (a retry loop must not leak one fd
    per attempt)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    try:
        set_default_ppid(sock, ppid)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock
