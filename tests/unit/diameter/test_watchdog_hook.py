"""DiameterPeer.answer_watchdog (fault injection ``dwr_silence``): a DWR the hook declines gets no DWA,
the next one it accepts does — what goes out is decoded by python-diameter."""

from __future__ import annotations

from protocols.diameter import PeerState
from protocols.diameter.codec import encode_raw
from protocols.diameter.dictionary import ORIGIN_HOST, ORIGIN_REALM
from tests.unit.diameter.helpers import MME_HOST, MME_REALM, open_pair, pd, pd_avp

ORIGIN = ORIGIN_HOST.encode(MME_HOST) + ORIGIN_REALM.encode(MME_REALM)


def dwr(hbh: int) -> bytes:
    return encode_raw(280, 0x80, 0, hbh, hbh, ORIGIN)


def test_declined_dwrs_are_not_answered() -> None:
    eir, _ = open_pair()
    answers = iter([False, True])
    asked: list[int] = []

    def hook() -> bool:
        asked.append(1)
        return next(answers)

    eir.answer_watchdog = hook
    assert eir.receive_data(dwr(41), 1.0) == []
    assert eir.data_to_send() == b"" and eir.state is PeerState.OPEN
    eir.receive_data(dwr(42), 2.0)
    dwa = pd(eir.data_to_send())  # python-diameter
    assert dwa.header.command_code == 280 and not dwa.header.is_request
    assert dwa.header.hop_by_hop_identifier == 42 and pd_avp(dwa, 268) == 2001
    assert len(asked) == 2


def test_no_hook_answers_every_dwr() -> None:
    eir, _ = open_pair()
    eir.receive_data(dwr(7), 1.0)
    assert pd(eir.data_to_send()).header.hop_by_hop_identifier == 7
