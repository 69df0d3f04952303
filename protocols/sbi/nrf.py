"""NRF registration of an NF (3GPP TS 29.510 V18.5.0 Nnrf_NFManagement §5.2.2.2 register,
§5.2.2.3.2 heartbeat, §5.2.2.4 deregister) and the discovery answer (Nnrf_NFDiscovery §6.2.6.2.2
SearchResult), sans-IO.

:class:`NrfRegistration` is the client's state machine. It never performs I/O or reads a clock:
it hands out :class:`NrfRequest` s (method, path under the NRF's apiRoot, header fields, body) and is
told what came back (:meth:`~NrfRegistration.receive_response`: an HTTP status and body, or ``None``
when the NRF could not be reached)::

    reg = NrfRegistration(profile, heartbeat=10.0, retry_max=30.0)
    req = reg.start(now)                       # PUT /nnrf-nfm/v1/nf-instances/{id} (NFProfile)
    events = reg.receive_response(201, body, now)   # [Registered(heartbeat=…)]
    reg.get_timer() -> float | None            # the next heartbeat or retry
    req = reg.handle_timer(now)                # PATCH (json-patch: nfStatus REGISTERED) or a PUT again
    req = reg.stop(now)                        # DELETE, when registered

* The heartbeat interval is the ``heartBeatTimer`` the NRF returns (it may change ours, §5.2.2.2.2).
* A heartbeat answered 404 means the NRF no longer knows the instance (it restarted): register
  again at once (§5.2.2.3.2: "the NF … shall re-register").
* An NRF that cannot be reached, or answers a registration or heartbeat with anything else, is
  retried with back-off: 1, 2, 4 … seconds, at most ``retry_max`` (a PUT each time: the profile is
  a full replacement, so a retry after an answer that was lost is harmless).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "EIR_SERVICE",
    "NFM_PATH",
    "NF_TYPE_EIR",
    "Deregistered",
    "HeartbeatAcknowledged",
    "NfEndpoint",
    "NrfEvent",
    "NrfRegistration",
    "NrfRequest",
    "NrfState",
    "Registered",
    "RegistrationFailed",
    "discovery_target",
    "eir_profile",
    "read_search_result",
]

NFM_PATH = "/nnrf-nfm/v1/nf-instances"
DISC_PATH = "/nnrf-disc/v1/nf-instances"
NF_TYPE_EIR = "5G_EIR"
EIR_SERVICE = "n5g-eir-eic"
"""ServiceName of N5g-eir EquipmentIdentityCheck (TS 29.510 §6.1.6.3.11)."""
EIR_API_FULL_VERSION = "1.3.0"
"""TS 29.511 V18 (specs/3gpp/TS29511_N5g-eir_EquipmentIdentityCheck.yaml, info.version 1.3.0-alpha.1)."""
HEARTBEAT_PATCH = b'[{"op":"replace","path":"/nfStatus","value":"REGISTERED"}]'
"""§5.2.2.3.2: the heartbeat is a PATCH of nfStatus (a JSON Patch, RFC 6902)."""


def eir_profile(
    instance_id: str,
    *,
    host: str,
    port: int,
    scheme: str = "http",
    heartbeat: int = 10,
    allowed_nf_types: tuple[str, ...] = ("AMF",),
) -> dict[str, Any]:
    """The NFProfile of a 5G-EIR serving ``n5g-eir-eic`` v1 at ``scheme://host:port``.

    ``host`` is an IPv4/IPv6 address (→ ``ipv4Addresses`` / ``ipv6Addresses`` and an
    ``ipEndPoints`` entry) or a name (→ ``fqdn``). The service appears in ``nfServiceList`` (Rel-16
    and later, a map keyed by serviceInstanceId) and in the deprecated ``nfServices`` array that
    Rel-15 NRFs read.
    """
    profile: dict[str, Any] = {
        "nfInstanceId": instance_id,
        "nfType": NF_TYPE_EIR,
        "nfStatus": "REGISTERED",
        "heartBeatTimer": heartbeat,
        "allowedNfTypes": list(allowed_nf_types),
    }
    endpoint: dict[str, Any] = {"transport": "TCP", "port": port}
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        profile["fqdn"] = host
        service_addr: dict[str, Any] = {"fqdn": host}
    else:
        key = "ipv4Address" if ip.version == 4 else "ipv6Address"
        profile[f"{key}es"] = [str(ip)]
        endpoint[key] = str(ip)
        service_addr = {}
    service: dict[str, Any] = {
        "serviceInstanceId": EIR_SERVICE,
        "serviceName": EIR_SERVICE,
        "versions": [{"apiVersionInUri": "v1", "apiFullVersion": EIR_API_FULL_VERSION}],
        "scheme": scheme,
        "nfServiceStatus": "REGISTERED",
        **service_addr,
        "ipEndPoints": [endpoint],
        "allowedNfTypes": list(allowed_nf_types),
    }
    profile["nfServiceList"] = {EIR_SERVICE: service}
    profile["nfServices"] = [service]
    return profile


class NrfState(StrEnum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    RETRYING = "retrying"
    """The last attempt failed; the next PUT is due at the back-off deadline."""
    DEREGISTERING = "deregistering"
    DEREGISTERED = "deregistered"


@dataclass(frozen=True, slots=True, kw_only=True)
class NrfRequest:
    method: str
    path: str
    """Under the NRF's apiRoot (``/nnrf-nfm/v1/nf-instances/{id}``)."""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    operation: str = ""
    """``register``, ``heartbeat`` or ``deregister`` (a metric label)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered:
    """The NRF accepted the profile (201 created, 200 replaced)."""

    status: int
    heartbeat: float
    """Seconds between heartbeats, as the NRF set them."""
    again: bool
    """A registration after the NRF forgot us (heartbeat 404) or after a failure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatAcknowledged:
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationFailed:
    operation: str
    reason: str
    """``unreachable``, ``http 503``, ``not_found`` (the NRF forgot the instance) …"""
    retry_in: float
    """Seconds until the next attempt (0: at once)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deregistered:
    status: int | None
    """The DELETE's answer (204), or None when the NRF could not be reached."""


