"""eir/overload.py: the process's and the peers' budgets of checks in flight, and fairness."""

from __future__ import annotations

from eir.overload import Admission


def fill(a: Admission, peer: str, n: int) -> int:
    """Admit and hold up to ``n`` checks of ``peer``; how many were admitted."""
    got = 0
    for _ in range(n):
        if a.refuse(peer) is None:
            a.acquire(peer)
            got += 1
    return got


def test_global_and_per_peer_budgets() -> None:
    a = Admission(max_in_flight=10, max_in_flight_per_peer=6, fair_share_above=1.0)
    assert fill(a, "flood", 100) == 6
    assert a.refuse("flood") == "peer"
    assert fill(a, "other", 100) == 4
    assert a.refuse("third") == "global"
    a.release("flood")
    assert a.refuse("third") is None and a.refuse("flood") is None
    for _ in range(6):
        a.release("other") if a.per_peer.get("other") else a.release("flood")
    assert a.in_flight == 3


def test_fair_share_leaves_room_for_a_newcomer() -> None:
    a = Admission(max_in_flight=100, max_in_flight_per_peer=100, fair_share_above=0.5)
    # alone, the flood may use the whole budget
    assert fill(a, "flood", 1000) == 100
    assert a.refuse("legit") == "global"
    for _ in range(60):
        a.release("flood")
    # 40 in flight: under the soft mark, anyone may take a slot
    assert fill(a, "legit", 5) == 5
    # above the soft mark (50) the flood may grow only to its fair share (100 / 2 peers = 50):
    # then it is refused, while the legitimate peer, far under its share, is still admitted
    assert fill(a, "flood", 20) == 10
    assert a.refuse("flood") == "peer"
    assert fill(a, "legit", 10) == 10
    assert a.per_peer == {"flood": 50, "legit": 15}


def test_release_forgets_idle_peers() -> None:
    a = Admission(max_in_flight=4, max_in_flight_per_peer=4)
    a.acquire("x")
    a.release("x")
    assert a.per_peer == {} and a.in_flight == 0
    a.configure(0, 0, 0.5)  # bounds are at least 1
    assert a.max_in_flight == 1 and a.max_per_peer == 1 and a.soft == 1
