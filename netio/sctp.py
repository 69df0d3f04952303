"""SCTP sockets and an asyncio transport for the M3UA and Diameter servers and the simulated MSC/MME:
one home for the kernel probe, the listening socket, the client connect and the message I/O.

One-to-one style sockets (``SOCK_STREAM`` + ``IPPROTO_SCTP``, RFC 6458 §3). asyncio's own socket
transports would carry the bytes, but they know nothing of SCTP messages: a write that found the
socket busy is later sent joined with the next ones (several M3UA or Diameter messages, or pieces of
them, in one SCTP message), every message goes out on stream 0, and the stream a message came in on
is lost. :class:`SctpTransport` does the I/O itself with ``sendmsg`` / ``recvmsg``:

* every protocol message is one SCTP message (a *framer* splits what the sans-IO core wrote by its
  length field: :func:`m3ua_framer`, :func:`diameter_framer`), sent with its payload protocol
  identifier — 3 for M3UA (RFC 4666 §1.4.7.1), 46 for Diameter (RFC 6733 §2.1.1) — and its stream;
* M3UA: management (MGMT, ASPSM, ASPTM, RKM) on stream 0, DATA on stream 1 + SLS mod (streams - 1)
  (RFC 4666 §1.4.7: stream 0 carries no DATA); Diameter on stream 0;
* a message received is handed over whole, with its stream, to a protocol that has
  ``sctp_data_received(data, stream)`` (else to ``data_received``);
* ``abort()`` sends an SCTP ABORT (``SO_LINGER`` 0); a peer's ABORT ends in ``connection_lost`` with
  the error, its SHUTDOWN in ``eof_received`` then ``connection_lost(None)``.

Kernels without SCTP (containers, CI) are common: :func:`sctp_available` says why, and callers fall
back to TCP with a log line. ``make test-sctp`` runs the SCTP tests in a VM whose kernel has it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

__all__ = [
    "SCTP_PPID_DIAMETER",
    "SCTP_PPID_M3UA",
    "SctpServer",
    "SctpTransport",
    "default_send_param",
    "diameter_framer",
    "m3ua_framer",
    "sctp_available",
    "sctp_connect_socket",
    "sctp_create_connection",
    "sctp_listen_socket",
    "sctp_serve",
    "set_default_ppid",
]

SCTP_PPID_M3UA = 3
"""RFC 4666 §1.4.7.1 / IANA: SCTP payload protocol identifier for M3UA."""
SCTP_PPID_DIAMETER = 46
"""RFC 6733 §2.1.1 / IANA: SCTP payload protocol identifier for Diameter."""
_IPPROTO_SCTP = 132
_SCTP_DEFAULT_SEND_PARAM = 10  # linux/sctp.h SCTP_DEFAULT_SEND_PARAM
_SCTP_NODELAY = 3  # int: no Nagle-style holding back of small messages (TCP_NODELAY's twin)
_SCTP_STATUS = 14  # getsockopt: struct sctp_status
_SCTP_RECVRCVINFO = 32  # setsockopt int: a SCTP_RCVINFO cmsg with every message received
_SCTP_SNDRCV = 1  # cmsg type: struct sctp_sndrcvinfo (send side here)
_SCTP_RCVINFO = 3  # cmsg type: struct sctp_rcvinfo (sid, ssn, flags, ppid, tsn, cumtsn, context, assoc)
_MSG_NOTIFICATION = 0x8000
_RCVINFO = struct.Struct("=HHHxxIIIIi")
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


# --- framing: one protocol message per SCTP message, and its stream ---------------------------------

Framer = Callable[[bytearray, int], list[tuple[bytes, int]]]
"""Takes the complete messages off the front of the buffer: [(message, stream)]; the second argument
is the number of outbound streams of the association."""


def _frames(buf: bytearray, length_of: Callable[[bytearray], int], minimum: int) -> list[bytes]:
    out = []
    while len(buf) >= minimum:
        n = length_of(buf)
        if n < minimum:  # not a message: send the rest as it is rather than hold it forever
            n = len(buf)
        if n > len(buf):
            break
        out.append(bytes(buf[:n]))
        del buf[:n]
    return out


def m3ua_framer(buf: bytearray, out_streams: int) -> list[tuple[bytes, int]]:
    """M3UA (RFC 4666 §1.4.7): DATA (class 1) on stream 1 + SLS mod (streams - 1), the rest on 0."""
    out = []
    for msg in _frames(buf, lambda b: int.from_bytes(b[4:8], "big"), 8):
        stream = 0
        if len(msg) > 2 and msg[2] == 1 and out_streams > 1:
            stream = 1 + _m3ua_sls(msg) % (out_streams - 1)
        out.append((msg, stream))
    return out


def _m3ua_sls(msg: bytes) -> int:
    """The SLS of a DATA message's Protocol Data (tag 0x0210: OPC, DPC, SI, NI, MP, SLS), else 0."""
    i = 8
    while i + 4 <= len(msg):
        tag, n = struct.unpack_from("!HH", msg, i)
        if n < 4:
            break
        if tag == 0x0210 and n >= 16:
            return msg[i + 15]
        i += (n + 3) & ~3
    return 0


