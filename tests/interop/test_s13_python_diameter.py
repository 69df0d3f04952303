"""python-diameter's own peer stack (``diameter.node.Node``: CER/CEA, its DWR timers, DPR at stop)
sends ``MeIdentityCheckRequest`` to the EIR and gets the right ``MeIdentityCheckAnswer``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from diameter.message.avp.grouped import TerminalInformation, VendorSpecificApplicationId
from diameter.message.commands import MeIdentityCheckAnswer, MeIdentityCheckRequest
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

from eir.servers.diameter import start
from protocols.diameter.dictionary import APP_S13, VENDOR_3GPP

from .s13_session import Events, TableChecker, s13_config

pytestmark = pytest.mark.interop


def _node_session(port: int, cases: list[tuple[str, str | None]]) -> list[Any]:
    """Runs in a thread: python-diameter's Node is thread-based and blocks."""
    logging.getLogger("diameter").setLevel(logging.WARNING)
    node = Node("mme.pd.lab", "pd.lab", vendor_ids=[VENDOR_3GPP])
    node.idle_timeout = 30
    peer = node.add_peer(
        f"aaa://eir.localdomain:{port};transport=tcp",
        "localdomain",
        ip_addresses=["127.0.0.1"],
        is_persistent=True,
        is_default=True,
    )
    app = SimpleThreadingApplication(
        APP_S13, is_auth_application=True, request_handler=lambda _app, _msg: None
    )
    node.add_application(app, [peer])
    node.start()
    answers = []
    try:
        app.wait_for_ready(timeout=10)
        for i, (imei, sv) in enumerate(cases):
            req = MeIdentityCheckRequest()
            req.session_id = f"mme.pd.lab;42;{i}"
            req.vendor_specific_application_id = VendorSpecificApplicationId(
                vendor_id=VENDOR_3GPP, auth_application_id=APP_S13
            )
            req.auth_session_state = 1
            req.origin_host = b"mme.pd.lab"
            req.origin_realm = b"pd.lab"
            req.destination_realm = b"localdomain"
            req.terminal_information = TerminalInformation(imei=imei, software_version=sv)
            req.user_name = "001010123456789"
            answers.append(app.send_request(req, timeout=5))
    finally:
        node.stop(wait_timeout=5)
    return answers


async def test_python_diameter_node_gets_the_right_answers() -> None:
    checker = TableChecker()
    events = Events()
    server = await start(s13_config(), checker, events)
    try:
        _, port, _ = server.addresses()[0]
        cases = [
            ("15123456789012", "01"),
            ("25123456789012", None),
            ("351234567890123", "07"),
            ("45123456789012", "01"),
            ("55123456789012", "01"),
            ("123", "01"),
        ]
        answers = await asyncio.wait_for(asyncio.to_thread(_node_session, port, cases), 60)
    finally:
        await server.shutdown(2.0)
    assert all(isinstance(a, MeIdentityCheckAnswer) for a in answers)
    got = [
        (
            a.result_code,
            a.equipment_status,
            a.experimental_result.experimental_result_code if a.experimental_result else None,
        )
        for a in answers
    ]
    assert got == [
        (2001, 0, None),
        (2001, 2, None),
        (2001, 1, None),
        (None, None, 5422),
        (5012, None, None),
        (5004, None, None),
    ]
    assert [a.session_id for a in answers] == [f"mme.pd.lab;42;{i}" for i in range(6)]
    assert all(a.origin_host == b"eir.localdomain" and a.auth_session_state == 1 for a in answers)
    assert answers[-1].failed_avp is not None
    # what the checker saw: IMEI digits as received, SV, IMSI from User-Name, Origin-Host
    first = checker.requests[0]
    assert (first.imei, first.software_version, first.imsi, first.origin) == (
        "15123456789012",
        "01",
        "001010123456789",
        "mme.pd.lab",
    )
    assert checker.requests[2].imei == "351234567890123"
    assert checker.requests[1].software_version is None
    # the Node stopped with DPR: the server saw the peer open, then close on its DPR
    peer_events = [p["event"] for t, p in events.published if t == "peer"]
    assert peer_events[:2] == ["connected", "open"] and "closed" in peer_events
