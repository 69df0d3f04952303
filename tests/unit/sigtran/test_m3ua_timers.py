"""M3UA time limits in the sans-IO core (issue 10): set-up (connect → ASP-ACTIVE), idle (no whole
message), and BEAT with the association ended when BEAT ACKs stop. Time is stepped explicitly; the
BEATs the core sends are read back by pycrate."""

from __future__ import annotations

from collections.abc import Sequence

from pycrate_mobile.M3UA import parse_M3UA

from protocols.sigtran import m3ua
from protocols.sigtran.m3ua import (
    AspState,
    ConnectionTerminated,
    M3uaConnection,
    M3uaSettings,
    MessageType,
    Role,
)


def sg(**kw: float) -> M3uaConnection:
    conn = M3uaConnection(M3uaSettings(role=Role.SG, **kw))  # type: ignore[arg-type]
    conn.start(0.0)
    return conn


def asp() -> M3uaConnection:
    return M3uaConnection(M3uaSettings(role=Role.ASP))


def pump(a: M3uaConnection, b: M3uaConnection, now: float) -> list[object]:
    """Exchange what both sides queued until quiet; b's events."""
    events: list[object] = []
    for _ in range(6):
        if out := a.data_to_send():
            events += b.receive_data(out, now)
        if out := b.data_to_send():
            a.receive_data(out, now)
    return events


def terminated(events: Sequence[object]) -> ConnectionTerminated:
    (ev,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    return ev


def pycrate_type(wire: bytes) -> tuple[int, int]:
    msg, err = parse_M3UA(wire)
    assert err == 0
    return msg.get_val()[0][2], msg.get_val()[0][3]


def test_no_aspup_ends_at_the_setup_limit() -> None:
    conn = sg(setup_timeout=30.0)
    assert conn.get_timer() == 30.0
    assert conn.handle_timer(29.9) == []  # early: nothing
    ev = terminated(conn.handle_timer(30.0))
    assert ev.timer == "setup" and conn.closed and conn.get_timer() is None


def test_aspup_without_aspac_still_ends_at_the_setup_limit() -> None:
    conn = sg(setup_timeout=30.0)
    peer = asp()
    peer.start(0.0)
    peer._pending = None  # the ASP never goes on to ASPAC
    conn.receive_data(m3ua.encode_message(MessageType.ASPUP), 1.0)
    assert conn.state is AspState.INACTIVE
    assert terminated(conn.handle_timer(30.0)).timer == "setup"


def test_active_in_time_clears_the_setup_limit() -> None:
    conn = sg(setup_timeout=30.0)
    peer = asp()
    peer.start(0.0)
    pump(peer, conn, 1.0)
    assert conn.state is AspState.ACTIVE and conn.get_timer() is None
    # an override standby going INACTIVE later is not a set-up any more
    conn.receive_data(m3ua.encode_message(MessageType.ASPIA), 40.0)
    assert conn.state.name == "INACTIVE"
    assert conn.handle_timer(100.0) == [] and not conn.closed


def test_idle_limit_counts_from_the_last_whole_message() -> None:
    conn = sg(idle_timeout=60.0)
    peer = asp()
    peer.start(0.0)
    pump(peer, conn, 0.0)
    conn.receive_data(m3ua.encode_message(MessageType.BEAT), 50.0)
    assert conn.handle_timer(60.0) == []  # re-armed from t=50
    assert conn.get_timer() == 110.0
    # a message dribbled byte by byte is no sign of life until it is whole
    beat = m3ua.encode_message(MessageType.BEAT)
    conn.receive_data(beat[:3], 100.0)
    ev = terminated(conn.handle_timer(110.0))
    assert ev.timer == "idle" and conn.closed


def test_beats_sent_and_unanswered_beats_end_it() -> None:
    conn = sg(beat_interval=10.0)
    assert conn.get_timer() == 10.0
    conn.handle_timer(10.0)
    assert pycrate_type(conn.data_to_send()) == (3, 3)  # ASPSM BEAT
    conn.handle_timer(20.0)
    assert pycrate_type(conn.data_to_send()) == (3, 3)
    ev = terminated(conn.handle_timer(30.0))
    assert ev.timer == "heartbeat" and conn.get_timer() is None


def test_beat_ack_keeps_it_up() -> None:
    conn = sg(beat_interval=10.0)
    peer = asp()
    peer.start(0.0)
    pump(peer, conn, 0.0)
    now = 0.0
    for _ in range(10):
        now += 10.0
        assert conn.handle_timer(now) == []
        pump(conn, peer, now)  # the peer answers the BEAT with a BEAT ACK
    assert not conn.closed and conn.state is AspState.ACTIVE


def test_no_limits_by_default_in_the_core() -> None:
    conn = sg()
    assert conn.get_timer() is None