NrfEvent = Registered | HeartbeatAcknowledged | RegistrationFailed | Deregistered


@dataclass(slots=True)
class NrfRegistration:
    """One NF instance's registration with one NRF (module docstring)."""

    profile: dict[str, Any]
    heartbeat: float = 10.0
    """Used until the NRF returns its own heartBeatTimer."""
    retry_base: float = 1.0
    retry_max: float = 30.0
    state: NrfState = NrfState.IDLE
    _deadline: float | None = None
    _failures: int = 0
    _outstanding: str | None = None
    _was_registered: bool = False
    _stopping: bool = field(default=False)

    @property
    def instance_id(self) -> str:
        return str(self.profile["nfInstanceId"])

    @property
    def path(self) -> str:
        return f"{NFM_PATH}/{self.instance_id}"

    # -- commands -----------------------------------------------------------------------------------
    def start(self, now: float) -> NrfRequest:
        if self.state is not NrfState.IDLE:
            raise RuntimeError(f"start: already {self.state}")
        return self._register()

    def stop(self, now: float) -> NrfRequest | None:
        """DELETE when the NRF holds the profile (or may: a registration is in flight); else None."""
        self._stopping = True
        self._deadline = None
        if self.state in (NrfState.REGISTERED, NrfState.REGISTERING) or (
            self.state is NrfState.RETRYING and self._was_registered
        ):
            self.state = NrfState.DEREGISTERING
            self._outstanding = "deregister"
            return NrfRequest(method="DELETE", path=self.path, operation="deregister")
        self.state = NrfState.DEREGISTERED
        return None

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> NrfRequest | None:
        if self._deadline is None or now < self._deadline or self._outstanding is not None:
            return None
        self._deadline = None
        if self.state is NrfState.REGISTERED:
            self._outstanding = "heartbeat"
            return NrfRequest(
                method="PATCH",
                path=self.path,
                headers=(("content-type", "application/json-patch+json"),),
                body=HEARTBEAT_PATCH,
                operation="heartbeat",
            )
        if self.state is NrfState.RETRYING:
            return self._register()
        return None

    # -- answers ------------------------------------------------------------------------------------
    def receive_response(self, status: int | None, body: bytes, now: float) -> list[NrfEvent]:
        """The answer to the request handed out last (``status`` None: no answer — refused,
        reset, timed out)."""
        op, self._outstanding = self._outstanding, None
        if op is None:
            return []
        if op == "deregister":
            self.state = NrfState.DEREGISTERED
            return [Deregistered(status=status)]
        if op == "register":
            if status in (200, 201):
                again = self._was_registered or self._failures > 0
                self.heartbeat = _heartbeat_of(body, self.heartbeat)
                self._registered(now)
                return [Registered(status=status, heartbeat=self.heartbeat, again=again)]
            return [self._failed(op, status, now)]
        # heartbeat
        if status in (200, 204):
            if status == 200:
                self.heartbeat = _heartbeat_of(body, self.heartbeat)
            self._registered(now)
            return [HeartbeatAcknowledged(status=status)]
        if status == 404:
            # the NRF lost the instance (restarted): register again at once
            self.state = NrfState.RETRYING
            self._deadline = now
            return [RegistrationFailed(operation=op, reason="not_found", retry_in=0.0)]
        return [self._failed(op, status, now)]

    # -- internals ------------------------------------------------------------------------------------
    def _register(self) -> NrfRequest:
        self.state = NrfState.REGISTERING
        self._outstanding = "register"
        self.profile["heartBeatTimer"] = round(self.heartbeat)
        return NrfRequest(
            method="PUT",
            path=self.path,
            headers=(("content-type", "application/json"),),
            body=json.dumps(self.profile, separators=(",", ":")).encode(),
            operation="register",
        )

    def _registered(self, now: float) -> None:
        self.state = NrfState.REGISTERED
        self._was_registered = True
        self._failures = 0
        self._deadline = now + self.heartbeat

    def _failed(self, op: str, status: int | None, now: float) -> RegistrationFailed:
        delay = min(self.retry_max, self.retry_base * (2**self._failures))
        self._failures += 1
        self.state = NrfState.RETRYING
        self._deadline = now + delay
        reason = "unreachable" if status is None else f"http {status}"
        return RegistrationFailed(operation=op, reason=reason, retry_in=delay)


