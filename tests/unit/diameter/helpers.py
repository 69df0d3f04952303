"""Shared helpers for the Diameter unit tests: wired peers and an independent decoder."""

from __future__ import annotations

from typing import Any

from diameter.message import Message as PdMessage

from protocols.diameter import DiameterPeer, Role, build_ecr, encode_message
from protocols.diameter import dictionary as d
from protocols.diameter.codec import Avp, Message, encode_raw, iter_messages
from protocols.diameter.dictionary import APP_S13, VENDOR_3GPP

IMEI = "35123456789012"
EIR_HOST, EIR_REALM = "eir.localdomain", "localdomain"
MME_HOST, MME_REALM = "mme.lab", "lab"
TW = 30.0


def responder(**kw: Any) -> DiameterPeer:
    p = DiameterPeer(
        role=Role.RESPONDER, origin_host=EIR_HOST, origin_realm=EIR_REALM, watchdog_interval=TW, **kw
    )
    p.start(0.0)
    return p


def initiator(**kw: Any) -> DiameterPeer:
    p = DiameterPeer(
        role=Role.INITIATOR,
        origin_host=MME_HOST,
        origin_realm=MME_REALM,
        destination_realm=EIR_REALM,
        watchdog_interval=TW,
        identifier_seed=1000,
        **kw,
    )
    p.start(0.0)
    return p


def open_pair(now: float = 0.0) -> tuple[DiameterPeer, DiameterPeer]:
    """(eir, mme) after CER/CEA."""
    eir, mme = responder(), initiator()
    eir.receive_data(mme.data_to_send(), now)
    mme.receive_data(eir.data_to_send(), now)
    return eir, mme


def cer(apps: bytes | None = None, *, hbh: int = 7, omit: tuple[int, ...] = ()) -> bytes:
    """A CER as an MME sends it; ``apps`` replaces the application AVPs."""
    parts = {
        264: d.ORIGIN_HOST.encode(MME_HOST),
        296: d.ORIGIN_REALM.encode(MME_REALM),
        257: d.HOST_IP_ADDRESS.encode("127.0.0.1"),
        266: d.VENDOR_ID.encode(0),
        269: d.PRODUCT_NAME.encode("test"),
    }
    body = b"".join(v for k, v in parts.items() if k not in omit)
    if apps is None:
        apps = d.VENDOR_SPECIFIC_APPLICATION_ID.encode(
            d.VENDOR_ID.encode(VENDOR_3GPP) + d.AUTH_APPLICATION_ID.encode(APP_S13)
        )
    return encode_raw(257, 0x80, 0, hbh, hbh, body + apps)


def ecr_message(
    imei: str | None = IMEI,
    *,
    sv: str | None = "01",
    imsi: str | None = "001010123456789",
    hbh: int = 100,
    session: str = "mme.lab;1;1",
) -> Message:
    return build_ecr(
        session_id=session,
        origin_host=MME_HOST,
        origin_realm=MME_REALM,
        destination_realm=EIR_REALM,
        imei=imei,
        software_version=sv,
        imsi=imsi,
        hop_by_hop=hbh,
        end_to_end=hbh,
    )


def ecr(imei: str | None = IMEI, **kw: Any) -> bytes:
    return encode_message(ecr_message(imei, **kw))


def ecr_with(
    avps: list[Avp], *, hbh: int = 100, flags: int = 0xC0, app: int = APP_S13, command: int = 324
) -> bytes:
    return encode_message(Message(command, app, flags, hbh, hbh, avps))


def pd(data: bytes) -> Any:
    """python-diameter's decoding of one message (the independent decoder)."""
    return PdMessage.from_bytes(data)


def messages(data: bytes) -> list[Message]:
    return list(iter_messages(data))


def pd_avp(msg: Any, code: int, vendor: int = 0) -> Any:
    """The first value python-diameter found for (code, vendor), or None."""
    found = msg.find_avps((code, vendor))
    return found[0].value if found else None
