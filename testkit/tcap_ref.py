"""The reference codec: pycrate's ``TCAP_MAPv2v3`` (P1sec), used by tests and benchmarks only.

Independent of :mod:`protocols.sigtran.tcap` / :mod:`protocols.sigtran.map_checkimei`: values are
built from plain fields with pycrate's ASN.1 objects (compiled from the ITU-T / 3GPP modules), so
agreement proves the hand-written codec. Nothing under ``protocols/``, ``eir/``, ``netio/`` or
``simulations/`` may import pycrate (tests/unit/test_layering.py).
``TCAP_MAPv2v3`` picks the v2 (bare IMEI / EquipmentStatus) or v3 (CheckIMEI-Arg / -Res) form of
the parameter by its tag; ``TCAP_MAP`` would silently drop v2 arguments.

pycrate is slow (≈3,400 TCAP+MAP round trips/s) and its objects are module-level singletons, so this
is not for the request path.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ref_aare",
    "ref_aarq",
    "ref_abrt",
    "ref_begin",
    "ref_decode",
    "ref_encode",
    "ref_end",
    "ref_error",
    "ref_fields",
    "ref_reject",
    "ref_result",
]

_DIALOGUE_AS_ID = (0, 0, 17, 773, 1, 1, 1)
_STATUS_NAMES = ("whiteListed", "blackListed", "greyListed")


def _msg() -> Any:
    from pycrate_asn1dir import TCAP_MAPv2v3  # imported lazily: ≈0.2 s

    return TCAP_MAPv2v3.TCAP_MAP_Messages.TCAP_MAP_Message


def ref_encode(value: Any) -> bytes:
    m = _msg()
    m.set_val(value)
    return bytes(m.to_ber())


def ref_decode(data: bytes) -> Any:
    m = _msg()
    m.from_ber(data)
    return m.get_val()


def _ext(pdu: tuple[str, Any]) -> dict[str, Any]:
    return {"direct-reference": _DIALOGUE_AS_ID, "encoding": ("single-ASN1-type", ("DialoguePDU", pdu))}


def ref_aarq(acn: tuple[int, ...]) -> dict[str, Any]:
    return _ext(("dialogueRequest", {"protocol-version": (1, 1), "application-context-name": acn}))


def ref_aare(
    acn: tuple[int, ...], result: int = 0, source: str = "dialogue-service-user", diag: int = 0
) -> Any:
    return _ext(
        (
            "dialogueResponse",
            {
                "protocol-version": (1, 1),
                "application-context-name": acn,
                "result": result,
                "result-source-diagnostic": (source, diag),
            },
        )
    )


def ref_abrt(source: int) -> Any:
    return _ext(("dialogueAbort", {"abort-source": source}))


def _imei_octets(imei: str) -> bytes:
    d = imei + "0" if len(imei) == 14 else imei
    if len(d) % 2:
        d += "f"
    return bytes(int(d[i + 1], 16) << 4 | int(d[i], 16) for i in range(0, len(d), 2))


def ref_begin(
    *, otid: bytes, version: int, invoke_id: int, imei: str, requested_bmuef: bool = False
) -> bytes:
    """A standard checkIMEI Begin, encoded by pycrate."""
    if version < 3:
        arg: Any = ("IMEI", _imei_octets(imei))
    else:
        arg = (
            "CheckIMEI-Arg",
            {"imei": _imei_octets(imei), "requestedEquipmentInfo": ((3 if requested_bmuef else 2), 2)},
        )
    begin: dict[str, Any] = {"otid": otid}
    if version > 1:
        begin["dialoguePortion"] = ref_aarq((0, 4, 0, 0, 1, 0, 13, version))
    begin["components"] = [
        (
            "basicROS",
            ("invoke", {"invokeId": ("present", invoke_id), "opcode": ("local", 43), "argument": arg}),
        )
    ]
    return ref_encode(("begin", begin))


def ref_result(invoke_id: int, version: int, status: int | None, bmuef: dict[str, Any] | None = None) -> Any:
    if version < 3:
        res: Any = ("EquipmentStatus", _STATUS_NAMES[status or 0])
    else:
        body: dict[str, Any] = {}
        if status is not None:
            body["equipmentStatus"] = _STATUS_NAMES[status]
        if bmuef is not None:
            body["bmuef"] = bmuef
        res = ("CheckIMEI-Res", body)
    return (
        "basicROS",
        (
            "returnResult",
            {"invokeId": ("present", invoke_id), "result": {"opcode": ("local", 43), "result": res}},
        ),
    )


def ref_error(invoke_id: int, code: int) -> Any:
    return ("basicROS", ("returnError", {"invokeId": ("present", invoke_id), "errcode": ("local", code)}))


def ref_reject(invoke_id: int | None, kind: str, problem: int) -> Any:
    iid = ("absent", 0) if invoke_id is None else ("present", invoke_id)
    return ("basicROS", ("reject", {"invokeId": iid, "problem": (kind, problem)}))


def ref_end(*, dtid: bytes, version: int, components: list[Any]) -> bytes:
    """An End answering a Begin of ``version`` (AARE accepted for v2/v3), encoded by pycrate."""
    end: dict[str, Any] = {"dtid": dtid}
    if version > 1:
        end["dialoguePortion"] = ref_aare((0, 4, 0, 0, 1, 0, 13, version))
    if components:
        end["components"] = components
    return ref_encode(("end", end))


def ref_fields(data: bytes) -> dict[str, Any]:
    """The fields a test asserts, as pycrate decodes them (flattened)."""
    kind, body = ref_decode(data)
    out: dict[str, Any] = {"kind": kind}
    for k in ("otid", "dtid"):
        if k in body:
            out[k] = body[k]
    dp = body.get("dialoguePortion")
    reason = body.get("reason")
    if reason is not None:
        if reason[0] == "p-abortCause":
            out["p_abort"] = reason[1]
        else:
            dp = reason[1]
    if dp is not None:
        pdu_kind, pdu = dp["encoding"][1][1]
        out["dialogue"] = pdu_kind
        out.update({f"dialogue.{k}": v for k, v in pdu.items()})
    comps = []
    for _, (ckind, c) in body.get("components", []):
        d: dict[str, Any] = {"kind": ckind, "invokeId": c["invokeId"][1]}
        if ckind == "invoke":
            d["opcode"] = c["opcode"][1]
            if "argument" in c:
                d["argument_type"] = c["argument"][0][1]
                d["argument"] = c["argument"][1]
        elif ckind == "returnResult":
            if "result" in c:
                d["opcode"] = c["result"]["opcode"][1]
                d["result_type"] = c["result"]["result"][0][1]
                d["result"] = c["result"]["result"][1]
        elif ckind == "returnError":
            d["errcode"] = c["errcode"][1]
        elif ckind == "reject":
            d["problem"] = c["problem"]
            if c["invokeId"][0] == "absent":
                d["invokeId"] = None
        comps.append(d)
    out["components"] = comps
    return out