def _heartbeat_of(body: bytes, default: float) -> float:
    """``heartBeatTimer`` of an NFProfile answer (seconds, ≥ 1), else ``default``."""
    try:
        v = json.loads(body).get("heartBeatTimer") if body else None
    except (ValueError, AttributeError):
        return default
    return float(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else default


# --- discovery ----------------------------------------------------------------------------------------


def discovery_target(target_nf_type: str = NF_TYPE_EIR, requester_nf_type: str = "AMF") -> str:
    """``GET`` target of NFDiscovery (TS 29.510 §6.2.3.2.3.1: both query parameters mandatory)."""
    return f"{DISC_PATH}?target-nf-type={target_nf_type}&requester-nf-type={requester_nf_type}"


@dataclass(frozen=True, slots=True)
class NfEndpoint:
    instance_id: str
    api_root: str
    """``scheme://host:port`` (plus the service's apiPrefix, if any)."""


def read_search_result(body: bytes, service: str = EIR_SERVICE) -> list[NfEndpoint]:
    """The apiRoots of ``service`` in a SearchResult, in the NRF's order. Instances without that
    service, or with no usable address, are left out; a body that is not a SearchResult raises
    ValueError."""
    try:
        data = json.loads(body)
        instances = data["nfInstances"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a SearchResult: {e}") from None
    if not isinstance(instances, list):
        raise ValueError("not a SearchResult: nfInstances is not an array")
    out: list[NfEndpoint] = []
    for p in instances:
        if not isinstance(p, dict):
            continue
        services: list[Any] = []
        if isinstance(p.get("nfServiceList"), dict):
            services = list(p["nfServiceList"].values())
        elif isinstance(p.get("nfServices"), list):
            services = p["nfServices"]
        for s in services:
            if not isinstance(s, dict) or s.get("serviceName") != service:
                continue
            root = _api_root(p, s)
            if root is not None:
                out.append(NfEndpoint(str(p.get("nfInstanceId", "")), root))
                break
    return out


def _api_root(profile: dict[str, Any], service: dict[str, Any]) -> str | None:
    scheme = service.get("scheme") if service.get("scheme") in ("http", "https") else "http"
    ends = service.get("ipEndPoints") if isinstance(service.get("ipEndPoints"), list) else []
    end = ends[0] if ends and isinstance(ends[0], dict) else {}
    port = end.get("port") if isinstance(end.get("port"), int) else (443 if scheme == "https" else 80)
    host = service.get("fqdn") or end.get("ipv4Address")
    if not host and end.get("ipv6Address"):
        host = f"[{end['ipv6Address']}]"
    if not host:
        host = profile.get("fqdn")
        for key, fmt in (("ipv4Addresses", "{}"), ("ipv6Addresses", "[{}]")):
            if not host and isinstance(profile.get(key), list) and profile[key]:
                host = fmt.format(profile[key][0])
    if not host:
        return None
    prefix = service.get("apiPrefix") or ""
    return f"{scheme}://{host}:{port}{prefix}"
