"""The core types every interface shares: a check request in, a verdict out.

Interfaces (S13, MAP, N5g-eir) translate their wire messages into a :class:`CheckRequest` and the
:class:`Verdict` back into their own answer, so the policy and stores never see a protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol


class Status(StrEnum):
    """The verdict's status. WHITE/GREY/BLACK go on the wire as equipment status; UNKNOWN and
    FAILURE become the interface's own errors (S13 5422 / MAP unknownEquipment; S13 5012 / MAP
    systemFailure)."""

    WHITE = "white"
    GREY = "grey"
    BLACK = "black"
    UNKNOWN = "unknown"
    FAILURE = "failure"


class Interface(StrEnum):
    MAP = "map"
    S13 = "s13"
    N5G = "n5g"
    CLI = "cli"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRequest:
    """One IMEI check as an interface received it."""

    imei: str
    """Digits as received: 14 (IMEI), 15 (IMEI + check digit) or 16 (IMEISV). Validity is the
    policy's job, so malformed input is carried as is (any string)."""
    software_version: str | None = None
    """2-digit SVN when the interface carries it apart from the IMEI (S13 Software-Version)."""
    imsi: str | None = None
    msisdn: str | None = None
    interface: Interface = Interface.CLI
    origin: str | None = None
    """Who asked: Diameter Origin-Host, or the MSC/SGSN calling GT / point code."""
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Vendor extras worth logging (e.g. ``{"vendor": "huawei"}``)."""
    meid: str | None = None
    """A 3GPP2 MEID (hex) when the request carried one instead of an IMEI (S13 3GPP2-MEID AVP);
    ``imei`` is then empty. The policy decides what it means, not the adapter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The answer and why: the rule that decided, and the list and entry it used."""

    status: Status
    rule: str
    """Rule id, e.g. ``imei``, ``range``, ``pairing``, ``clone``, ``default``, ``validity``."""
    list_name: str | None = None
    entry: str | None = None
    detail: str = ""

    @property
    def reason(self) -> str:
        parts = [self.rule]
        if self.list_name:
            parts.append(self.list_name)
        if self.entry:
            parts.append(self.entry)
        return ":".join(parts)


def request_factory(
    interface: Interface,
) -> Callable[[str, str | None, str | None, str | None, str | None, Mapping[str, Any]], CheckRequest]:
    """``(imei, software_version, imsi, msisdn, origin, extras)`` → a :class:`CheckRequest` of
    ``interface``, for the adapters' hot path: filled through the slot descriptors, as the frozen
    dataclass ``__init__`` costs an ``object.__setattr__`` per field (≈ 1.2 µs a request); this
    builds the identical frozen object in about half of that. ``extras`` is stored as given: pass a
    shared empty mapping when there are none (nobody mutates it)."""
    names = [f.name for f in fields(CheckRequest)]
    expected = ["imei", "software_version", "imsi", "msisdn", "interface", "origin", "extras", "meid"]
    if names != expected:
        raise RuntimeError(f"CheckRequest fields changed: {names}")  # pragma: no cover
    s_imei, s_sv, s_imsi, s_msisdn, s_iface, s_origin, s_extras, s_meid = (
        getattr(CheckRequest, n).__set__ for n in names
    )
    new = object.__new__

    def make(
        imei: str,
        sv: str | None,
        imsi: str | None,
        msisdn: str | None,
        origin: str | None,
        extras: Mapping[str, Any],
    ) -> CheckRequest:
        r = new(CheckRequest)
        s_imei(r, imei)
        s_sv(r, sv)
        s_imsi(r, imsi)
        s_msisdn(r, msisdn)
        s_iface(r, interface)
        s_origin(r, origin)
        s_extras(r, extras)
        s_meid(r, None)
        return r

    return make


class Checker(Protocol):
    """What every server adapter calls. Implementations never raise for bad input or a store
    outage: those become verdicts (``validity``/``FAILURE``)."""

    async def check(self, request: CheckRequest) -> Verdict: ...
