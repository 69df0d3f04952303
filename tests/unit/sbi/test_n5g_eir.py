"""The N5g-eir request parser and answers (TS 29.511), sans-IO: every PEI form, every error."""

from __future__ import annotations

import json

import pytest

from protocols.imei import PeiKind
from protocols.sbi import (
    API_PATH,
    Answer,
    EquipmentStatus,
    EquipmentStatusQuery,
    N5gEirOptions,
    answer_status,
    equipment_unknown,
    overloaded,
    parse_request,
    system_failure,
)

OPT = N5gEirOptions()
P = API_PATH + "?pei="


def get(target: str, options: N5gEirOptions = OPT, method: str = "GET") -> EquipmentStatusQuery | Answer:
    return parse_request(method, target, options)


def body(a: EquipmentStatusQuery | Answer) -> dict:
    assert isinstance(a, Answer), a
    assert a.content_type == "application/problem+json"
    pd = json.loads(a.body)
    assert pd["status"] == a.status
    return pd


@pytest.mark.parametrize(
    ("pei", "kind", "digits"),
    [
        ("imei-490154203237518", PeiKind.IMEI, "490154203237518"),
        ("imei-356938035643803", PeiKind.IMEI, "356938035643803"),  # bad Luhn: the policy's call
        ("imeisv-4370816125816151", PeiKind.IMEISV, "4370816125816151"),
        ("490154203237518", PeiKind.BARE, "490154203237518"),
    ],
)
def test_pei_forms_reach_the_checker(pei: str, kind: PeiKind, digits: str) -> None:
    q = get(P + pei)
    assert q == EquipmentStatusQuery(pei=pei, kind=kind, digits=digits)


def test_optional_parameters_and_api_root_prefix() -> None:
    q = get(
        "/deploy/x" + P + "imei-490154203237518&supi=imsi-001010000000001&gpsi=msisdn-491711234567"
        "&supported-features=0a&other=ignored"
    )
    assert isinstance(q, EquipmentStatusQuery)
    assert (q.imsi, q.msisdn, q.supported_features) == ("001010000000001", "491711234567", "0a")
    for supi in ("nai-user@realm", "gci-x", "gli-y"):
        q = get(P + "imei-490154203237518&supi=" + supi)
        assert isinstance(q, EquipmentStatusQuery) and q.supi == supi and q.imsi is None
    q = get(P + "imei-490154203237518&gpsi=extid-a@b")
    assert isinstance(q, EquipmentStatusQuery) and q.msisdn is None
    # percent-encoding is decoded
    q = get(API_PATH + "?pei=imei%2D490154203237518&supi=nai-u%40r")
    assert isinstance(q, EquipmentStatusQuery) and q.digits == "490154203237518" and q.supi == "nai-u@r"


