"""DiameterPeer: the transition table over every pair, CER/CEA, watchdog with stepped time, DPR,
pipelining, and every error answer (each answer also decoded by python-diameter)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.diameter import (
    CapabilitiesExchanged,
    CloseReason,
    ConnectionClosed,
    DisconnectRequested,
    EquipmentCheckAnswered,
    EquipmentCheckRequested,
    EquipmentStatus,
    LocalProtocolError,
    PeerState,
    ProtocolErrorOccurred,
    RemoteProtocolError,
    WatchdogAnswered,
    WatchdogSuspect,
)
from protocols.diameter import dictionary as d
from protocols.diameter.codec import Avp, decode_avps, encode_raw
from protocols.diameter.dictionary import APP_RELAY, APP_S13, VENDOR_3GPP
from protocols.diameter.peer import TRANSITIONS, Input

from .helpers import (
    EIR_HOST,
    IMEI,
    MME_HOST,
    TW,
    cer,
    ecr,
    ecr_message,
    ecr_with,
    initiator,
    messages,
    open_pair,
    pd,
    pd_avp,
    responder,
)

ORIGIN = d.ORIGIN_HOST.encode(MME_HOST) + d.ORIGIN_REALM.encode("lab")
EIR_ORIGIN = d.ORIGIN_HOST.encode(EIR_HOST) + d.ORIGIN_REALM.encode("localdomain")
S13_VSAI = d.VENDOR_SPECIFIC_APPLICATION_ID.encode(
    d.VENDOR_ID.encode(VENDOR_3GPP) + d.AUTH_APPLICATION_ID.encode(APP_S13)
)


def cea(code: int = 2001, hbh: int = 1001) -> bytes:
    body = d.RESULT_CODE.encode(code) + EIR_ORIGIN + d.HOST_IP_ADDRESS.encode("127.0.0.1")
    body += d.VENDOR_ID.encode(0) + d.PRODUCT_NAME.encode("x") + S13_VSAI
    return encode_raw(257, 0, 0, hbh, hbh, body)


def dwr(hbh: int = 9) -> bytes:
    return encode_raw(280, 0x80, 0, hbh, hbh, ORIGIN)


def dwa(hbh: int = 9) -> bytes:
    return encode_raw(280, 0, 0, hbh, hbh, d.RESULT_CODE.encode(2001) + EIR_ORIGIN)


def dpr(hbh: int = 11) -> bytes:
    return encode_raw(282, 0x80, 0, hbh, hbh, ORIGIN + d.DISCONNECT_CAUSE.encode(2))


def dpa(hbh: int = 11) -> bytes:
    return encode_raw(282, 0, 0, hbh, hbh, d.RESULT_CODE.encode(2001) + EIR_ORIGIN)


def eca(hbh: int = 555) -> bytes:
    body = d.SESSION_ID.encode("s;1") + d.RESULT_CODE.encode(2001) + d.AUTH_SESSION_STATE.encode(1)
    body += EIR_ORIGIN + d.EQUIPMENT_STATUS.encode(0)
    return encode_raw(324, 0x40, APP_S13, hbh, hbh, body)


def types(events: list[Any]) -> list[type]:
    return [type(e) for e in events]


# --- RFC 6733 §5.6, every (state, input) pair, through the public API ------------------------------
#
# The expectations below are written from the RFC text, not read from peer.TRANSITIONS: a wrong table
# entry fails here. Our five states map onto the RFC's as follows (one transport connection per core,
# so no election: the adapter owns the socket):
#   WAIT_CER  the responder's "logic separate from the state machine" of §5.6.1, which waits for the
#             first CER (R-Conn-CER in Closed: R-Accept, Process-CER, R-Snd-CEA → R-Open)
#   WAIT_CEA  Wait-I-CEA (the initiator sent its CER)
#   OPEN      R-Open / I-Open (the responder is driven here: the EIR is responder-mostly)
#   CLOSING   Closing
#   CLOSED    Closed, for good (a new connection gets a new core)
# The inputs name §5.6.2's events: Rcv-CER (accepted or refused, §5.3), Rcv-CEA (2001 or not), Rcv-DWR,
# Rcv-DWA, Rcv-DPR, Rcv-DPA, Rcv-Message split into a request (an ECR) and an answer (an ECA), Send-
# Message, Stop, the RFC 3539 watchdog's Tw, Timeout and Peer-Disc.
#
# Each entry: (next state, what goes on the wire, the event delivered to the application or None, and
# — when the pair is not a line of the RFC's table or we deviate from it — why).

S, EV = PeerState, Input
NOW = 2.0
REFUSED = "LocalProtocolError"  # a local command refused: nothing changes, nothing is sent
NOTHING: tuple[str, ...] = ()

_NOT_CEA = "Wait-I-CEA: I-Rcv-Non-CEA → Error → Closed"
_BEFORE_CER = "§5.6.1: the logic waiting for CER SHOULD close and discard the connection on any other message"
_ANSWERED_3010 = (
    "deviation: before closing (§5.6.1) a request is answered 3010 DIAMETER_UNKNOWN_PEER with the E bit, "
    "so that a misconfigured MME sees why it was cut off"
)
_NO_SEND = "Send-Message exists only in the Open states: the command is refused locally, the wire untouched"
_NO_STOP_YET = (
    "Stop is listed only for the Open states; before the capabilities exchange there is no DPR to send"
)
_NO_WATCHDOG = (
    "the RFC 3539 watchdog runs only on an open connection: a timer wake-up before the state's own deadline"
)
_UNSOLICITED = (
    "not in §5.6 (Rcv-Message excludes CER/CEA/DPR/DPA/DWR/DWA): an unsolicited answer is discarded"
)
_CER_AGAIN = (
    "deviation: RFC 6733 lists no CER on an open connection (R-Conn-CER is a CER on a new one, answered by "
    "R-Reject); we answer it 5012 and keep the connection as the first CER set it up"
)
_DPA_THEN_CLOSE = (
    "deviation: RFC 6733 has R-Rcv-DPR → R-Snd-DPA → Closing, leaving the disconnect to the DPA's receiver "
    "(§5.4); we close once the DPA is queued (RFC 3588's R-Snd-DPA, R-Disc → Closed). The adapter flushes "
    "the DPA before closing the transport, and it reports a close only from the core's ConnectionClosed, "
    "which a peer resetting the connection after the DPA (python-diameter's Node does) would never produce "
    "in Closing"
)
_CLOSING_EXTRA = "not in §5.6 for Closing: requests and answers already in flight are still served (§5.4)"

Expect = tuple[PeerState | str, tuple[str, ...], type | None, str]

RFC_6733: dict[tuple[PeerState, Input], Expect] = {
    # Wait-CER (§5.6.1, then Closed / R-Conn-CER)
    (S.WAIT_CER, EV.RCV_CER_OK): (
        S.OPEN,
        ("CEA 2001",),
        CapabilitiesExchanged,
        "R-Accept, Process-CER, R-Snd-CEA",
    ),
    (S.WAIT_CER, EV.RCV_CER_REJECT): (
        S.CLOSED,
        ("CEA 5010",),
        None,
        "§5.3: MUST answer 5010, SHOULD disconnect",
    ),
    (S.WAIT_CER, EV.RCV_CEA_OK): (S.CLOSED, NOTHING, None, _BEFORE_CER),
    (S.WAIT_CER, EV.RCV_CEA_FAIL): (S.CLOSED, NOTHING, None, _BEFORE_CER),
    (S.WAIT_CER, EV.RCV_DWR): (S.CLOSED, ("DWA 3010 E",), None, _ANSWERED_3010),
    (S.WAIT_CER, EV.RCV_DWA): (S.CLOSED, NOTHING, None, _BEFORE_CER),
    (S.WAIT_CER, EV.RCV_DPR): (S.CLOSED, ("DPA 3010 E",), None, _ANSWERED_3010),
    (S.WAIT_CER, EV.RCV_DPA): (S.CLOSED, NOTHING, None, _BEFORE_CER),
    (S.WAIT_CER, EV.RCV_REQUEST): (S.CLOSED, ("ECA 3010 E",), None, _ANSWERED_3010),
    (S.WAIT_CER, EV.RCV_ANSWER): (S.CLOSED, NOTHING, None, _BEFORE_CER),
    (S.WAIT_CER, EV.SEND_REQUEST): (REFUSED, NOTHING, None, _NO_SEND),
    (S.WAIT_CER, EV.STOP): (S.CLOSED, NOTHING, None, _NO_STOP_YET),
    (S.WAIT_CER, EV.WATCHDOG): (S.WAIT_CER, NOTHING, None, _NO_WATCHDOG),
    (S.WAIT_CER, EV.TIMEOUT): (
        S.CLOSED,
        NOTHING,
        None,
        "§5.6.1: an implementation-defined timeout before CER",
    ),
    (S.WAIT_CER, EV.PEER_DISC): (S.CLOSED, NOTHING, None, "the connection is gone"),
    # Wait-I-CEA
    (S.WAIT_CEA, EV.RCV_CER_OK): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_CER_REJECT): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_CEA_OK): (S.OPEN, NOTHING, CapabilitiesExchanged, "I-Rcv-CEA → Process-CEA → I-Open"),
    (S.WAIT_CEA, EV.RCV_CEA_FAIL): (
        S.CLOSED,
        NOTHING,
        None,
        "I-Rcv-CEA → Process-CEA: a CEA refusing us (5010 …) leaves nothing to open (§5.3), so Error",
    ),
    (S.WAIT_CEA, EV.RCV_DWR): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_DWA): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_DPR): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_DPA): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_REQUEST): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.RCV_ANSWER): (S.CLOSED, NOTHING, None, _NOT_CEA),
    (S.WAIT_CEA, EV.SEND_REQUEST): (REFUSED, NOTHING, None, _NO_SEND),
    (S.WAIT_CEA, EV.STOP): (S.CLOSED, NOTHING, None, _NO_STOP_YET),
    (S.WAIT_CEA, EV.WATCHDOG): (S.WAIT_CEA, NOTHING, None, _NO_WATCHDOG),
    (S.WAIT_CEA, EV.TIMEOUT): (S.CLOSED, NOTHING, None, "Timeout → Error → Closed"),
    (S.WAIT_CEA, EV.PEER_DISC): (S.CLOSED, NOTHING, None, "I-Peer-Disc → I-Disc → Closed"),
    # R-Open / I-Open
    (S.OPEN, EV.RCV_CER_OK): (S.OPEN, ("CEA 5012",), None, _CER_AGAIN),
    (S.OPEN, EV.RCV_CER_REJECT): (S.OPEN, ("CEA 5012",), None, _CER_AGAIN),
    (S.OPEN, EV.RCV_CEA_OK): (S.OPEN, NOTHING, None, _UNSOLICITED),
    (S.OPEN, EV.RCV_CEA_FAIL): (S.OPEN, NOTHING, None, _UNSOLICITED),
    (S.OPEN, EV.RCV_DWR): (S.OPEN, ("DWA 2001",), None, "R-Rcv-DWR → Process-DWR, R-Snd-DWA → R-Open"),
    (S.OPEN, EV.RCV_DWA): (S.OPEN, NOTHING, WatchdogAnswered, "R-Rcv-DWA → Process-DWA → R-Open"),
    (S.OPEN, EV.RCV_DPR): (S.CLOSED, ("DPA 2001",), DisconnectRequested, _DPA_THEN_CLOSE),
    (S.OPEN, EV.RCV_DPA): (S.OPEN, NOTHING, None, _UNSOLICITED),
    (S.OPEN, EV.RCV_REQUEST): (S.OPEN, NOTHING, EquipmentCheckRequested, "R-Rcv-Message → Process → R-Open"),
    (S.OPEN, EV.RCV_ANSWER): (S.OPEN, NOTHING, EquipmentCheckAnswered, "R-Rcv-Message → Process → R-Open"),
    (S.OPEN, EV.SEND_REQUEST): (S.OPEN, ("ECR",), None, "Send-Message → R-Snd-Message → R-Open"),
    (S.OPEN, EV.STOP): (S.CLOSING, ("DPR",), None, "Stop → R-Snd-DPR → Closing"),
    (S.OPEN, EV.WATCHDOG): (S.OPEN, ("DWR",), None, "RFC 3539 §3.4.1: Tw without traffic → DWR"),
    (S.OPEN, EV.TIMEOUT): (
        S.CLOSED,
        NOTHING,
        None,
        "RFC 3539: no DWA within 2·Tw (SUSPECT, then DOWN) → close",
    ),
    (S.OPEN, EV.PEER_DISC): (S.CLOSED, NOTHING, None, "R-Peer-Disc → R-Disc → Closed"),
    # Closing
    (S.CLOSING, EV.RCV_CER_OK): (S.CLOSING, NOTHING, None, "not in §5.6 for Closing: ignored"),
    (S.CLOSING, EV.RCV_CER_REJECT): (S.CLOSING, NOTHING, None, "not in §5.6 for Closing: ignored"),
    (S.CLOSING, EV.RCV_CEA_OK): (S.CLOSING, NOTHING, None, _UNSOLICITED),
    (S.CLOSING, EV.RCV_CEA_FAIL): (S.CLOSING, NOTHING, None, _UNSOLICITED),
    (S.CLOSING, EV.RCV_DWR): (
        S.CLOSING,
        ("DWA 2001",),
        None,
        "not in §5.6 for Closing: answered, so that the peer's watchdog does not fail it meanwhile",
    ),
    (S.CLOSING, EV.RCV_DWA): (S.CLOSING, NOTHING, WatchdogAnswered, "not in §5.6 for Closing: noted"),
    (S.CLOSING, EV.RCV_DPR): (
        S.CLOSED,
        ("DPA 2001",),
        DisconnectRequested,
        "not in §5.6 for Closing (both sides sent DPR): answered and closed as in Open",
    ),
    (S.CLOSING, EV.RCV_DPA): (S.CLOSED, NOTHING, None, "R-Rcv-DPA → R-Disc → Closed"),
    (S.CLOSING, EV.RCV_REQUEST): (S.CLOSING, NOTHING, EquipmentCheckRequested, _CLOSING_EXTRA),
    (S.CLOSING, EV.RCV_ANSWER): (S.CLOSING, NOTHING, EquipmentCheckAnswered, _CLOSING_EXTRA),
    (S.CLOSING, EV.SEND_REQUEST): (REFUSED, NOTHING, None, _NO_SEND),
    (S.CLOSING, EV.STOP): (S.CLOSED, NOTHING, None, "not in §5.6 for Closing: a second Stop closes at once"),
    (S.CLOSING, EV.WATCHDOG): (S.CLOSING, NOTHING, None, _NO_WATCHDOG),
    (S.CLOSING, EV.TIMEOUT): (S.CLOSED, NOTHING, None, "Timeout → Error → Closed"),
    (S.CLOSING, EV.PEER_DISC): (S.CLOSED, NOTHING, None, "R-Peer-Disc → R-Disc → Closed"),
    # Closed: the connection is over; only Start and R-Conn-CER leave Closed, and both start a new one
    **{
        (S.CLOSED, i): (S.CLOSED, NOTHING, None, "Closed: nothing applies to a finished connection")
        for i in EV
    },
    (S.CLOSED, EV.SEND_REQUEST): (REFUSED, NOTHING, None, _NO_SEND),
}


def _in(state: PeerState) -> tuple[Any, int]:
    """A peer in ``state`` reached through the public API, its output drained; and the hop-by-hop id
    of a request it sent and still waits for (OPEN, CLOSING), which the RCV_ANSWER input answers."""
    outstanding = 0
    if state is S.WAIT_CER:
        peer = responder()
    elif state is S.WAIT_CEA:
        peer = initiator()
    else:
        peer, _ = open_pair()
        outstanding = peer.send_request(ecr_message(hbh=0), 0.5)
        if state is S.CLOSING:
            peer.close(1.0)
        elif state is S.CLOSED:
            peer.receive_data(b"", 1.0)
    peer.data_to_send()
    assert peer.state is state
    return peer, outstanding


def _tick(peer: Any) -> list[Any]:
    at = peer.get_timer()
    return list(peer.handle_timer(at if at is not None else 1e9))


def _input(peer: Any, inp: Input, outstanding: int) -> list[Any]:
    """Apply ``inp`` with public calls only: bytes in, commands, or time."""
    wire = {
        EV.RCV_CER_OK: cer,
        EV.RCV_CER_REJECT: lambda: cer(d.AUTH_APPLICATION_ID.encode(4)),
        EV.RCV_CEA_OK: lambda: cea(hbh=1001),  # the initiator's CER went out with hop-by-hop 1001
        EV.RCV_CEA_FAIL: lambda: cea(5010, hbh=1001),
        EV.RCV_DWR: dwr,
        EV.RCV_DWA: dwa,
        EV.RCV_DPR: dpr,
        EV.RCV_DPA: dpa,
        EV.RCV_REQUEST: ecr,
        EV.RCV_ANSWER: lambda: eca(outstanding),
    }.get(inp)
    if wire is not None:
        return list(peer.receive_data(wire(), NOW))
    if inp is EV.SEND_REQUEST:
        peer.send_request(ecr_message(hbh=0), NOW)
        return []
    if inp is EV.STOP:
        return list(peer.close(NOW))
    if inp is EV.PEER_DISC:
        return list(peer.receive_data(b"", NOW))
    if inp is EV.WATCHDOG:
        if peer.state is S.OPEN:  # Tw after the last traffic, no DWR outstanding
            return _tick(peer)
        return list(peer.handle_timer(NOW))  # before WAIT_CER/WAIT_CEA's Tw and CLOSING's DPA timeout
    assert inp is EV.TIMEOUT
    if peer.state is S.OPEN:  # RFC 3539: the DWR at Tw, SUSPECT at 2·Tw, then DOWN
        _tick(peer)
        _tick(peer)
        peer.data_to_send()
    return _tick(peer)


def _on_wire(data: bytes) -> tuple[str, ...]:
    """What was sent, read by python-diameter: ``CEA 2001``, ``ECA 3010 E``, ``DWR`` …"""
    names = {257: "CE", 280: "DW", 282: "DP", 324: "EC"}
    out = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        m = pd(data[pos : pos + length])
        h = m.header
        if h.is_request:
            out.append(names[h.command_code] + "R")
        else:
            out.append(f"{names[h.command_code]}A {pd_avp(m, 268)}" + (" E" if h.is_error else ""))
        pos += length
    return tuple(out)


def test_the_rfc_table_is_total() -> None:
    assert set(RFC_6733) == {(s, i) for s in PeerState for i in Input} == set(TRANSITIONS)


@pytest.mark.parametrize(("state", "inp"), list(RFC_6733), ids=lambda v: v.name)
def test_every_transition(state: PeerState, inp: Input) -> None:
    expected_state, expected_wire, delivered, _why = RFC_6733[(state, inp)]
    peer, outstanding = _in(state)
    if expected_state == REFUSED:
        with pytest.raises(LocalProtocolError):
            _input(peer, inp, outstanding)
        assert peer.state is state and peer.data_to_send() == b""
        return
    events = _input(peer, inp, outstanding)
    assert peer.state is expected_state
    assert _on_wire(peer.data_to_send()) == expected_wire
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    if expected_state is S.CLOSED and state is not S.CLOSED:
        assert len(closed) == 1 and events[-1] is closed[0] and isinstance(closed[0].reason, CloseReason)
    else:
        assert not closed
    app = [type(e) for e in events if not isinstance(e, ConnectionClosed | ProtocolErrorOccurred)]
    assert app == ([delivered] if delivered else [])


# --- why a connection closed: every CloseReason, each reached by driving the core ----------------


def _cea_without_origin_host() -> bytes:
    return encode_raw(257, 0, 0, 1001, 1001, d.RESULT_CODE.encode(2001) + S13_VSAI)


def _watchdog_down(p: Any) -> list[Any]:
    return [*_tick(p), *_tick(p), *_tick(p)]


CLOSE_DRIVERS: dict[CloseReason, tuple[Any, Any]] = {
    # reason: (a peer factory, what happens to it) — public calls only
    CloseReason.LOCAL: (responder, lambda p: p.close(1.0)),
    CloseReason.PEER_DISCONNECTED: (lambda: open_pair()[0], lambda p: p.receive_data(b"", 1.0)),
    CloseReason.TIMEOUT: (responder, lambda p: p.handle_timer(TW)),
    CloseReason.WATCHDOG: (lambda: open_pair()[0], _watchdog_down),
    CloseReason.DPR: (lambda: open_pair()[0], lambda p: [*p.close(1.0), *p.receive_data(dpa(1), 1.1)]),
    CloseReason.DPA_TIMEOUT: (lambda: open_pair()[0], lambda p: [*p.close(1.0), *_tick(p)]),
    CloseReason.PEER_DPR: (lambda: open_pair()[0], lambda p: p.receive_data(dpr(), 1.0)),
    CloseReason.CER_INVALID: (responder, lambda p: p.receive_data(cer(omit=(269,)), 1.0)),
    CloseReason.NO_COMMON_APPLICATION: (
        responder,
        lambda p: p.receive_data(cer(d.AUTH_APPLICATION_ID.encode(4)), 1.0),
    ),
    CloseReason.CEA_INVALID: (initiator, lambda p: p.receive_data(_cea_without_origin_host(), 1.0)),
    CloseReason.CEA_REJECTED: (initiator, lambda p: p.receive_data(cea(5010), 1.0)),
    CloseReason.PROTOCOL_ERROR: (responder, lambda p: p.receive_data(ecr(), 1.0)),
}


def test_every_close_reason_has_a_way_there() -> None:
    assert set(CLOSE_DRIVERS) == set(CloseReason)


@pytest.mark.parametrize("reason", list(CloseReason), ids=lambda r: r.name)
def test_every_close_reason_is_reached(reason: CloseReason) -> None:
    make, drive_it = CLOSE_DRIVERS[reason]
    peer = make()
    closed = [e for e in drive_it(peer) if isinstance(e, ConnectionClosed)]
    assert len(closed) == 1 and type(closed[0].reason) is CloseReason and closed[0].reason is reason
    assert peer.state is PeerState.CLOSED
    assert f"closed_{closed[0].reason}" == f"closed_{reason.value}"  # the metric label stays the string


# --- capabilities exchange ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "apps",
    [
        S13_VSAI,
        d.AUTH_APPLICATION_ID.encode(APP_S13),
        d.AUTH_APPLICATION_ID.encode(APP_RELAY),
        d.AUTH_APPLICATION_ID.encode(4) + S13_VSAI,
    ],
    ids=["vendor-specific", "auth-app-id", "relay", "among-others"],
)
def test_cer_accepted(apps: bytes) -> None:
    eir = responder()
    ev = eir.receive_data(cer(apps), 1.0)
    assert types(ev) == [CapabilitiesExchanged]
    assert ev[0].peer_host == MME_HOST and ev[0].product_name == "test"
    assert eir.state is PeerState.OPEN
    m = pd(eir.data_to_send())
    assert type(m).__name__ == "CapabilitiesExchangeAnswer"
    assert m.result_code == 2001 and m.origin_host == EIR_HOST.encode()
    assert m.host_ip_address == ["127.0.0.1"] or m.host_ip_address[0] in ("127.0.0.1", (1, "127.0.0.1"))
    assert m.product_name == "eir-emulator" and m.vendor_id == 0
    assert APP_S13 in m.auth_application_id
    assert m.vendor_specific_application_id[0].auth_application_id == APP_S13
    assert VENDOR_3GPP in m.supported_vendor_id


def test_cer_without_common_application_is_refused_5010_and_closed() -> None:
    eir = responder()
    ev = eir.receive_data(cer(d.AUTH_APPLICATION_ID.encode(16777251)), 1.0)
    assert types(ev) == [ProtocolErrorOccurred, ConnectionClosed]
    assert ev[1].reason == "no-common-application" and ev[1].result_code == 5010
    m = pd(eir.data_to_send())
    assert m.result_code == 5010 and not m.header.is_error
    assert "16777252" in m.error_message
    assert eir.state is PeerState.CLOSED


def test_cer_missing_mandatory_avp_gets_5005_with_failed_avp() -> None:
    eir = responder()
    ev = eir.receive_data(cer(omit=(269,)), 1.0)
    assert isinstance(ev[0], ProtocolErrorOccurred) and ev[0].result_code == 5005
    assert isinstance(ev[-1], ConnectionClosed)
    m = pd(eir.data_to_send())
    assert m.result_code == 5005
    assert m.failed_avp.additional_avps[0].code == 269


def test_request_before_cer_is_refused_3010_and_closed() -> None:
    eir = responder()
    ev = eir.receive_data(ecr(), 1.0)
    assert types(ev) == [ProtocolErrorOccurred, ConnectionClosed]
    m = pd(eir.data_to_send())
    assert m.header.is_error and m.result_code == 3010
    assert m.session_id == "mme.lab;1;1"
    assert eir.state is PeerState.CLOSED


def test_second_cer_on_open_connection_is_refused_but_stays_open() -> None:
    eir, _ = open_pair()
    eir.receive_data(cer(hbh=77), 1.0)
    m = pd(eir.data_to_send())
    assert m.result_code == 5012 and m.header.hop_by_hop_identifier == 77
    assert eir.state is PeerState.OPEN


def test_initiator_cea_failure_closes() -> None:
    mme = initiator()
    mme.data_to_send()
    ev = mme.receive_data(cea(5010), 1.0)
    assert (
        isinstance(ev[-1], ConnectionClosed)
        and ev[-1].reason == "cea-rejected"
        and ev[-1].result_code == 5010
    )


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (encode_raw(257, 0, 0, 1001, 1001, b"\0\0\1\x07\x41\0\0\x0cabcd"), CloseReason.CEA_INVALID),
        (
            encode_raw(280, 0x80, 0, 9, 9, ORIGIN + Avp(99999, 0x40, 0, b"x").encode()),
            CloseReason.PROTOCOL_ERROR,
        ),
        (encode_raw(280, 0x88, 0, 9, 9, ORIGIN), CloseReason.PROTOCOL_ERROR),
        (encode_raw(324, 0x40, APP_S13, 9, 9, b"\0\0\1\x07\x41\0\0\x0cabcd"), CloseReason.PROTOCOL_ERROR),
    ],
    ids=["cea-bad-avp-bits", "dwr-unknown-mandatory-avp", "dwr-bad-header-bits", "answer-bad-avp-bits"],
)
def test_initiator_closes_on_a_malformed_message_while_waiting_for_cea(
    wire: bytes, reason: CloseReason
) -> None:
    # RFC 6733 §5.6 Wait-I-CEA: I-Rcv-Non-CEA → Error → Closed, however malformed; nothing answered
    mme = initiator()
    mme.data_to_send()
    ev = mme.receive_data(wire, 1.0)
    assert types(ev) == [ProtocolErrorOccurred, ConnectionClosed] and not ev[0].answered
    assert ev[1].reason is reason and ev[1].result_code == ev[0].result_code
    assert mme.state is PeerState.CLOSED and mme.data_to_send() == b""


def test_initiator_cer_is_decoded_by_python_diameter() -> None:
    mme = initiator()
    m = pd(mme.data_to_send())
    assert type(m).__name__ == "CapabilitiesExchangeRequest"
    assert m.origin_host == MME_HOST.encode() and m.vendor_id == 0 and m.product_name == "eir-emulator"


# --- watchdog (RFC 3539) with stepped time ----------------------------------------------------


def test_no_cer_within_tw_closes() -> None:
    eir = responder()
    assert eir.get_timer() == TW
    assert eir.handle_timer(TW - 0.1) == []
    ev = eir.handle_timer(TW)
    assert types(ev) == [ConnectionClosed] and ev[0].reason == "timeout"
    assert eir.get_timer() is None


def test_watchdog_dwr_suspect_then_close() -> None:
    eir, _ = open_pair(0.0)
    assert eir.get_timer() == TW
    assert eir.handle_timer(TW - 1) == [] and eir.data_to_send() == b""
    assert eir.handle_timer(TW) == []
    m = pd(eir.data_to_send())
    assert type(m).__name__ == "DeviceWatchdogRequest" and m.origin_host == EIR_HOST.encode()
    assert eir.get_timer() == 2 * TW
    assert types(eir.handle_timer(2 * TW)) == [WatchdogSuspect]
    assert eir.get_timer() == 3 * TW
    ev = eir.handle_timer(3 * TW)
    assert types(ev) == [ConnectionClosed] and ev[0].reason == "watchdog"


def test_dwa_restores_watchdog() -> None:
    eir, mme = open_pair(0.0)
    eir.handle_timer(TW)
    mme_events = mme.receive_data(eir.data_to_send(), TW + 1)
    assert mme_events == []
    dwa_bytes = mme.data_to_send()
    m = pd(dwa_bytes)
    assert type(m).__name__ == "DeviceWatchdogAnswer" and m.result_code == 2001
    assert types(eir.receive_data(dwa_bytes, TW + 1)) == [WatchdogAnswered]
    assert eir.get_timer() == 2 * TW + 1


def test_watchdog_jitter_stays_within_two_seconds_and_replays() -> None:
    def deadlines(seed: int) -> list[float]:
        eir = responder(watchdog_jitter=2.0, identifier_seed=seed)
        eir.receive_data(cer(), 0.0)
        eir.data_to_send()
        out = []
        now = 0.0
        for _ in range(20):
            at = eir.get_timer()
            assert at is not None
            out.append(at - now)
            eir.handle_timer(at)  # DWR
            now = at + 0.5
            eir.receive_data(dwa(eir_hbh(eir.data_to_send())), now)  # DWA re-arms with a fresh jitter
        return out

    d1 = deadlines(7)
    assert all(TW - 2.0 <= x <= TW + 2.0 for x in d1)
    assert len({round(x, 6) for x in d1}) > 10  # it does vary
    assert d1 == deadlines(7)  # and is reproducible from the seed


def eir_hbh(wire: bytes) -> int:
    return int.from_bytes(wire[12:16], "big")


def test_traffic_postpones_the_watchdog() -> None:
    eir, mme = open_pair(0.0)
    mme.send_ecr(20.0, session_id="s;1", imei=IMEI)
    eir.receive_data(mme.data_to_send(), 20.0)
    assert eir.get_timer() == 20.0 + TW
    assert eir.handle_timer(TW) == [] and eir.data_to_send() == b""


def test_dwr_answered_in_open_and_closing() -> None:
    eir, _ = open_pair()
    eir.receive_data(dwr(5), 1.0)
    assert pd(eir.data_to_send()).result_code == 2001
    eir.close(2.0)
    eir.data_to_send()
    eir.receive_data(dwr(6), 2.5)
    m = pd(eir.data_to_send())
    assert type(m).__name__ == "DeviceWatchdogAnswer" and m.header.hop_by_hop_identifier == 6


# --- DPR / DPA -----------------------------------------------------------------------------


def test_peer_dpr_is_answered_and_closes() -> None:
    eir, _ = open_pair()
    ev = eir.receive_data(dpr(), 1.0)
    assert types(ev) == [DisconnectRequested, ConnectionClosed]
    assert ev[0].cause == 2 and ev[1].reason is CloseReason.PEER_DPR
    m = pd(eir.data_to_send())
    assert type(m).__name__ == "DisconnectPeerAnswer" and m.result_code == 2001


def test_second_cer_does_not_change_the_peer_identity() -> None:
    eir, _ = open_pair()
    other = cer(d.AUTH_APPLICATION_ID.encode(4), hbh=78).replace(MME_HOST.encode(), b"xyz.lab")
    ev = eir.receive_data(other, 1.0)
    assert types(ev) == [ProtocolErrorOccurred] and ev[0].result_code == 5012
    assert (eir.peer_host, eir.peer_realm, eir.state) == (MME_HOST, "lab", PeerState.OPEN)


def test_local_close_sends_dpr_and_waits_for_dpa() -> None:
    eir, mme = open_pair()
    assert eir.close(1.0) == []
    assert eir.state is PeerState.CLOSING
    wire = eir.data_to_send()
    m = pd(wire)
    assert type(m).__name__ == "DisconnectPeerRequest" and m.disconnect_cause == 0
    ev = mme.receive_data(wire, 1.1)
    assert types(ev) == [DisconnectRequested, ConnectionClosed]
    ev = eir.receive_data(mme.data_to_send(), 1.2)
    assert ev == [ConnectionClosed(reason=CloseReason.DPR)]


def test_dpa_timeout() -> None:
    eir, _ = open_pair()
    eir.close(1.0)
    assert eir.get_timer() == 6.0
    ev = eir.handle_timer(6.0)
    assert types(ev) == [ConnectionClosed] and ev[0].reason == "dpa-timeout"


def test_requests_in_flight_during_closing_still_arrive() -> None:
    eir, _ = open_pair()
    eir.close(1.0)
    ev = eir.receive_data(ecr(), 1.1)
    assert types(ev) == [EquipmentCheckRequested]
    eir.data_to_send()
    eir.send_eca(ev[0], status=EquipmentStatus.WHITELISTED)
    assert pd(eir.data_to_send()).equipment_status == 0


def test_eof_closes() -> None:
    eir, _ = open_pair()
    ev = eir.receive_data(b"", 1.0)
    assert types(ev) == [ConnectionClosed] and ev[0].reason == "peer-disconnected"
    assert eir.receive_data(ecr(), 2.0) == []
    eir.send_eca(
        EquipmentCheckRequested(  # answers after the close are dropped quietly
            hop_by_hop=1,
            end_to_end=1,
            flags=0,
            session_id="s",
            origin_host="h",
            origin_realm="r",
            destination_realm="r",
            destination_host=None,
            imei=IMEI,
            software_version=None,
            meid=None,
            imsi=None,
            session_id_avp=b"",
        ),
        status=EquipmentStatus.WHITELISTED,
    )
    assert eir.data_to_send() == b""


# --- ECR / ECA, pipelining --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "rc", "exp", "status"),
    [
        ({"status": EquipmentStatus.WHITELISTED}, 2001, None, 0),
        ({"status": EquipmentStatus.BLACKLISTED}, 2001, None, 1),
        ({"status": EquipmentStatus.GREYLISTED}, 2001, None, 2),
        ({"experimental_result_code": 5422}, None, 5422, None),
        ({"result_code": 5012, "error_message": "store down"}, 5012, None, None),
    ],
)
def test_eca_variants(kwargs: dict[str, Any], rc: int | None, exp: int | None, status: int | None) -> None:
    eir, mme = open_pair()
    mme.send_ecr(1.0, session_id="mme.lab;9;9", imei=IMEI, software_version="07", imsi="001010000000009")
    (req,) = eir.receive_data(mme.data_to_send(), 1.0)
    assert isinstance(req, EquipmentCheckRequested)
    assert (req.imei, req.software_version, req.imsi, req.origin_host) == (
        IMEI,
        "07",
        "001010000000009",
        MME_HOST,
    )
    eir.send_eca(req, **kwargs)
    wire = eir.data_to_send()
    m = pd(wire)
    assert type(m).__name__ == "MeIdentityCheckAnswer"
    assert m.session_id == "mme.lab;9;9" and m.auth_session_state == 1
    assert m.result_code == rc and m.equipment_status == status
    if exp is not None:
        assert m.experimental_result.experimental_result_code == exp
        assert m.experimental_result.vendor_id == VENDOR_3GPP
    (ans,) = mme.receive_data(wire, 1.1)
    assert isinstance(ans, EquipmentCheckAnswered)
    assert (ans.result_code, ans.experimental_result_code, ans.equipment_status) == (rc, exp, status)


def test_pipelined_requests_answered_out_of_order() -> None:
    eir, mme = open_pair()
    hbhs = [mme.send_ecr(1.0, session_id=f"s;{i}", imei=IMEI) for i in range(40)]
    wire = mme.data_to_send()
    events: list[Any] = []
    for i in range(0, len(wire), 7):  # arbitrary TCP segmentation
        events += eir.receive_data(wire[i : i + 7], 1.0)
    assert [e.hop_by_hop for e in events] == hbhs
    for e in reversed(events):
        eir.send_eca(e, status=EquipmentStatus.GREYLISTED)
    answers = mme.receive_data(eir.data_to_send(), 1.1)
    assert sorted(a.hop_by_hop for a in answers) == sorted(hbhs)
    assert {a.session_id for a in answers} == {f"s;{i}" for i in range(40)}
    assert mme.pending_requests == 0


def test_meid_only_terminal_information() -> None:
    eir, _ = open_pair()
    msg = ecr_message(None, sv=None)
    msg.avps[6] = Avp(1401, 0xC0, VENDOR_3GPP, d.MEID_3GPP2.encode(b"\xa1\x00\x00\x01\x23\x45\x67"))
    from protocols.diameter import encode_message

    (ev,) = eir.receive_data(encode_message(msg), 1.0)
    assert ev.imei is None and ev.meid == b"\xa1\x00\x00\x01\x23\x45\x67"


def test_unknown_answer_is_reported_not_raised() -> None:
    eir, _ = open_pair()
    ev = eir.receive_data(eca(hbh=4242), 1.0)
    assert types(ev) == [ProtocolErrorOccurred] and not ev[0].answered
    assert eir.state is PeerState.OPEN


# --- error answers ----------------------------------------------------------------------------

PROXY = d.PROXY_INFO.encode(d.PROXY_HOST.encode("dra.lab") + d.PROXY_STATE.encode(b"\x01\x02"))


def _ecr_avps(
    *, drop: tuple[int, ...] = (), extra: list[Avp] | None = None, terminal: bytes | None = None
) -> list[Avp]:
    m = ecr_message()
    avps = [a for a in m.avps if a.code not in drop]
    if terminal is not None:
        avps = [Avp(1401, 0xC0, VENDOR_3GPP, terminal) if a.code == 1401 else a for a in avps]
    avps += extra or []
    avps += decode_avps(PROXY, 0, len(PROXY))
    return avps


ERROR_CASES = [
    # (id, request bytes, result code, E bit, failed AVP code or None)
    ("unknown-command", lambda: ecr_with(_ecr_avps(), command=999), 3001, True, None),
    ("unsupported-application", lambda: ecr_with(_ecr_avps(), app=16777251), 3007, True, None),
    ("base-command-wrong-app", lambda: ecr_with(_ecr_avps(), command=280, app=APP_S13), 3007, True, None),
    ("invalid-header-bits", lambda: ecr_with(_ecr_avps(), flags=0xC8), 3008, True, None),
    (
        "invalid-avp-bits",
        lambda: ecr_with(_ecr_avps(extra=[Avp(278, 0x41, 0, b"\0\0\0\1")])),
        3009,
        True,
        278,
    ),
    (
        "unknown-mandatory-avp",
        lambda: ecr_with(_ecr_avps(extra=[Avp(99999, 0x40, 0, b"x")])),
        5001,
        False,
        99999,
    ),
    (
        "unknown-mandatory-vendor-avp",
        lambda: ecr_with(_ecr_avps(extra=[Avp(1, 0xC0, 12345, b"x")])),
        5001,
        False,
        1,
    ),
    ("missing-terminal-information", lambda: ecr_with(_ecr_avps(drop=(1401,))), 5005, False, 1401),
    ("missing-session-id", lambda: ecr_with(_ecr_avps(drop=(263,))), 5005, False, 263),
    ("missing-auth-session-state", lambda: ecr_with(_ecr_avps(drop=(277,))), 5005, False, 277),
    ("missing-destination-realm", lambda: ecr_with(_ecr_avps(drop=(283,))), 5005, False, 283),
    (
        "terminal-information-without-imei",
        lambda: ecr_with(_ecr_avps(terminal=d.SOFTWARE_VERSION.encode("01"))),
        5005,
        False,
        1401,
    ),
    (
        "imei-13-digits",
        lambda: ecr_with(_ecr_avps(terminal=d.IMEI.encode("3512345678901"))),
        5004,
        False,
        1401,
    ),
    ("imei-17-digits", lambda: ecr_with(_ecr_avps(terminal=d.IMEI.encode("3" * 17))), 5004, False, 1401),
    (
        "imei-letters",
        lambda: ecr_with(_ecr_avps(terminal=d.IMEI.encode("35123456789O12"))),
        5004,
        False,
        1401,
    ),
    (
        "imei-not-utf8",
        lambda: ecr_with(_ecr_avps(terminal=Avp(1402, 0xC0, VENDOR_3GPP, b"\xff" * 14).encode())),
        5004,
        False,
        1401,
    ),
    (
        "software-version-3-digits",
        lambda: ecr_with(_ecr_avps(terminal=d.IMEI.encode(IMEI) + d.SOFTWARE_VERSION.encode("123"))),
        5004,
        False,
        1401,
    ),
    (
        "origin-state-id-3-bytes",
        lambda: ecr_with(_ecr_avps(extra=[Avp(278, 0x40, 0, b"\0\0\1")])),
        5014,
        False,
        278,
    ),
    (
        "grouped-member-bad-length",
        lambda: ecr_with(_ecr_avps(terminal=d.IMEI.encode(IMEI) + b"\0\0\5\x7b\xc0\0\0\x20\0\0\x28\xaf")),
        5014,
        False,
        1401,
    ),
    (
        "origin-host-not-ascii",
        lambda: ecr_with([Avp(264, 0x40, 0, "mmé".encode()) if a.code == 264 else a for a in _ecr_avps()]),
        5004,
        False,
        264,
    ),
]


@pytest.mark.parametrize(
    ("request_bytes", "code", "e_bit", "failed"),
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_error_answers(request_bytes: Any, code: int, e_bit: bool, failed: int | None) -> None:
    eir, _ = open_pair()
    ev = eir.receive_data(request_bytes(), 1.0)
    assert types(ev) == [ProtocolErrorOccurred]
    assert ev[0].result_code == code and ev[0].answered
    assert eir.state is PeerState.OPEN  # framing intact: the connection goes on
    wire = eir.data_to_send()
    m = pd(wire)
    assert m.header.is_error is e_bit
    assert m.header.hop_by_hop_identifier == 100 and not m.header.is_request
    assert pd_avp(m, 268) == code
    assert pd_avp(m, 263) == (None if "263" in str(failed) else "mme.lab;1;1")  # Session-Id echoed
    assert pd_avp(m, 264) == EIR_HOST.encode()
    proxies = m.find_avps((284, 0))
    assert len(proxies) == 1 and proxies[0].value[0].value == b"dra.lab"  # Proxy-Info echoed
    fa = m.find_avps((279, 0))
    if failed is None:
        assert not fa
    else:
        assert fa and fa[0].value[0].code == failed
    # and the connection still serves checks
    (ok,) = eir.receive_data(ecr(hbh=101), 1.1)
    assert isinstance(ok, EquipmentCheckRequested)


def test_an_ecr_the_fast_path_declines_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import protocols.diameter.peer as core

    eir, _ = open_pair()
    calls: Counter[str] = Counter()

    def spy(name: str) -> None:
        real = getattr(core, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(core, name, counted)

    for name in ("decode_ecr_raw", "decode_avps", "scan_echo_avps", "encode_message"):
        spy(name)
    declined = ecr_with(_ecr_avps())  # Proxy-Info: not the usual shape
    refused = ecr_with(_ecr_avps(drop=(1401,)), hbh=101)  # 5005, answered with Session-Id and Proxy-Info
    ev = eir.receive_data(declined + refused, 1.0)
    assert types(ev) == [EquipmentCheckRequested, ProtocolErrorOccurred]
    assert calls == Counter({"decode_ecr_raw": 2})  # no generic decode, no re-encoding, no second walk
    m = messages(eir.data_to_send())[0]
    assert m.find(263) is not None and m.find(284) is not None and m.find(279) is not None


def test_unknown_optional_avp_is_ignored() -> None:
    eir, _ = open_pair()
    (ev,) = eir.receive_data(
        ecr_with(_ecr_avps(extra=[Avp(99999, 0x00, 0, b"x"), Avp(7, 0x80, 9, b"y")])), 1.0
    )
    assert isinstance(ev, EquipmentCheckRequested)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (b"\x02\x00\x00\x14\x80\x00\x01\x01" + b"\0" * 12, 5011),
        (b"\x01\x00\x00\x13\x80\x00\x01\x01" + b"\0" * 12, 5015),
        (b"\x01\x00\x00\x16\x80\x00\x01\x01" + b"\0" * 12, 5015),
        (b"\x01\x01\x00\x04\x80\x00\x01\x44" + b"\0" * 12, 5015),  # 65540 > max_message_size
    ],
    ids=["version", "too-short", "not-multiple-of-4", "too-large"],
)
def test_lost_framing_answers_closes_and_raises(header: bytes, code: int) -> None:
    eir, _ = open_pair()
    with pytest.raises(RemoteProtocolError) as e:
        eir.receive_data(header, 1.0)
    assert e.value.result_code == code
    assert eir.state is PeerState.CLOSED
    m = pd(eir.data_to_send())
    assert pd_avp(m, 268) == code
    assert e.value.events[-1] == ConnectionClosed(reason="protocol-error", result_code=code)
    assert isinstance(e.value.events[-2], ProtocolErrorOccurred)


def test_events_before_lost_framing_come_with_the_error() -> None:
    eir, _ = open_pair()
    with pytest.raises(RemoteProtocolError) as e:
        eir.receive_data(ecr(hbh=5) + b"\x02" + b"\0" * 19, 1.0)
    assert types(e.value.events) == [EquipmentCheckRequested, ProtocolErrorOccurred, ConnectionClosed]


def test_malformed_answer_is_dropped_not_raised() -> None:
    _, mme = open_pair()
    bad = encode_raw(324, 0x40, APP_S13, 5, 5, b"\0\0\1\7\x41\0\0\x0cabcd")
    ev = mme.receive_data(bad, 1.0)
    assert types(ev) == [ProtocolErrorOccurred] and ev[0].result_code == 3009 and not ev[0].answered


def test_local_misuse() -> None:
    mme = initiator()
    with pytest.raises(LocalProtocolError):
        mme.send_ecr(0.0, session_id="s", imei=IMEI)
    with pytest.raises(LocalProtocolError):
        type(mme)(role=mme.role, origin_host="a", origin_realm="b", host_ip_addresses=())


# --- fuzz invariant: any bytes → events or RemoteProtocolError ----------------------------------


def _feed(peer: Any, data: bytes) -> None:
    try:
        out = peer.receive_data(data, 1.0)
        assert isinstance(out, list)
    except RemoteProtocolError as e:
        assert peer.state is PeerState.CLOSED
        out = list(e.events)
    out += peer.handle_timer(1000.0)
    _answers_match_the_events(out, peer.data_to_send())


def _answers_match_the_events(events: list[Any], sent: bytes) -> None:
    """Every error reported as answered went out, with its Result-Code; every close says why."""
    codes = []
    pos = 0
    while pos < len(sent):  # by the headers only: an answer may echo a malformed Session-Id as received
        end = pos + int.from_bytes(sent[pos + 1 : pos + 4], "big")
        if not sent[pos + 4] & 0x80:
            p = pos + 20
            while p < end:
                code, alen = (
                    int.from_bytes(sent[p : p + 4], "big"),
                    int.from_bytes(sent[p + 5 : p + 8], "big"),
                )
                if code == 268 and not sent[p + 4] & 0x80:
                    codes.append(int.from_bytes(sent[p + 8 : p + 12], "big"))
                p += (alen + 3) & ~3
        pos = end
    for e in events:
        if isinstance(e, ProtocolErrorOccurred) and e.answered:
            assert e.result_code in codes
            codes.remove(e.result_code)
        elif isinstance(e, ConnectionClosed):
            assert type(e.reason) is CloseReason


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_before_cer(data: bytes) -> None:
    _feed(responder(), data)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_when_open(data: bytes) -> None:
    eir, _ = open_pair()
    _feed(eir, data)


@FUZZ
@given(st.data())
def test_fuzz_mutated_ecr(data: st.DataObject) -> None:
    wire = bytearray(ecr_with(_ecr_avps()))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    eir, _ = open_pair()
    _feed(eir, bytes(wire[:cut]) + bytes(wire[cut:]))


@FUZZ
@given(st.data())
def test_fuzz_mutated_answers_to_initiator(data: st.DataObject) -> None:
    wire = bytearray(cea() + eca(1002) + dwr() + dpa())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    mme = initiator()
    mme.data_to_send()
    _feed(mme, bytes(wire))
