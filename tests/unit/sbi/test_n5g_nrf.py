"""The NRF registration core (protocols/sbi/nrf.py), stepped with explicit time: register,
heartbeat at the NRF's timer, re-register after a 404 heartbeat (NRF restart), back-off while the
NRF is away, deregister; the NFProfile and the heartbeat PATCH validated against TS 29.510's own
OpenAPI file (openapi-core), and discovery answers read back."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sbi import (
    Deregistered,
    HeartbeatAcknowledged,
    NrfRegistration,
    NrfState,
    Registered,
    RegistrationFailed,
    discovery_target,
    eir_profile,
    read_search_result,
)

SPECS = Path(__file__).resolve().parents[3] / "specs" / "3gpp"
NFM = "TS29510_Nnrf_NFManagement.yaml"
NF_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@cache
def registry() -> Any:
    """The 3GPP files of specs/3gpp as one $ref registry. TS29510 NFManagement also refers to
    files not kept here (TS29503 UDM, TS29520 …) for NFProfile members this EIR never sends: those
    references become ``{}`` (anything), every other one is resolved and enforced."""
    import yaml
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    present = {p.name for p in SPECS.glob("*.yaml")}

    def prune(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#") and ref.split("#")[0] not in present:
                return {}
            return {k: prune(v) for k, v in node.items()}
        if isinstance(node, list):
            return [prune(v) for v in node]
        return node

    resources = [
        (name, Resource.from_contents(prune(yaml.safe_load((SPECS / name).read_text())), DRAFT4))
        for name in sorted(present)
    ]
    return Registry().with_resources(resources)


def validate(instance: Any, schema_ref: str) -> None:
    """``instance`` against ``{NFM}#/components/schemas/…`` (OpenAPI 3.0 schema rules): raises
    jsonschema's ValidationError on a violation."""
    from openapi_schema_validator import OAS30Validator

    OAS30Validator({"$ref": f"{NFM}#/components/schemas/{schema_ref}"}, registry=registry()).validate(
        instance
    )


def validate_request(method: str, path: str, body: bytes, content_type: str) -> None:
    """A PUT body is an NFProfile; a PATCH body an array of CommonData PatchItem (minItems 1)."""
    assert path.startswith("/nnrf-nfm/v1/nf-instances/")
    data = json.loads(body)
    if method == "PUT":
        assert content_type == "application/json"
        validate(data, "NFProfile")
    else:
        assert content_type == "application/json-patch+json" and isinstance(data, list) and data
        from openapi_schema_validator import OAS30Validator

        for item in data:
            OAS30Validator(
                {"$ref": "TS29571_CommonData.yaml#/components/schemas/PatchItem"}, registry=registry()
            ).validate(item)


def test_the_schema_check_refuses_a_bad_profile() -> None:
    """The validator is not vacuous: a wrong nfStatus type, no address, bad versions, a bad timer."""
    from jsonschema.exceptions import ValidationError

    good = eir_profile(NF_ID, host="192.0.2.10", port=8000)
    validate(good, "NFProfile")
    bad: list[dict[str, Any]] = [
        {**good, "nfStatus": 5},  # (3GPP enums are extensible: any string passes)
        {k: v for k, v in good.items() if k != "ipv4Addresses"},
        {**good, "nfServiceList": {"x": {**good["nfServiceList"]["n5g-eir-eic"], "versions": "v1"}}},
        {**good, "heartBeatTimer": "ten"},
    ]
    for b in bad:
        with pytest.raises(ValidationError):
            validate(b, "NFProfile")


def registration(**kw: Any) -> NrfRegistration:
    return NrfRegistration(eir_profile(NF_ID, host="192.0.2.10", port=8000), **kw)


def nrf_answer(heartbeat: int) -> bytes:
    return json.dumps(
        {"nfInstanceId": NF_ID, "nfType": "5G_EIR", "nfStatus": "REGISTERED", "heartBeatTimer": heartbeat}
    ).encode()


@pytest.mark.parametrize("host", ["192.0.2.10", "2001:db8::10", "eir.example.org"])
def test_register_request_is_a_valid_nfregister(host: str) -> None:
    reg = NrfRegistration(eir_profile(NF_ID, host=host, port=8000, heartbeat=7))
    req = reg.start(0.0)
    assert (req.method, req.path) == ("PUT", f"/nnrf-nfm/v1/nf-instances/{NF_ID}")
    assert dict(req.headers)["content-type"] == "application/json"
    validate_request(req.method, req.path, req.body, "application/json")
    p = json.loads(req.body)
    assert (p["nfType"], p["nfStatus"], p["allowedNfTypes"]) == ("5G_EIR", "REGISTERED", ["AMF"])
    svc = p["nfServiceList"]["n5g-eir-eic"]
    assert svc["serviceName"] == "n5g-eir-eic" and svc["versions"][0]["apiVersionInUri"] == "v1"
    assert svc["ipEndPoints"][0]["port"] == 8000
    # and the discovery side finds it again at the right apiRoot
    want = f"http://{f'[{host}]' if ':' in host else host}:8000"
    body = json.dumps({"validityPeriod": 60, "nfInstances": [p]}).encode()
    assert [e.api_root for e in read_search_result(body)] == [want]