@pytest.mark.parametrize(
    ("target", "cause", "params"),
    [
        (API_PATH, "MANDATORY_QUERY_PARAM_MISSING", ["query pei"]),
        (API_PATH + "?supi=imsi-001010000000001", "MANDATORY_QUERY_PARAM_MISSING", ["query pei"]),
        (P, "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "imei-49015420323751", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "imei-4901542032375188", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "imei-49015420323751x", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "imeisv-490154203237518", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "4901542032375", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "hello", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "mac-00-11", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (
            P + "imei-490154203237518&pei=imei-490154203237518",
            "MANDATORY_QUERY_PARAM_INCORRECT",
            ["query pei"],
        ),
        (P + "imei-%ZZ", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei"]),
        (P + "imei-490154203237518&supi=imsi-12", "OPTIONAL_QUERY_PARAM_INCORRECT", ["query supi"]),
        (P + "imei-490154203237518&supi=bob", "OPTIONAL_QUERY_PARAM_INCORRECT", ["query supi"]),
        (P + "imei-490154203237518&gpsi=msisdn-1x", "OPTIONAL_QUERY_PARAM_INCORRECT", ["query gpsi"]),
        (
            P + "imei-490154203237518&supported-features=xyz",
            "OPTIONAL_QUERY_PARAM_INCORRECT",
            ["query supported-features"],
        ),
        (P + "imei-1&supi=bob", "MANDATORY_QUERY_PARAM_INCORRECT", ["query pei", "query supi"]),
    ],
)
def test_bad_queries_are_400_with_invalid_params(target: str, cause: str, params: list[str]) -> None:
    pd = body(get(target))
    assert pd["status"] == 400 and pd["cause"] == cause
    assert [p["param"] for p in pd["invalidParams"]] == params
    assert all(p["reason"] for p in pd["invalidParams"])


def test_bare_pei_knob() -> None:
    strict = N5gEirOptions(bare_pei=False)
    pd = body(get(P + "490154203237518", strict))
    assert (
        pd["cause"] == "MANDATORY_QUERY_PARAM_INCORRECT"
        and "n5g.bare_pei" in pd["invalidParams"][0]["reason"]
    )


@pytest.mark.parametrize(
    "pei", ["mac-00-11-22-33-44-55", "mac-00-11-22-33-44-55-untrusted", "eui-00-11-22-33-44-55-66-77"]
)
def test_mac_and_eui_peis_per_knob(pei: str) -> None:
    pd = body(get(P + pei))
    assert (pd["status"], pd["cause"]) == (404, "ERROR_EQUIPMENT_UNKNOWN")
    pd = body(get(P + pei, N5gEirOptions(non_imei_pei="bad_request")))
    assert (pd["status"], pd["cause"]) == (400, "MANDATORY_QUERY_PARAM_INCORRECT")


@pytest.mark.parametrize(
    "target",
    ["/", "/n5g-eir-eic/v2/equipment-status?pei=imei-490154203237518", API_PATH + "/x", "x" + API_PATH],
)
def test_other_paths_are_404(target: str) -> None:
    pd = body(get(target))
    assert pd["status"] == 404 and pd["cause"] == "RESOURCE_URI_STRUCTURE_NOT_FOUND"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_are_405_with_allow(method: str) -> None:
    a = get(P + "imei-490154203237518", method=method)
    assert isinstance(a, Answer) and a.status == 405 and ("allow", "GET") in a.headers
    body(a)


def test_over_long_uri_is_414() -> None:
    a = get(P + "imei-490154203237518&x=" + "1" * 3000)
    assert isinstance(a, Answer) and a.status == 414
    body(a)
    assert isinstance(
        get(P + "imei-490154203237518&x=" + "1" * 100, N5gEirOptions(max_uri_length=4096)),
        EquipmentStatusQuery,
    )


def test_answers() -> None:
    for s in EquipmentStatus:
        a = answer_status(s)
        assert (a.status, a.content_type, json.loads(a.body)) == (
            200,
            "application/json",
            {"status": s.value},
        )
    assert body(equipment_unknown())["cause"] == "ERROR_EQUIPMENT_UNKNOWN"
    assert body(equipment_unknown())["status"] == 404
    assert body(system_failure()) == {
        "title": "Internal Server Error",
        "status": 500,
        "detail": "the equipment check failed",
        "cause": "SYSTEM_FAILURE",
    }
    for status, cause in ((503, "NF_CONGESTION"), (429, "NF_CONGESTION_RISK")):
        a = overloaded(status, 2)  # type: ignore[arg-type]
        assert body(a)["cause"] == cause and ("retry-after", "2") in a.headers


def test_any_target_yields_a_query_or_an_answer() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=200), st.sampled_from(["GET", "POST"]))
    def prop(tail: str, method: str) -> None:
        r = parse_request(method, API_PATH + "?" + tail, OPT)
        assert isinstance(r, EquipmentStatusQuery | Answer)
        if isinstance(r, Answer) and r.body:
            json.loads(r.body)

    prop()
