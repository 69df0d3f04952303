"""Global overload control (issue 10): one budget of checks in flight for the whole process and
one per peer, so that per-connection limits cannot multiply into unbounded work.

A check is *in flight* while it waits — for the store (it suspended in its first step, see
:mod:`eir.servers._eager`) or for a ``delay`` fault. Checks answered inline (SQLite, memory, the
checker's cache) take no slot: they never wait. The dispatch path
(:meth:`eir.servers._adapter.CoreProtocol._dispatch`) asks :meth:`Admission.refuse` before it
starts a check; a refused check is answered at once with the interface's overload answer
(Diameter 3004 DIAMETER_TOO_BUSY, MAP systemFailure or TC-U-Abort, N5g-eir 503/429 with
Retry-After) — nothing is queued.

Refused when:

* ``max_in_flight`` checks are in flight in the process (scope ``global``);
* the peer has ``max_in_flight_per_peer`` in flight (scope ``peer``);
* fairness: once the process is above ``fair_share_above`` of its budget, a peer already holding
  its fair share (the budget divided by the peers that hold slots, itself included) is refused
  (scope ``peer``). A flooding peer then leaves the rest of the budget to the others: a legitimate
  peer that arrives while the flood fills the budget still finds slots.

A *peer* is what the adapter names: the CER Origin-Host of a Diameter connection, the calling GT
(or ``pc:<OPC>``) of a MAP request, the client address of an N5g-eir request.

The admission object is process-wide (:data:`ADMISSION`), single-threaded (the event loop's), and
configured from ``overload:`` when an interface starts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ADMISSION", "Admission"]


class Admission:
    """Counts of checks in flight, in total and per peer; see the module docstring."""

    def __init__(
        self, max_in_flight: int = 2048, max_in_flight_per_peer: int = 256, fair_share_above: float = 0.5
    ) -> None:
        self.in_flight = 0
        self.per_peer: dict[str, int] = {}
        self.configure(max_in_flight, max_in_flight_per_peer, fair_share_above)

    def configure(self, max_in_flight: int, max_in_flight_per_peer: int, fair_share_above: float) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self.max_per_peer = max(1, min(max_in_flight_per_peer, self.max_in_flight))
        self.soft = max(1, int(self.max_in_flight * fair_share_above))
        """In flight from which a peer beyond its fair share is refused."""

    def configure_from(self, config: Any) -> None:
        """From :class:`eir.config.OverloadConfig`."""
        self.configure(config.max_in_flight, config.max_in_flight_per_peer, config.fair_share_above)

    def refuse(self, peer: str) -> str | None:
        """None: admit (the caller takes a slot with :meth:`acquire` only if the check waits);
        else the scope of the refusal, ``global`` or ``peer``."""
        total = self.in_flight
        if total >= self.max_in_flight:
            return "global"
        held = self.per_peer.get(peer, 0)
        if held >= self.max_per_peer:
            return "peer"
        # above the soft mark, a peer holding its fair share (budget / peers holding slots) waits
        if total >= self.soft and held and held * len(self.per_peer) >= self.max_in_flight:
            return "peer"
        return None

    def acquire(self, peer: str) -> None:
        self.in_flight += 1
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1

    def release(self, peer: str) -> None:
        self.in_flight -= 1
        n = self.per_peer.get(peer, 0) - 1
        if n > 0:
            self.per_peer[peer] = n
        else:
            self.per_peer.pop(peer, None)


ADMISSION = Admission()
"""The process's budget (every interface shares it)."""
