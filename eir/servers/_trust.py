"""What every listener applies before a peer gets any work done: source-address allow-lists (CIDRs),
name patterns, connection limits (total and per source address), and the one start-up warning for a
listener exposed beyond loopback with no allow-list.

Also the limits of a connection once admitted that live outside the sans-IO cores: the write-side
limit (:class:`WriteStallGuard`, a peer that stops reading), the ``eir_connections_closed`` counter
every limit counts in, and the Diameter TLS context (:func:`diameter_tls_context`).

Refusals are counted in ``eir_refused{interface, reason}`` and logged through a
:class:`~eir.logging.RateLimitedLog` (a flood of refused connections must not flood the log).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from prometheus_client import Counter

from eir.config import parse_hostport
from eir.logging import RateLimitedLog
from eir.metrics import REFUSED

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CLOSED = Counter(
    "eir_connections_closed",
    "Connections the EIR closed because a time or size limit passed, by interface and reason "
    "(setup_timeout: no ASP-ACTIVE / CER in time; idle_timeout; heartbeat_timeout: BEATs or DWRs "
    "unanswered; ack_timeout; write_stalled: the peer stopped reading our answers)",
    ["interface", "reason"],
    registry=None,
)
"""Registered by the interfaces that count in it (``register_metrics(CLOSED)`` at start)."""


class WriteStallGuard:
    """Cuts a connection whose peer stopped reading.

    The transport's write buffer passing its high-water mark (``limit`` octets beyond the kernel's
    socket buffer) calls ``pause_writing``: the adapter stops reading (so the peer cannot make us
    queue more) and :meth:`paused` starts a ``timeout`` clock; ``resume_writing`` (the peer read,
    the buffer fell to a quarter) stops it. Still paused when it runs out: ``on_stall`` (count,
    log, abort). ``timeout`` 0: never.

    A graceful close has the same hole: ``close()`` waits until what is queued is written, which a
    peer that reads nothing never lets happen, even below the high-water mark. :meth:`closing`
    aborts the transport if it is still open ``timeout`` seconds after the close.
    """

    __slots__ = ("_handle", "_linger", "limit", "on_stall", "timeout")

    def __init__(self, timeout: float, limit: int, on_stall: Callable[[], None]) -> None:
        self.timeout = timeout
        self.limit = limit
        self.on_stall = on_stall
        self._handle: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    def install(self, transport: Any) -> None:
        """At ``connection_made``: the high-water mark (a transport without one is left alone)."""
        set_limits = getattr(transport, "set_write_buffer_limits", None)
        if set_limits is not None:
            set_limits(high=self.limit, low=self.limit // 4)

    def paused(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timeout > 0 and self._handle is None:
            self._handle = loop.call_later(self.timeout, self._fire)

    def resumed(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self.on_stall()

    def closing(self, loop: asyncio.AbstractEventLoop, transport: Any) -> None:
        """After ``transport.close()``: abort it if it is still open in ``timeout`` seconds."""
        if self.timeout > 0 and self._linger is None and transport is not None:
            self._linger = loop.call_later(self.timeout, transport.abort)

    def cancel(self) -> None:
        """At ``connection_lost``: no clock is left running."""
        self.resumed()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``192.0.2.7`` (one host), ``2001:db8::/32`` → networks (validated by the config)."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def source_ip(transport: Any) -> str | None:
    """The peer's IP address as text (IPv4-mapped IPv6 unmapped), or None (a UNIX socket, a test)."""
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or not peer:
        return None
    ip = str(peer[0]).split("%")[0]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def source_allowed(allowed: tuple[Network, ...], ip: str | None) -> bool:
    """True when ``allowed`` is empty (no allow-list) or holds ``ip``."""
    if not allowed:
        return True
    if ip is None:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in allowed)


def name_matcher(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """A case-insensitive shell-pattern test (``*.mme.lab``, ``mme?.lab``) over ``patterns``, or None
    when there are none (no allow-list: anything goes)."""
    pats = tuple(p.lower() for p in patterns)
    if not pats:
        return None

    def match(name: str) -> bool:
        n = name.lower()
        return any(fnmatchcase(n, p) for p in pats)

    return match


class ConnectionLimiter:
    """Connections held open by one interface: at most ``max_total``, and ``max_per_source`` from one
    source address. :meth:`admit` at ``connection_made``; :meth:`release` at ``connection_lost`` of
    every admitted connection."""

    def __init__(
        self, interface: str, max_total: int, max_per_source: int, limited: RateLimitedLog, log: Any
    ) -> None:
        self.interface = interface
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.total = 0
        self.per_source: dict[str | None, int] = {}
        self._limited = limited
        self._log = log
        for reason in ("connection_limit", "connection_limit_per_source"):
            REFUSED.labels(interface, reason)  # 0 until it happens

    def admit(self, ip: str | None) -> bool:
        n = self.per_source.get(ip, 0)
        if self.total >= self.max_total:
            reason, limit = "connection_limit", self.max_total
        elif n >= self.max_per_source:
            reason, limit = "connection_limit_per_source", self.max_per_source
        else:
            self.total += 1
            self.per_source[ip] = n + 1
            return True
        REFUSED.labels(self.interface, reason).inc()
        self._limited.warning(
            self._log,
            f"{self.interface}:{reason}",
            "connection_refused",
            reason=reason,
            source=ip,
            limit=limit,
        )
        return False

    def release(self, ip: str | None) -> None:
        self.total -= 1
        n = self.per_source.get(ip, 0) - 1
        if n > 0:
            self.per_source[ip] = n
        else:
            self.per_source.pop(ip, None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def warn_if_exposed(log: Any, key: str, listen: Sequence[str], allow_keys: Sequence[str]) -> None:
    """One warning at start when ``key`` listens beyond loopback and none of ``allow_keys`` is set."""
    exposed = [a for a in listen if not is_loopback(parse_hostport(a, f"{key}.listen")[0])]
    if exposed:
        log.warning(
            "listening_without_allow_list",
            section=key,
            addresses=exposed,
            detail=f"any host that reaches these addresses is served; set {' / '.join(allow_keys)}",
        )


def diameter_tls_context(
    cert: str, key: str, peer_ca: str | None = None, keylog: str | None = None
) -> ssl.SSLContext:
    """The server context of Diameter over TLS/TCP (RFC 6733 §13): TLS 1.2 or later (RFC 8996), our
    certificate chain and key; with ``peer_ca``, peers must present a certificate that CA signed
    (§13.1 mutual authentication) — and no other CA counts (the system's trust store is not
    loaded: a peer is a node of this network, not a web site). ``keylog`` (NSS key log format)
    lets Wireshark decrypt a capture."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if peer_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(peer_ca)
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def certificate_names(transport: Any) -> frozenset[str] | None:
    """The DNS names (subjectAltName, else the subject CN) of the verified peer certificate of a TLS
    transport, lower-cased; None when there is none (plain TCP, or no certificate asked for)."""
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    if not names:
        names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return frozenset(n.lower() for n in names)
