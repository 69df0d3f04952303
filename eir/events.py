"""Events published over MQTT (aiomqtt): verdicts, clone suspicions, peer and list changes.

Publishing never blocks or fails a check: ``publish`` puts the event on a bounded queue and a
background task sends it; when the broker is down or the queue is full the event is dropped and
counted (``eir_events_dropped``); what the queue holds is sent once the broker is back. The task
reconnects with a capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Protocol
from urllib.parse import urlparse

from eir.logging import get_logger
from eir.metrics import EVENTS_DROPPED


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


class MqttEvents:
    """Bounded-queue MQTT publisher. QoS 0 for verdicts (volume), QoS 1 for the rest."""

    def __init__(
        self, url: str, topic_prefix: str = "eir", *, queue_size: int = 10_000, client_id: str | None = None
    ) -> None:
        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp", ""):
            raise ValueError(f"mqtt.url: unsupported scheme {u.scheme!r} (use mqtt://host:port)")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 1883
        self.username = u.username
        self.password = u.password
        self.prefix = topic_prefix.rstrip("/")
        self.client_id = client_id
        self._queue: asyncio.Queue[tuple[str, bytes, int]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(component="mqtt")
        self.connected = asyncio.Event()

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        body = dict(payload)
        body.setdefault("ts", time.time())
        qos = 0 if topic.startswith("verdict") else 1
        try:
            self._queue.put_nowait((f"{self.prefix}/{topic}", json.dumps(body, default=str).encode(), qos))
        except asyncio.QueueFull:
            EVENTS_DROPPED.inc()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def _run(self) -> None:
        import aiomqtt

        backoff = 0.5
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self.username,
                    password=self.password,
                    identifier=self.client_id,
                    timeout=5,
                ) as client:
                    self._log.info("mqtt_connected", broker=f"{self.host}:{self.port}")
                    self.connected.set()
                    backoff = 0.5
                    while True:
                        topic, body, qos = await self._queue.get()
                        await client.publish(topic, body, qos=qos)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # broker down, refused, dropped: keep the (bounded) queue, retry
                if self.connected.is_set():
                    self._log.warning("mqtt_disconnected", error=str(e))
                elif backoff == 0.5:
                    self._log.warning("mqtt_unavailable", broker=f"{self.host}:{self.port}", error=str(e))
                self.connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def close(self, timeout: float = 1.0) -> None:
        """Give queued events a moment to leave, then stop."""
        if self._task is None:
            return
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and self.connected.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
