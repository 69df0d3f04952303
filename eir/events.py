"""Events published over MQTT (aiomqtt): verdicts, clone suspicions, peer and list changes; and the
way in, list updates from a central EIR / CEIR (:mod:`eir.mqtt_lists`).

Publishing never blocks or fails a check: ``publish`` appends the event to a bounded buffer and a
background task sends it. While the broker is away the buffer keeps the newest ``mqtt.buffer_size``
events (the oldest are dropped and counted in ``eir_events_dropped_total``); after the reconnect they
leave in the order they were published. An event leaves the buffer only when the broker has
acknowledged it (QoS 1 PUBACK), so a connection lost mid-send resends it: at least once, in order.

The connection announces itself with a retained ``<prefix>/status`` message (``online``) and leaves a
last-will that the broker publishes, retained, when the connection dies without a goodbye
(``offline``; a clean close publishes it itself). The client identifier is fixed and the session
persistent (``clean_session`` false) when list updates are taken in, so that the broker keeps the
QoS 1 updates published while the EIR is reconnecting and delivers them when it is back.

The task reconnects with a capped backoff (0.5 s doubling to 10 s).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from eir.logging import get_logger, mask_payload
from eir.metrics import EVENTS_DROPPED, EVENTS_PUBLISHED, MQTT_BUFFERED, MQTT_CONNECTED

WINDOW = 10
"""Events published before waiting for their acknowledgements (in order on the wire). aiomqtt warns
in the log above 10 calls pending."""

MessageHandler = Callable[[bytes], Awaitable[tuple[str, dict[str, Any]] | None]]
"""Called with each message that arrives on the subscribed topic; returns (topic, payload) of an
answer to publish (the list acknowledgement), or None."""


class EventSink(Protocol):
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Queue an event under ``<prefix>/<topic>``; never blocks, never raises."""
        ...