def test_heartbeat_at_the_nrf_timer_then_deregister() -> None:
    reg = registration(heartbeat=10.0)
    reg.start(0.0)
    assert reg.receive_response(201, nrf_answer(3), 0.1) == [
        Registered(status=201, heartbeat=3.0, again=False)
    ]
    assert reg.state is NrfState.REGISTERED and reg.get_timer() == pytest.approx(3.1)
    assert reg.handle_timer(3.0) is None  # early: nothing (safe to call)
    hb = reg.handle_timer(3.1)
    assert hb is not None and (hb.method, hb.operation) == ("PATCH", "heartbeat")
    assert dict(hb.headers)["content-type"] == "application/json-patch+json"
    validate_request("PATCH", hb.path, hb.body, "application/json-patch+json")
    assert json.loads(hb.body) == [{"op": "replace", "path": "/nfStatus", "value": "REGISTERED"}]
    assert reg.receive_response(204, b"", 3.2) == [HeartbeatAcknowledged(status=204)]
    assert reg.get_timer() == pytest.approx(6.2)
    bye = reg.stop(4.0)
    assert bye is not None and (bye.method, bye.path) == ("DELETE", f"/nnrf-nfm/v1/nf-instances/{NF_ID}")
    assert reg.get_timer() is None
    assert reg.receive_response(204, b"", 4.1) == [Deregistered(status=204)]
    assert reg.state is NrfState.DEREGISTERED


def test_heartbeat_404_registers_again_at_once() -> None:
    reg = registration()
    reg.start(0.0)
    reg.receive_response(201, nrf_answer(5), 0.0)
    reg.handle_timer(5.0)
    assert reg.receive_response(404, b"{}", 5.0) == [
        RegistrationFailed(operation="heartbeat", reason="not_found", retry_in=0.0)
    ]
    put = reg.handle_timer(5.0)
    assert put is not None and put.method == "PUT"
    assert reg.receive_response(201, nrf_answer(5), 5.1) == [
        Registered(status=201, heartbeat=5.0, again=True)
    ]


def test_back_off_while_the_nrf_is_away_is_bounded() -> None:
    reg = registration(retry_max=8.0)
    now = 0.0
    reg.start(now)
    delays = []
    for _ in range(6):
        [ev] = reg.receive_response(None, b"", now)
        assert isinstance(ev, RegistrationFailed) and ev.reason == "unreachable"
        delays.append(ev.retry_in)
        deadline = reg.get_timer()
        assert deadline is not None
        now = deadline
        req = reg.handle_timer(now)
        assert req is not None and req.method == "PUT"
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    [ev] = reg.receive_response(503, b"", now)
    assert isinstance(ev, RegistrationFailed) and ev.reason == "http 503"
    # never registered: stopping sends nothing
    assert reg.stop(now) is None and reg.state is NrfState.DEREGISTERED


def test_nrf_answer_without_usable_heartbeat_keeps_ours() -> None:
    reg = registration(heartbeat=12.0)
    reg.start(0.0)
    [ev] = reg.receive_response(200, b'{"heartBeatTimer": "soon"}', 0.0)
    assert isinstance(ev, Registered) and ev.heartbeat == 12.0


def test_discovery_target_and_bad_search_results() -> None:
    assert discovery_target() == "/nnrf-disc/v1/nf-instances?target-nf-type=5G_EIR&requester-nf-type=AMF"
    for bad in (b"", b"[]", b'{"nfInstances": 3}', b"not json"):
        with pytest.raises(ValueError):
            read_search_result(bad)
    other = {"nfInstanceId": NF_ID, "nfType": "5G_EIR", "nfServices": [{"serviceName": "x"}]}
    assert read_search_result(json.dumps({"nfInstances": [other, 7]}).encode()) == []


_ANSWER = st.one_of(
    st.none(),
    st.sampled_from([200, 201, 204, 400, 404, 500, 503]),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["answer", "timer", "wait"]), _ANSWER, st.booleans()), max_size=40
    )
)
def test_any_sequence_of_answers_and_timers_keeps_the_core_sane(
    steps: list[tuple[str, int | None, bool]],
) -> None:
    """Whatever the NRF answers (or not) and whenever the timer fires: no exception, one request
    outstanding at most, a timer whenever nothing is outstanding, back-off never above retry_max,
    and stop() sends a DELETE exactly when the NRF may hold the profile."""
    reg = registration(retry_max=8.0)
    now = 0.0
    outstanding = reg.start(now) is not None
    for kind, status, good_body in steps:
        if kind == "answer" and outstanding:
            body = nrf_answer(4) if good_body else b"\xff"
            for ev in reg.receive_response(status, body, now):
                if isinstance(ev, RegistrationFailed):
                    assert 0 <= ev.retry_in <= 8.0
            outstanding = False
        elif kind == "timer":
            t = reg.get_timer()
            if t is not None:
                now = max(now, t)
                req = reg.handle_timer(now)
                if req is not None:
                    assert not outstanding
                    outstanding = True
        else:
            now += 0.5
            if reg.handle_timer(now) is not None:  # safe to call at any time
                assert not outstanding
                outstanding = True
        if not outstanding:
            assert reg.get_timer() is not None
    was_registered = reg.state in (NrfState.REGISTERED, NrfState.REGISTERING) or reg._was_registered
    bye = reg.stop(now)
    assert (bye is not None) == (was_registered and reg.state is NrfState.DEREGISTERING)
    assert reg.get_timer() is None
