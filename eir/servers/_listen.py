"""What both interface servers do alike: open their listeners and report peer events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eir.config import parse_hostport
from eir.events import EventSink
from netio.sctp import Framer, sctp_available, sctp_serve


class Listener(Protocol):
    """What the servers use of a listener: ``asyncio.Server`` (TCP) or ``netio.sctp.SctpServer``."""

    @property
    def sockets(self) -> Sequence[Any]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


Listeners = list[tuple[Listener, str]]
_sctp_noted: object = None
"""The event loop on which the missing SCTP was last logged."""


async def open_listeners(
    log: Any,
    key: str,
    listen: Sequence[str],
    transports: Sequence[str],
    factory: Callable[[str], asyncio.BaseProtocol],
    *,
    ppid: int,
    framer: Framer | None = None,
    reuse_port: bool,
    backlog: int,
) -> Listeners:
    """TCP and, where the kernel has it, SCTP (one-to-one, PPID ``ppid``, one message per SCTP
    message as ``framer`` splits them; required with SCTP) on every ``HOST:PORT`` of ``listen``;
    SCTP takes the TCP port number when the kernel picked it (port 0). ``factory`` gets the
    transport name. ``key`` names the config section in errors and logs."""
    loop = asyncio.get_running_loop()
    sctp_reason = sctp_available() if "sctp" in transports else None
    global _sctp_noted
    if sctp_reason is not None and _sctp_noted is not loop:
        # once per running server (event loop), not once per interface: the kernel is the same for
        # all of them (the banner shows each listener's transport)
        _sctp_noted = loop
        log.warning("sctp_unavailable", reason=sctp_reason, detail="listeners use TCP only")
    out: Listeners = []
    for i, addr in enumerate(listen):
        host, port = parse_hostport(addr, f"{key}.listen[{i}]")
        if "tcp" in transports:
            srv = await loop.create_server(
                lambda: factory("tcp"), host, port, reuse_port=reuse_port or None, backlog=backlog
            )
            out.append((srv, "tcp"))
            if port == 0:
                port = srv.sockets[0].getsockname()[1]
        if "sctp" in transports and sctp_reason is None:
            if framer is None:
                raise ValueError(f"{key}: SCTP needs a framer (one message per SCTP message)")
            sctp = await sctp_serve(
                lambda: factory("sctp"),
                host,
                port,
                ppid,
                framer=framer,
                reuse_port=reuse_port,
                backlog=backlog,
            )
            out.append((sctp, "sctp"))
            if port == 0:
                port = sctp.sockets[0].getsockname()[1]
    return out


def bound_addresses(listeners: Listeners) -> list[tuple[str, int, str]]:
    """(host, port, transport) of every bound socket: port 0 in the config resolves here."""
    out = []
    for srv, transport in listeners:
        for sock in srv.sockets:
            host, port = sock.getsockname()[:2]
            out.append((host, port, transport))
    return out


def publish_peer(
    events: EventSink, log: Any, interface: str, peer: str, transport: str, event: str, **extra: Any
) -> None:
    """A ``peer`` event over MQTT; publishing must never break a peer."""
    try:
        events.publish(
            "peer", {"interface": interface, "peer": peer, "event": event, "transport": transport, **extra}
        )
    except Exception as e:
        log.warning("event_publish_failed", error=repr(e))