class NullEvents:
    """The sink used when MQTT is disabled (and by the CLI)."""

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _ClosingSSLSocket(ssl.SSLSocket):
    """paho-mqtt 2.2 leaves the socket open when the TLS handshake fails (a certificate it does not
    trust, a plain-TCP listener): one descriptor lost per reconnect attempt. This one closes itself."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(ca: str | None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A client context that checks the broker's certificate (against ``ca``, else the system's
    CAs) and its host name, with an optional client certificate."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.sslsocket_class = _ClosingSSLSocket
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class MqttEvents:
    """Bounded, ordered, at-least-once MQTT publisher; optionally a subscriber of one topic."""

    def __init__(
        self,
        url: str,
        topic_prefix: str = "eir",
        *,
        queue_size: int = 10_000,
        client_id: str | None = None,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        status_topic: str | None = None,
        subscribe: str | None = None,
        on_message: MessageHandler | None = None,
        mask: bool = False,
    ) -> None:
        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp", "mqtts", "ssl", ""):
            raise ValueError(f"mqtt.url: unsupported scheme {u.scheme!r} (use mqtt://host:port)")
        secure = u.scheme in ("mqtts", "ssl")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (8883 if secure else 1883)
        self.username = username or (unquote(u.username) if u.username else None)
        self.password = password or (unquote(u.password) if u.password else None)
        self.tls = tls if tls is not None else (tls_context(None) if secure else None)
        self.prefix = topic_prefix.rstrip("/")
        self.client_id = client_id
        self.qos = qos
        self.status_topic = status_topic or f"{self.prefix}/status"
        self.subscribe_topic = subscribe
        self.on_message = on_message
        self.mask = mask
        self.buffer_size = max(1, queue_size)
        self._buffer: collections.deque[tuple[int, str, bytes, int, bool]] = collections.deque()
        self._seq = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="mqtt")
        self.connected = asyncio.Event()
        self.connects = 0
        """Successful connections so far."""
        self.failures = 0
        """Connection attempts that failed or connections that were lost."""
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, config: Any, worker_index: int = 0, store: Any = None) -> MqttEvents:
        """The publisher ``eir serve`` runs, from ``config.mqtt`` (a :class:`eir.config.Config`);
        with ``mqtt.lists_in`` (worker 0 only) it applies list updates to ``store``."""
        m = config.mqtt
        take_lists = m.lists_in and worker_index == 0 and store is not None  # one importer
        on_message: MessageHandler | None = None
        if take_lists:
            from eir.logging import RateLimitedLog
            from eir.mqtt_lists import ListUpdates

            limited = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
            on_message = ListUpdates(store, max_bytes=m.max_update_bytes, limited=limited).handle
        # A fixed id keeps the broker's session (updates queued while we reconnect) but two
        # clients with one id knock each other off: without list updates, the pid keeps it unique.
        base = m.client_id or f"eir-{config.diameter.origin_host}" + ("" if m.lists_in else f"-{os.getpid()}")
        suffix = f"-w{worker_index}" if config.workers > 1 and (m.client_id or m.lists_in) else ""
        prefix = m.topic_prefix.rstrip("/")
        secure = m.url.startswith(("mqtts:", "ssl:"))
        return cls(
            m.url,
            prefix,
            queue_size=m.buffer_size,
            client_id=base + suffix,
            qos=m.qos,
            username=m.username,
            password=m.password,
            tls=tls_context(m.tls_ca, m.tls_cert, m.tls_key) if secure else None,
            status_topic=f"{prefix}/status" + (f"/w{worker_index}" if suffix else ""),
            subscribe=m.lists_topic if take_lists else None,
            on_message=on_message,
            mask=config.log.mask_identities,
        )

    @property
    def broker(self) -> str:
        """``mqtt[s]://host:port`` without credentials (for logs and the banner)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    # --- publishing ---------------------------------------------------------------------------------
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        body = mask_payload(payload) if self.mask else dict(payload)
        body.setdefault("ts", time.time())
        self._enqueue(f"{self.prefix}/{topic}", json.dumps(body, default=str).encode(), self.qos)

    def _enqueue(self, topic: str, body: bytes, qos: int, retain: bool = False) -> None:
        if len(self._buffer) >= self.buffer_size:
            self._buffer.popleft()  # the oldest goes: the newest say more about the state now
            EVENTS_DROPPED.inc()
        self._seq += 1
        self._buffer.append((self._seq, topic, body, qos, retain))
        MQTT_BUFFERED.set(len(self._buffer))
        self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt")

    def _status(self, state: str) -> bytes:
        return json.dumps(
            {"state": state, "client_id": self.client_id, "pid": os.getpid(), "ts": time.time()}
        ).encode()

    async def _run(self) -> None:
        import aiomqtt

        backoff = 0.5
        persistent = self.subscribe_topic is not None and self.client_id is not None
        client: Any = None
        while True:
            try:
                client = aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self.username,
                    password=self.password,
                    identifier=self.client_id,
                    clean_session=not persistent,
                    will=aiomqtt.Will(self.status_topic, self._status("offline"), qos=1, retain=True),
                    tls_context=self.tls,
                    timeout=5,
                    keepalive=30,
                    # a window of small PUBLISH packets behind Nagle waits for the broker's delayed
                    # ACK (40 ms a window: 800 events/s instead of thousands)
                    socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
                )
                async with client:
                    await client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
                    if self.subscribe_topic is not None:
                        await client.subscribe(self.subscribe_topic, qos=1)
                    self.connects += 1
                    self._log.info("mqtt_connected", broker=self.broker, buffered=len(self._buffer))
                    self.connected.set()
                    MQTT_CONNECTED.set(1)
                    backoff = 0.5
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._send(client))
                        if self.subscribe_topic is not None:
                            tg.create_task(self._receive(client))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # broker down, refused, dropped: keep the (bounded) buffer, retry
                _retrieve_disconnect(client)
                err = self.last_error = _reason(e)
                self.failures += 1
                if self.connected.is_set():
                    self._log.warning(
                        "mqtt_disconnected", broker=self.broker, error=err, buffered=len(self._buffer)
                    )
                elif backoff == 0.5:
                    self._log.warning("mqtt_unavailable", broker=self.broker, error=err)
                self.connected.clear()
                MQTT_CONNECTED.set(0)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _send(self, client: Any) -> None:
        while True:
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._buffer[i] for i in range(min(WINDOW, len(self._buffer)))]
            # gather starts the publishes in order, so they reach the broker in order
            await asyncio.gather(*(client.publish(t, b, qos=q, retain=r) for _, t, b, q, r in batch))
            last = batch[-1][0]
            while self._buffer and self._buffer[0][0] <= last:  # overflow may have dropped some already
                self._buffer.popleft()
            EVENTS_PUBLISHED.inc(len(batch))
            MQTT_BUFFERED.set(len(self._buffer))

    async def _receive(self, client: Any) -> None:
        assert self.on_message is not None
        async for msg in client.messages:
            payload = (
                msg.payload if isinstance(msg.payload, bytes | bytearray) else str(msg.payload or "").encode()
            )
            # One update at a time, in arrival order: each is a list version built on the last.
            try:
                answer = await self.on_message(bytes(payload))
            except Exception as e:  # a bug must not lose the update silently: say so on the ack topic
                self._log.error("mqtt_message_failed", error=f"{type(e).__name__}: {e}", exc_info=True)
                answer = ("lists/ack", {"ok": False, "error": f"internal error: {type(e).__name__}"})
            if answer is not None:
                topic, body = answer
                self._enqueue(f"{self.prefix}/{topic}", json.dumps(body, default=str).encode(), 1)

    async def close(self, timeout: float = 1.0) -> None:
        """Give buffered events a moment to leave, say ``offline``, then stop."""
        if self._task is None:
            return
        deadline = time.monotonic() + timeout
        while self._buffer and self.connected.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.connected.is_set():
            # the goodbye: a clean disconnect does not fire the will, so say it ourselves
            self._enqueue(self.status_topic, self._status("offline"), 1, retain=True)
            while self._buffer and self.connected.is_set() and time.monotonic() < deadline + 0.5:
                await asyncio.sleep(0.02)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        MQTT_CONNECTED.set(0)


def _retrieve_disconnect(client: Any) -> None:
    """aiomqtt 2.5 leaves the exception of a lost connection in a future nobody reads (its
    ``__aexit__`` returns early), and asyncio prints "Future exception was never retrieved" at exit."""
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()


def _reason(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_reason(x) for x in e.exceptions)
    return str(e) or type(e).__name__
