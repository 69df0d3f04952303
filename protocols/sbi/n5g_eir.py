"""N5g-eir EquipmentIdentityCheck, 3GPP TS 29.511 V18.0.0 (API 1.3.0): what one request means and
the answers, sans-IO.

The service has one operation (TS 29.511 §5.2.2.2, OpenAPI ``GetEquipmentStatus``)::

    GET {apiRoot}/n5g-eir-eic/v1/equipment-status?pei=…[&supi=…][&gpsi=…][&supported-features=…]

answered with ``200 application/json {"status": "WHITELISTED" | "BLACKLISTED" | "GREYLISTED"}`` or
an ``application/problem+json`` ProblemDetails (TS 29.571 §5.2.4.1). :func:`parse_request` turns a
request line into an :class:`EquipmentStatusQuery` for the policy or the :class:`Answer` the request
gets without one (bad query, other path or method); :func:`answer_status`, :func:`equipment_unknown`,
:func:`system_failure` and :func:`overloaded` are the answers to a decided check.

Causes are TS 29.500 Table 5.2.7.2-1's (and TS 29.511 §6.1.7.3's ERROR_EQUIPMENT_UNKNOWN; the
Open5GS AMF only treats a 404 *with that cause* as "unknown equipment"). ``invalidParams`` name a
query parameter as ``"query <name>"`` (TS 29.571 InvalidParam).

PEI forms (TS 29.571 §5.3.2 ``Pei``): ``imei-`` + 15 digits and ``imeisv-`` + 16 digits go to the
checker as digits (the policy's one normaliser, :func:`protocols.imei.parse_identity`, decides what
the 15th digit is; the IMEISV reaches the IMEISV rule). What real clients also send is a knob
(:class:`N5gEirOptions`): bare 15 digits (go-eir), and ``mac-…`` / ``eui-…`` (5G-RG / FN-RG wireline
access), which no IMEI list can match.

Answers are immutable and shared: the few bodies a busy EIR sends are encoded once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import quote, unquote

from protocols.imei import PeiKind, parse_pei

__all__ = [
    "API_PATH",
    "Answer",
    "Cause",
    "EirAnswer",
    "EquipmentStatus",
    "EquipmentStatusQuery",
    "N5gEirOptions",
    "answer_status",
    "build_target",
    "equipment_unknown",
    "overloaded",
    "parse_request",
    "problem",
    "read_answer",
    "system_failure",
]

API_PATH = "/n5g-eir-eic/v1/equipment-status"
"""The resource path after ``{apiRoot}`` (TS 29.511 §6.1.1: API name n5g-eir-eic, version v1)."""
API_ROOT_PREFIX = "/n5g-eir-eic/"

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"


class EquipmentStatus(StrEnum):
    """TS 29.511 §6.1.6.3.2 EquipmentStatus."""

    WHITELISTED = "WHITELISTED"
    BLACKLISTED = "BLACKLISTED"
    GREYLISTED = "GREYLISTED"


class Cause(StrEnum):
    """ProblemDetails ``cause`` values this service sends (TS 29.500 Table 5.2.7.2-1, TS 29.511
    Table 6.1.7.3-1)."""

    ERROR_EQUIPMENT_UNKNOWN = "ERROR_EQUIPMENT_UNKNOWN"
    MANDATORY_QUERY_PARAM_MISSING = "MANDATORY_QUERY_PARAM_MISSING"
    MANDATORY_QUERY_PARAM_INCORRECT = "MANDATORY_QUERY_PARAM_INCORRECT"
    OPTIONAL_QUERY_PARAM_INCORRECT = "OPTIONAL_QUERY_PARAM_INCORRECT"
    RESOURCE_URI_STRUCTURE_NOT_FOUND = "RESOURCE_URI_STRUCTURE_NOT_FOUND"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"
    NF_CONGESTION = "NF_CONGESTION"
    """503: the NF is congested (TS 29.500 §6.4)."""
    NF_CONGESTION_RISK = "NF_CONGESTION_RISK"
    """429: excessive traffic that may lead to an overload."""


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    414: "URI Too Long",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class N5gEirOptions:
    """What the request parser accepts beyond the standard PEI forms (``n5g.*`` in the config)."""

    bare_pei: bool = True
    """Accept a PEI of 15 bare digits (no ``imei-`` prefix), as go-eir and some test tools send;
    False: 400 MANDATORY_QUERY_PARAM_INCORRECT."""
    non_imei_pei: Literal["unknown", "bad_request"] = "unknown"
    """A well-formed ``mac-…`` / ``eui-…`` PEI: ``unknown`` → 404 ERROR_EQUIPMENT_UNKNOWN (no IMEI
    list can hold it), ``bad_request`` → 400 MANDATORY_QUERY_PARAM_INCORRECT."""
    max_uri_length: int = 2048
    """A longer request target is answered 414 URI Too Long (TS 29.500 §5.2.7.1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EquipmentStatusQuery:
    """A well-formed GetEquipmentStatus request: what the checker needs, and what was received."""

    pei: str
    """The PEI as received (percent-decoded)."""
    kind: PeiKind
    digits: str
    """The IMEI digits for the checker: 15 (``imei-`` or bare) or 16 (``imeisv-``)."""
    imsi: str | None = None
    """The digits of an ``imsi-`` SUPI."""
    msisdn: str | None = None
    """The digits of an ``msisdn-`` GPSI."""
    supi: str | None = None
    gpsi: str | None = None
    supported_features: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer to send: status, body, its content type and extra header fields."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def problem(
    status: int,
    cause: str | None = None,
    detail: str | None = None,
    invalid_params: list[tuple[str, str]] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Answer:
    """A ProblemDetails answer (TS 29.571 §5.2.4.1, RFC 7807 members ``title`` and ``status``)."""
    pd: dict[str, object] = {"title": _REASONS.get(status, "Error"), "status": status}
    if detail:
        pd["detail"] = detail
    if cause:
        pd["cause"] = cause
    if invalid_params:
        pd["invalidParams"] = [{"param": p, "reason": r} for p, r in invalid_params]
    body = json.dumps(pd, separators=(",", ":"), ensure_ascii=False).encode()
    return Answer(status, body, PROBLEM_JSON, headers)


_STATUS_ANSWERS = {
    s: Answer(200, json.dumps({"status": s.value}, separators=(",", ":")).encode(), JSON)
    for s in EquipmentStatus
}


def answer_status(status: EquipmentStatus) -> Answer:
    """200 with EirResponseData ``{"status": …}`` (TS 29.511 §6.1.6.2.2)."""
    return _STATUS_ANSWERS[status]


_UNKNOWN = problem(404, Cause.ERROR_EQUIPMENT_UNKNOWN, "the equipment is unknown to the 5G-EIR")
_FAILURE = problem(500, Cause.SYSTEM_FAILURE, "the equipment check failed")


def equipment_unknown() -> Answer:
    """404 ERROR_EQUIPMENT_UNKNOWN (TS 29.511 §6.1.7.3): the policy's ``unknown`` verdict."""
    return _UNKNOWN


def system_failure() -> Answer:
    """500 SYSTEM_FAILURE (TS 29.500 Table 5.2.7.2-1): the check failed (store unavailable with
    ``store.on_unavailable: failure``)."""
    return _FAILURE


def overloaded(status: Literal[429, 503], retry_after: int) -> Answer:
    """429 NF_CONGESTION_RISK or 503 NF_CONGESTION with Retry-After seconds (TS 29.500 §6.4,
    RFC 9110 §10.2.3)."""
    cause = Cause.NF_CONGESTION if status == 503 else Cause.NF_CONGESTION_RISK
    return problem(status, cause, "overloaded, retry later", headers=(("retry-after", str(retry_after)),))


_NOT_FOUND = problem(404, Cause.RESOURCE_URI_STRUCTURE_NOT_FOUND, f"the resource is {API_PATH}")
_NOT_ALLOWED = problem(405, None, "only GET is allowed", headers=(("allow", "GET"),))

_MAC = re.compile(r"mac((-[0-9a-fA-F]{2}){6})(-untrusted)?")
_EUI = re.compile(r"eui((-[0-9a-fA-F]{2}){8})")
_IMSI = re.compile(r"imsi-([0-9]{5,15})")
_MSISDN = re.compile(r"msisdn-([0-9]{5,15})")
_EXTID = re.compile(r"extid-[^@]+@[^@]+")
_HEX = re.compile(r"[A-Fa-f0-9]*")
_KNOWN = ("pei", "supi", "gpsi", "supported-features")


def _digits(value: str, n: int) -> bool:
    return len(value) == n and value.isascii() and value.isdigit()


def parse_request(method: str, target: str, options: N5gEirOptions) -> EquipmentStatusQuery | Answer:
    """A request line (method and request target: path and query) → the query to check, or the
    answer it gets as it is (400 / 404 / 405 / 414, module docstring).

    ``{apiRoot}`` may carry a deployment-specific path prefix (TS 29.501 §4.4.1), so any path that
    ends with :data:`API_PATH` is the resource."""
    if len(target) > options.max_uri_length:
        return problem(414, None, f"request target longer than {options.max_uri_length} characters")
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    if not path.endswith(API_PATH) or not path.startswith("/"):
        return _NOT_FOUND
    if method != "GET":
        return _NOT_ALLOWED
    params: dict[str, str] = {}
    bad: list[tuple[str, str]] = []
    if query:
        for part in query.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            if "%" in name:
                name = unquote(name, errors="strict") if _decodable(name) else name
            if name not in _KNOWN:
                continue  # unknown query parameters are ignored
            if "%" in value:
                if not _decodable(value):
                    bad.append((f"query {name}", "bad percent-encoding"))
                    continue
                value = unquote(value, errors="strict")
            if name in params:
                bad.append((f"query {name}", "given more than once"))
                continue
            params[name] = value
    mandatory_missing = False
    mandatory_bad = False
    kind = PeiKind.OTHER
    digits = ""
    pei = params.get("pei")
    if pei is None:
        if not any(p == "query pei" for p, _ in bad):
            bad.insert(0, ("query pei", "missing"))
            mandatory_missing = True
    else:
        kind, value = parse_pei(pei)
        why: str | None = None
        if kind is PeiKind.IMEI:
            why = None if _digits(value, 15) else "imei- must be followed by 15 digits"
        elif kind is PeiKind.IMEISV:
            why = None if _digits(value, 16) else "imeisv- must be followed by 16 digits"
        elif kind is PeiKind.BARE:
            if not options.bare_pei:
                why = "no imei-/imeisv- prefix (bare digits are refused: n5g.bare_pei)"
            elif len(value) != 15:
                why = "bare digits must be 15 (an IMEI)"
        elif kind is PeiKind.MAC or kind is PeiKind.EUI64:
            rx = _MAC if kind is PeiKind.MAC else _EUI
            if rx.fullmatch(pei) is None:
                why = f"not a well-formed {kind.value}- PEI"
            elif options.non_imei_pei == "bad_request":
                why = f"a {kind.value}- PEI is not an IMEI (n5g.non_imei_pei: bad_request)"
        else:
            why = "not an imei-, imeisv-, mac- or eui- PEI"
        if why is not None:
            bad.insert(0, ("query pei", why))
            mandatory_bad = True
        digits = value
    for p, _ in bad:
        if p == "query pei":
            mandatory_bad = mandatory_bad or not mandatory_missing
    imsi = msisdn = None
    supi = params.get("supi")
    if supi is not None:
        m = _IMSI.fullmatch(supi)
        if m is not None:
            imsi = m.group(1)
        elif not (supi.startswith(("nai-", "gci-", "gli-")) and len(supi) > 4):
            bad.append(("query supi", "not an imsi- (5-15 digits), nai-, gci- or gli- SUPI"))
    gpsi = params.get("gpsi")
    if gpsi is not None:
        m = _MSISDN.fullmatch(gpsi)
        if m is not None:
            msisdn = m.group(1)
        elif _EXTID.fullmatch(gpsi) is None:
            bad.append(("query gpsi", "not an msisdn- (5-15 digits) or extid- GPSI"))
    sf = params.get("supported-features")
    if sf is not None and _HEX.fullmatch(sf) is None:
        bad.append(("query supported-features", "not a hexadecimal string"))
    if bad:
        if mandatory_missing:
            cause = Cause.MANDATORY_QUERY_PARAM_MISSING
        elif mandatory_bad:
            cause = Cause.MANDATORY_QUERY_PARAM_INCORRECT
        else:
            cause = Cause.OPTIONAL_QUERY_PARAM_INCORRECT
        return problem(400, cause, bad[0][1] if len(bad) == 1 else "invalid query parameters", bad)
    assert pei is not None  # bad is empty, so pei was given
    if kind is PeiKind.MAC or kind is PeiKind.EUI64:
        return _UNKNOWN
    return EquipmentStatusQuery(
        pei=pei,
        kind=kind,
        digits=digits,
        imsi=imsi,
        msisdn=msisdn,
        supi=supi,
        gpsi=gpsi,
        supported_features=sf,
    )


# --- the client side (a simulated AMF) -------------------------------------------------------------


def build_target(
    pei: str,
    supi: str | None = None,
    gpsi: str | None = None,
    supported_features: str | None = None,
    api_root_path: str = "",
) -> str:
    """The request target of GetEquipmentStatus (``api_root_path``: a deployment-specific prefix)."""
    params = [("pei", pei), ("supi", supi), ("gpsi", gpsi), ("supported-features", supported_features)]
    query = "&".join(f"{k}={quote(v, safe='-@.')}" for k, v in params if v is not None)
    return f"{api_root_path.rstrip('/')}{API_PATH}?{query}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EirAnswer:
    """What an AMF reads from an answer."""

    http_status: int
    status: EquipmentStatus | None = None
    """The equipment status of a 200 answer."""
    cause: str | None = None
    """The ProblemDetails cause of an error answer."""
    problem: dict[str, object] | None = None

    @property
    def unknown(self) -> bool:
        """TS 29.511 §6.1.7.3: 404 with cause ERROR_EQUIPMENT_UNKNOWN (nothing else means it)."""
        return self.http_status == 404 and self.cause == Cause.ERROR_EQUIPMENT_UNKNOWN


def read_answer(http_status: int, body: bytes) -> EirAnswer:
    """A 200 EirResponseData or a ProblemDetails; a body that is neither is kept as no cause."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if http_status == 200:
        st = doc.get("status") if isinstance(doc, dict) else None
        if isinstance(st, str) and st in EquipmentStatus.__members__:
            return EirAnswer(http_status=200, status=EquipmentStatus(st))
        return EirAnswer(http_status=200)
    if isinstance(doc, dict):
        cause = doc.get("cause")
        return EirAnswer(
            http_status=http_status, cause=cause if isinstance(cause, str) else None, problem=doc
        )
    return EirAnswer(http_status=http_status)


_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decodable(s: str) -> bool:
    """Every ``%`` starts a valid escape and the escapes decode as UTF-8."""
    if _PCT.search(s) is not None:
        return False
    try:
        unquote(s, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
