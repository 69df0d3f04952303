"""schemathesis drives N5g-eir from the 3GPP YAML (TS29511 with its $ref files TS29571 and the two
TS29510 ones, resolved from specs/3gpp): generated queries, valid and invalid, against `eir serve`
over HTTP/1.1 (requests). No answer may be a server error, and every answer's status, content type,
headers and body must be what the YAML documents. Bounded: a fixed number of examples, well under
a minute here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.eirproc import EirProcess

pytestmark = pytest.mark.system

SPEC = Path(__file__).resolve().parents[2] / "specs" / "3gpp" / "TS29511_N5g-eir_EquipmentIdentityCheck.yaml"
LISTS = """imei,status,imsi,reason
49015420323751,white,,Open5GS test PEI
35394206000002,black,,stolen
35394206000003,grey,,watch
"""


@pytest.fixture(scope="module")
def eir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("n5g_schemathesis")
    lists = tmp / "lists.csv"
    lists.write_text(LISTS)
    p = EirProcess(
        tmp / "eir",
        {
            "policy": {"unknown_equipment": "unknown", "clone": {"enabled": False}},
            "lists": {"import_on_start": [str(lists)]},
            "log": {"level": "warning"},
        },
    )
    p.start()
    yield p
    p.stop()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_get_documented_answers(eir: Any, mode: str) -> None:
    import requests
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_path(str(SPEC))
    op = schema["/equipment-status"]["GET"]
    strategy = op.as_strategy(generation_mode=GenerationMode(mode))
    base = f"{eir.n5g_url}/n5g-eir-eic/v1"
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    statuses: set[int] = set()
    with requests.Session() as session:

        @settings(
            max_examples=150,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=strategy, known=st.sampled_from(["imei-490154203237518", "imeisv-3539420600000201", None])
        )
        def run(case: Any, known: str | None) -> None:
            if known is not None and mode == "positive" and isinstance(case.query, dict):
                case.query["pei"] = known  # some listed PEIs too, not only random strings
            r = case.call_and_validate(base_url=base, session=session, checks=checks, timeout=10)
            statuses.add(r.status_code)

        run()
    # the run reached the API's answers, not only one of them
    assert statuses & {400, 404}, statuses
    if mode == "positive":
        assert 200 in statuses, statuses