def diameter_framer(buf: bytearray, out_streams: int) -> list[tuple[bytes, int]]:
    """Diameter (RFC 6733 §2.1.1): every message on stream 0."""
    return [(m, 0) for m in _frames(buf, lambda b: int.from_bytes(b[1:4], "big"), 20)]


# --- the transport ------------------------------------------------------------------------------------


class SctpTransport(asyncio.Transport):
    """An asyncio transport over a connected one-to-one SCTP socket (see the module docstring).

    Runs on any loop with ``add_reader`` / ``add_writer`` (asyncio's selector loops, uvloop).
    """

    max_size = 256 * 1024
    """Bytes asked of one ``recvmsg``; a longer message arrives in pieces and is joined."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        *,
        ppid: int,
        framer: Framer | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        info: dict[str, Any] = {"socket": sock}
        with contextlib.suppress(OSError):
            info["sockname"] = sock.getsockname()
        with contextlib.suppress(OSError):
            info["peername"] = sock.getpeername()
        info.update(extra or {})
        super().__init__(info)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._ppid = ppid
        self._framer = framer
        self._out_streams = out_streams(sock)
        self._pending = bytearray()  # what was written, not yet a whole message
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._queued = 0
        self._partial = bytearray()  # a received message longer than max_size, so far
        self._high, self._low = 64 * 1024, 16 * 1024
        self._writer_on = False
        self._reading = False
        self._read_paused = False
        self._protocol_paused = False
        self._closing = False
        self._lost = False
        self._stream_aware = callable(getattr(protocol, "sctp_data_received", None))
        with contextlib.suppress(OSError):
            sock.setsockopt(_IPPROTO_SCTP, _SCTP_RECVRCVINFO, 1)
        with contextlib.suppress(OSError):  # the TCP listeners set TCP_NODELAY: the same here
            sock.setsockopt(_IPPROTO_SCTP, _SCTP_NODELAY, 1)
        sock.setblocking(False)
        loop.call_soon(self._connection_made)

    # -- life cycle

    def _connection_made(self) -> None:
        if self._lost:
            return
        self._protocol.connection_made(self)
        if not self._closing and not self._read_paused:
            self._start_reading()

    def _start_reading(self) -> None:
        if not self._reading and not self._lost:
            self._loop.add_reader(self._fd, self._read_ready)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """SHUTDOWN after what is queued has been sent."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._queue:
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """ABORT the association now; what is queued is dropped."""
        self._force_close(None, abort=True)

    def _force_close(self, exc: BaseException | None, *, abort: bool = False) -> None:
        if self._lost:
            return
        if abort:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._queue.clear()
        self._queued = 0
        if self._writer_on:
            self._loop.remove_writer(self._fd)
            self._writer_on = False
        was_closing = self._closing
        self._closing = True
        self._stop_reading()
        if not was_closing or abort or exc is not None:
            self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._stop_reading()
        if self._writer_on:
            self._loop.remove_writer(self._fd)
            self._writer_on = False
        try:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            self._sock.close()

    def _fatal(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._force_close(exc, abort=True)

    # -- reading

    def pause_reading(self) -> None:
        self._read_paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if not self._closing:
                self._start_reading()

    def is_reading(self) -> bool:
        return self._reading

    def _read_ready(self) -> None:
        for _ in range(64):  # bounded per wake-up: other sockets get their turn
            if not self._reading:
                return
            try:
                data, ancdata, flags, _ = self._sock.recvmsg(self.max_size, socket.CMSG_SPACE(_RCVINFO.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # ECONNRESET: the peer aborted
                self._fatal(e, "recvmsg failed")
                return
            if flags & _MSG_NOTIFICATION:
                continue
            if not data:
                self._eof()
                return
            if not flags & socket.MSG_EOR:
                if len(self._partial) + len(data) > 16 * self.max_size:
                    self._fatal(OSError("SCTP message too long"), "SCTP message too long")
                    return
                self._partial += data
                continue
            if self._partial:
                data = bytes(self._partial) + data
                self._partial.clear()
            stream = _stream_of(ancdata)
            try:
                if self._stream_aware:
                    self._protocol.sctp_data_received(data, stream)  # type: ignore[attr-defined]
                else:
                    self._protocol.data_received(data)  # type: ignore[attr-defined]
            except Exception as e:
                self._fatal(e, "Fatal error: protocol.data_received() call failed.")
                return

    def _eof(self) -> None:
        """The peer shut the association down: SCTP has no half-close, so this side closes too."""
        self._stop_reading()
        try:
            self._protocol.eof_received()  # type: ignore[attr-defined]
        except Exception as e:
            self._fatal(e, "Fatal error: protocol.eof_received() call failed.")
            return
        self.close()

    # -- writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._lost or self._closing:
            return
        if self._framer is None:
            self.send_message(bytes(data), 0)
            return
        self._pending += data
        for msg, stream in self._framer(self._pending, self._out_streams):
            self.send_message(msg, stream)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def send_message(self, data: bytes, stream: int = 0) -> None:
        """One SCTP message on ``stream`` with the transport's PPID."""
        if self._lost or not data:
            return
        if not self._queue:
            try:
                self._send(data, stream)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._fatal(e, "sendmsg failed")
                return
            self._loop.add_writer(self._fd, self._write_ready)
            self._writer_on = True
        self._queue.append((data, stream))
        self._queued += len(data)
        if not self._protocol_paused and self._queued > self._high:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def _send(self, data: bytes, stream: int) -> None:
        # SCTP takes a message whole or not at all (EAGAIN)
        self._sock.sendmsg([data], [(_IPPROTO_SCTP, _SCTP_SNDRCV, _send_info(stream, self._ppid))])

    def _write_ready(self) -> None:
        while self._queue:
            data, stream = self._queue[0]
            try:
                self._send(data, stream)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._fatal(e, "sendmsg failed")
                return
            self._queue.popleft()
            self._queued -= len(data)
        self._loop.remove_writer(self._fd)
        self._writer_on = False
        if self._protocol_paused and self._queued <= self._low:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if self._closing:
            self._call_connection_lost(None)

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._queued + len(self._pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._stream_aware = callable(getattr(protocol, "sctp_data_received", None))

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol


def _send_info(stream: int, ppid: int) -> bytes:
    return _SNDRCVINFO.pack(stream, 0, 0, socket.htonl(ppid), 0, 0, 0, 0, 0)


def _stream_of(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == _IPPROTO_SCTP and kind == _SCTP_RCVINFO and len(data) >= 2:
            return int(struct.unpack_from("=H", data)[0])
    return None


def out_streams(sock: socket.socket) -> int:
    """The association's outbound stream count (``SCTP_STATUS``); 1 when it cannot be read."""
    try:
        status = sock.getsockopt(_IPPROTO_SCTP, _SCTP_STATUS, 256)
    except OSError:
        return 1
    return struct.unpack_from("=H", status, 18)[0] if len(status) >= 20 else 1


# --- server and client ------------------------------------------------------------------------------


class SctpServer:
    """A listening SCTP socket accepting into :class:`SctpTransport` (what ``create_server`` is to
    TCP): ``sockets``, ``close()``, ``wait_closed()``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        *,
        ppid: int,
        framer: Framer | None,
    ) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._factory = factory
        self._ppid = ppid
        self._framer = framer
        self.sockets: tuple[socket.socket, ...] = (sock,)
        self._closed = asyncio.Event()
        loop.add_reader(sock.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        for _ in range(64):
            if self._sock is None:
                return
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: say so, try again on the next wake-up
                self._loop.call_exception_handler({"message": "SCTP accept failed", "exception": e})
                return
            try:
                SctpTransport(self._loop, conn, self._factory(), ppid=self._ppid, framer=self._framer)
            except Exception as e:
                conn.close()
                self._loop.call_exception_handler(
                    {"message": "SCTP connection set-up failed", "exception": e}
                )

    def is_serving(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
            self.sockets = ()
            self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


async def sctp_serve(
    factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    ppid: int,
    *,
    framer: Framer | None,
    reuse_port: bool = False,
    backlog: int = 128,
) -> SctpServer:
    """Listen on ``host:port`` and serve each association with ``factory()``'s protocol."""
    sock = sctp_listen_socket(host, port, ppid, reuse_port=reuse_port, backlog=backlog)
    return SctpServer(asyncio.get_running_loop(), sock, factory, ppid=ppid, framer=framer)


async def sctp_create_connection(
    factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    ppid: int,
    *,
    framer: Framer | None,
) -> tuple[SctpTransport, asyncio.BaseProtocol]:
    """Connect (:func:`sctp_connect_socket`, closed on failure) and wrap it in :class:`SctpTransport`;
    returns once the protocol's ``connection_made`` has run."""
    loop = asyncio.get_running_loop()
    sock = await sctp_connect_socket(host, port, ppid)
    try:
        protocol = factory()
        transport = SctpTransport(loop, sock, protocol, ppid=ppid, framer=framer)
    except BaseException:
        sock.close()
        raise
    await asyncio.sleep(0)  # connection_made runs on the next loop iteration
    return transport, protocol
