"""The EIR's NRF client: registers the N5g-eir service with an NRF (TS 29.510 NFManagement) when
``n5g.nrf`` is set, keeps the registration alive with heartbeats and deregisters on stop.

The protocol — what to send when, what an answer means, the back-off — is the sans-IO
:class:`protocols.sbi.NrfRegistration`; this adapter sends its requests with httpx (HTTP/2 with
prior knowledge for ``http://``, as NRFs such as Open5GS's and free5GC's accept; ALPN h2 for
``https://``), feeds the answers back and sleeps until its timer.

Each state has a log line and a metric: ``eir_nrf_state{state}`` is 1 for the current state
(registering, registered, retrying, deregistering, deregistered), ``eir_nrf_requests_total
{operation, outcome}`` counts register/heartbeat/deregister by outcome (the HTTP status, or
``unreachable``). The EIR serves whatever the NRF does: registration runs beside the listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import uuid
from typing import Any

import httpx
from prometheus_client import Counter, Gauge

from eir.config import N5gConfig, parse_hostport
from eir.logging import get_logger
from eir.metrics import register_metrics
from protocols.sbi import (
    Deregistered,
    HeartbeatAcknowledged,
    NrfEvent,
    NrfRegistration,
    NrfRequest,
    NrfState,
    Registered,
    RegistrationFailed,
    eir_profile,
)

__all__ = ["NRF_REQUESTS", "NRF_STATE", "NrfClient", "advertised", "instance_id"]

NRF_STATE = Gauge("eir_nrf_state", "NRF registration state (1: current)", ["state"], registry=None)
NRF_REQUESTS = Counter(
    "eir_nrf_requests",
    "Requests to the NRF by operation and outcome",
    ["operation", "outcome"],
    registry=None,
)
_STATES = [s.value for s in NrfState if s is not NrfState.IDLE]


def advertised(cfg: N5gConfig, bound: tuple[str, int]) -> tuple[str, int]:
    """The host and port the NFProfile names: ``n5g.nrf_advertise`` (its port defaults to the bound
    one), else the bound address; a wildcard address becomes this host's name."""
    host, port = bound
    if cfg.nrf_advertise:
        a = cfg.nrf_advertise.strip()
        try:
            host, port = parse_hostport(a, "n5g.nrf_advertise")
        except Exception:
            host = a.strip("[]")
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            host = socket.getfqdn()
    return host, port


def instance_id(cfg: N5gConfig, host: str, port: int) -> str:
    """``n5g.nf_instance_id``, else a UUID derived from the advertised address (stable across
    restarts: the NRF replaces the old profile instead of holding two)."""
    if cfg.nf_instance_id:
        return str(uuid.UUID(cfg.nf_instance_id))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"eir-emulator:5G_EIR:{host}:{port}"))


class NrfClient:
    """Registration of one EIR with one NRF (module docstring)."""

    def __init__(
        self,
        nrf: str,
        profile: dict[str, Any],
        *,
        heartbeat: float = 10.0,
        retry_max: float = 30.0,
        timeout: float = 3.0,
        ca: str | None = None,
    ) -> None:
        self.base = nrf.rstrip("/")
        self.core = NrfRegistration(profile, heartbeat=heartbeat, retry_max=retry_max)
        self.timeout = timeout
        self.ca = ca
        self.log = get_logger(component="nrf", nrf=self.base, nf_instance_id=self.core.instance_id)
        self.registered = asyncio.Event()
        """Set while the NRF holds the profile (tests and scripts wait on it)."""
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        register_metrics(NRF_STATE, NRF_REQUESTS)
        for s in _STATES:
            NRF_STATE.labels(s).set(0)

    @property
    def state(self) -> NrfState:
        return self.core.state

    def start(self) -> None:
        https = self.base.startswith("https:")
        verify: ssl.SSLContext | bool = True
        if https and self.ca:
            verify = ssl.create_default_context(cafile=self.ca)
        self._client = httpx.AsyncClient(http1=https, http2=True, timeout=self.timeout, verify=verify)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nrf-registration")

    async def stop(self) -> None:
        """Deregister (DELETE) when registered, then close."""
        loop = asyncio.get_running_loop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        req = self.core.stop(loop.time())
        if req is not None:
            self._set_state()
            status, body = await self._send(req)
            self._events(self.core.receive_response(status, body, loop.time()))
        self._set_state()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        req: NrfRequest | None = self.core.start(loop.time())
        self._set_state()
        self.log.info("nrf_registering", profile=self.core.profile.get("nfServiceList"))
        while True:
            if req is not None:
                status, body = await self._send(req)
                self._events(self.core.receive_response(status, body, loop.time()))
            deadline = self.core.get_timer()
            if deadline is None:  # nothing left to do (cannot happen before stop)
                return
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            req = self.core.handle_timer(loop.time())
            self._set_state()

    async def _send(self, req: NrfRequest) -> tuple[int | None, bytes]:
        assert self._client is not None
        try:
            r = await self._client.request(
                req.method, self.base + req.path, content=req.body or None, headers=list(req.headers)
            )
        except (httpx.HTTPError, OSError) as e:
            NRF_REQUESTS.labels(req.operation, "unreachable").inc()
            self.log.debug("nrf_request_failed", operation=req.operation, error=f"{type(e).__name__}: {e}")
            return None, b""
        except Exception as e:  # anything else httpx may raise: the registration must go on
            NRF_REQUESTS.labels(req.operation, "unreachable").inc()
            self.log.warning("nrf_request_error", operation=req.operation, error=f"{type(e).__name__}: {e}")
            return None, b""
        NRF_REQUESTS.labels(req.operation, str(r.status_code)).inc()
        return r.status_code, r.content

    def _events(self, events: list[NrfEvent]) -> None:
        for ev in events:
            match ev:
                case Registered():
                    self.registered.set()
                    self.log.info("nrf_registered", status=ev.status, heartbeat=ev.heartbeat, again=ev.again)
                case HeartbeatAcknowledged():
                    self.log.debug("nrf_heartbeat", status=ev.status)
                case RegistrationFailed():
                    self.registered.clear()
                    self.log.warning(
                        "nrf_registration_failed",
                        operation=ev.operation,
                        reason=ev.reason,
                        retry_in=ev.retry_in,
                    )
                case Deregistered():
                    self.registered.clear()
                    self.log.info("nrf_deregistered", status=ev.status)
        self._set_state()

    def _set_state(self) -> None:
        current = self.core.state.value
        for s in _STATES:
            NRF_STATE.labels(s).set(1 if s == current else 0)


def from_config(cfg: N5gConfig, bound: tuple[str, int], scheme: str) -> NrfClient:
    """The client for ``n5g.nrf`` with the EIR's NFProfile (``bound``: the N5g listener's address)."""
    assert cfg.nrf is not None
    host, port = advertised(cfg, bound)
    nf_id = instance_id(cfg, host, port)
    profile = eir_profile(nf_id, host=host, port=port, scheme=scheme, heartbeat=cfg.nrf_heartbeat)
    return NrfClient(
        cfg.nrf, profile, heartbeat=float(cfg.nrf_heartbeat), retry_max=cfg.nrf_retry_max, ca=cfg.nrf_ca
    )
