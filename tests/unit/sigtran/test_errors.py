"""One exception hierarchy for SIGTRAN (protocols/sigtran/errors.py): every error of every layer
hangs under it, decode errors as RemoteProtocolError with the wire hint where the layer has one."""

from __future__ import annotations

import pytest

from protocols.sigtran import (
    LocalProtocolError,
    MapParameterError,
    ProtocolError,
    RemoteProtocolError,
    SigtranError,
    decode_check_imei_arg,
    errors,
    m3ua,
    sccp,
    tcap,
)
from protocols.sigtran._ber import BerError, read_tlv

DECODE_ERRORS = [m3ua.M3uaDecodeError, sccp.SccpDecodeError, BerError, tcap.TcapError, MapParameterError]


@pytest.mark.parametrize("cls", DECODE_ERRORS, ids=lambda c: c.__name__)
def test_decode_errors_are_remote_protocol_errors(cls: type) -> None:
    assert issubclass(cls, RemoteProtocolError)
    assert issubclass(cls, ProtocolError) and issubclass(cls, SigtranError)
    assert not issubclass(cls, ValueError)  # no caller catches them as ValueError


def test_one_local_protocol_error() -> None:
    assert m3ua.LocalProtocolError is errors.LocalProtocolError is LocalProtocolError
    assert issubclass(LocalProtocolError, ProtocolError) and not issubclass(
        LocalProtocolError, RemoteProtocolError
    )
    with pytest.raises(LocalProtocolError):
        m3ua.M3uaConnection().send_data(m3ua.ProtocolData(opc=1, dpc=2))


def test_wire_hints() -> None:
    with pytest.raises(m3ua.M3uaDecodeError) as m:
        m3ua.decode_message(b"\x02\x00\x03\x01\x00\x00\x00\x08")
    assert m.value.wire_hint is m.value.code is m3ua.ErrorCode.INVALID_VERSION
    with pytest.raises(tcap.TransactionPortionError) as t:
        tcap.decode_tcap(bytes.fromhex("6f06480401020304"))
    assert t.value.wire_hint is t.value.cause is tcap.PAbortCause.UNRECOGNIZED_MESSAGE_TYPE
    with pytest.raises(MapParameterError) as p:
        decode_check_imei_arg(b"\x05\x00")
    assert p.value.wire_hint is tcap.InvokeProblem.MISTYPED_PARAMETER
    with pytest.raises(sccp.SccpDecodeError) as s:
        sccp.decode_message(b"\x09")
    assert s.value.wire_hint is None  # discarded, never answered
    with pytest.raises(BerError) as b:
        read_tlv(b"\x04", 0, 1)
    assert b.value.wire_hint is None  # the layer above decides
