"""M3UA allow-lists in the SG core (RFC 4666 §3.8.1): ASP Identifier at ASPUP, routing context at
ASPAC; a miss is answered ERR (read back by pycrate) and the association terminated."""

from __future__ import annotations

import struct

import pytest
from pycrate_mobile.M3UA import parse_M3UA

from protocols.sigtran import m3ua
from protocols.sigtran.m3ua import AspState, ErrorCode, M3uaConnection, M3uaSettings, MessageType, Role, Tag

U32 = struct.Struct("!I").pack


def sg(**kw: object) -> M3uaConnection:
    return M3uaConnection(M3uaSettings(role=Role.SG, **kw))  # type: ignore[arg-type]


def err_of(out: bytes) -> tuple[int, dict[int, object]]:
    """(Error Code, {tag: value}) of the one ERR in ``out``, as pycrate reads it."""
    msg, err = parse_M3UA(out)
    assert err == 0 and len(out) == int.from_bytes(out[4:8], "big"), out.hex()
    (_v, _r, cls, typ, _len), params = msg.get_val()
    assert (cls, typ) == (0, 0), "an ERR"
    p = {tag: value for tag, _len, value, _pad in params}
    return int(p[Tag.ERROR_CODE]), p  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([], ErrorCode.ASP_IDENTIFIER_REQUIRED),
        ([(Tag.ASP_IDENTIFIER, U32(99))], ErrorCode.REFUSED_MANAGEMENT_BLOCKING),
    ],
    ids=["none", "not-listed"],
)
def test_aspup_with_an_asp_id_not_allowed(params: list[tuple[int, bytes]], code: ErrorCode) -> None:
    conn = sg(allowed_asp_ids=frozenset({7}))
    events = conn.receive_data(m3ua.encode_message(MessageType.ASPUP, params), 0.0)
    assert [type(e) for e in events] == [m3ua.ErrorSent, m3ua.ConnectionTerminated]
    assert events[0].code is code
    got, _ = err_of(conn.data_to_send())
    assert got == code
    assert conn.state is AspState.DOWN and conn.closed


def test_aspup_with_an_allowed_asp_id_goes_up() -> None:
    conn = sg(allowed_asp_ids=frozenset({7}))
    events = conn.receive_data(m3ua.encode_message(MessageType.ASPUP, [(Tag.ASP_IDENTIFIER, U32(7))]), 0.0)
    assert [type(e) for e in events] == [m3ua.AspStateChanged] and conn.state is AspState.INACTIVE


@pytest.mark.parametrize("rcs", [[], [5], [1, 5]], ids=["none", "other", "one-of-two"])
def test_aspac_with_a_routing_context_not_allowed(rcs: list[int]) -> None:
    conn = sg(allowed_routing_contexts=frozenset({1, 2}))
    conn.receive_data(m3ua.encode_message(MessageType.ASPUP), 0.0)
    conn.data_to_send()
    params = [(Tag.ROUTING_CONTEXT, b"".join(U32(r) for r in rcs))] if rcs else []
    events = conn.receive_data(m3ua.encode_message(MessageType.ASPAC, params), 0.0)
    assert [type(e) for e in events] == [m3ua.ErrorSent, m3ua.ConnectionTerminated]
    got, p = err_of(conn.data_to_send())
    assert got == ErrorCode.INVALID_ROUTING_CONTEXT and p.get(Tag.ROUTING_CONTEXT, []) == rcs
    assert conn.closed


def test_aspac_with_allowed_routing_contexts_goes_active() -> None:
    conn = sg(allowed_routing_contexts=frozenset({1, 2}))
    conn.receive_data(m3ua.encode_message(MessageType.ASPUP), 0.0)
    conn.receive_data(m3ua.encode_message(MessageType.ASPAC, [(Tag.ROUTING_CONTEXT, U32(1) + U32(2))]), 0.0)
    assert conn.state is AspState.ACTIVE
