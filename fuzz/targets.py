"""Fuzz targets: every decoder and state machine a remote peer can reach, each with the invariant it
must keep on *any* input, and the seed inputs the mutations start from.

A target is a function of one ``bytes``. It raises (``AssertionError`` or whatever escapes the code
under test) only when an invariant breaks; the engines in :mod:`fuzz.__main__` call it with mutated
inputs (atheris/libFuzzer when installed, else a plain mutation loop) and report the first input
that raises.

The invariants are those the cores document (protocols/diameter/peer.py, protocols/sigtran/errors.py,
protocols/http/server.py):

* the Diameter peer raises nothing but :class:`RemoteProtocolError` (and only after closing), and
  what it sends is well-framed Diameter;
* the ECR fast path never accepts what the strict decoder refuses, and agrees with it field by
  field when it accepts;
* the SIGTRAN cores never let an exception out of ``receive_data`` (bad input is answered on the
  wire), and the TCAP Begin fast path agrees with the general decoder;
* the MAP argument decoder raises only :class:`MapParameterError`;
* the HTTP server connection never raises, and the N5g-eir request parser always gives a query or
  an answer.

Each target first splits off one *selector* byte that picks a variant (state, layer), so one corpus
reaches every variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

from protocols.diameter import DiameterPeer, PeerState, RemoteProtocolError, Role, encode_message
from protocols.diameter import dictionary as d
from protocols.diameter._s13_fast import EcrMemo, decode_ecr_fast
from protocols.diameter.codec import encode_raw
from protocols.diameter.dictionary import APP_S13, VENDOR_3GPP
from protocols.diameter.s13 import build_ecr, decode_ecr_raw
from protocols.http.server import HttpLimits, HttpServerConnection
from protocols.sbi.n5g_eir import Answer, EquipmentStatusQuery, N5gEirOptions, parse_request
from protocols.sigtran import (
    CheckImeiClient,
    CheckImeiRequested,
    EirSigtranStack,
    EquipmentStatus,
    encode_check_imei_begin,
    m3ua,
    sccp,
)
from protocols.sigtran import RemoteProtocolError as SigtranRemoteError
from protocols.sigtran._tcap_fast import match_check_imei_begin
from protocols.sigtran.map_checkimei import MapParameterError, decode_check_imei_arg
from protocols.sigtran.tcap import Aarq, Invoke, decode_tcap

Target = Callable[[bytes], None]

EIR_HOST, EIR_REALM = "eir.localdomain", "localdomain"
MME_HOST, MME_REALM = "mme.fuzz", "fuzz"
IMEI = "35123456789012"
EIR_GT = "491700000009"


# --- Diameter ------------------------------------------------------------------------------------


def _responder() -> DiameterPeer:
    p = DiameterPeer(
        role=Role.RESPONDER, origin_host=EIR_HOST, origin_realm=EIR_REALM, watchdog_interval=30.0
    )
    p.start(0.0)
    return p


def _initiator() -> DiameterPeer:
    p = DiameterPeer(
        role=Role.INITIATOR,
        origin_host=MME_HOST,
        origin_realm=MME_REALM,
        destination_realm=EIR_REALM,
        watchdog_interval=30.0,
        identifier_seed=1000,
    )
    p.start(0.0)
    return p


def _cer() -> bytes:
    body = (
        d.ORIGIN_HOST.encode(MME_HOST)
        + d.ORIGIN_REALM.encode(MME_REALM)
        + d.HOST_IP_ADDRESS.encode("127.0.0.1")
        + d.VENDOR_ID.encode(0)
        + d.PRODUCT_NAME.encode("fuzz")
        + d.VENDOR_SPECIFIC_APPLICATION_ID.encode(
            d.VENDOR_ID.encode(VENDOR_3GPP) + d.AUTH_APPLICATION_ID.encode(APP_S13)
        )
    )
    return encode_raw(257, 0x80, 0, 7, 7, body)


def _ecr(hbh: int = 100, **kw: object) -> bytes:
    args: dict[str, object] = {
        "session_id": f"{MME_HOST};1;{hbh}",
        "origin_host": MME_HOST,
        "origin_realm": MME_REALM,
        "destination_realm": EIR_REALM,
        "imei": IMEI,
        "software_version": "01",
        "imsi": "001010123456789",
        "hop_by_hop": hbh,
        "end_to_end": hbh,
    }
    args.update(kw)
    return encode_message(build_ecr(**args))  # type: ignore[arg-type]


def _well_framed(sent: bytes) -> None:
    pos = 0
    while pos < len(sent):
        assert sent[pos] == 1, "Diameter version 1 on every message sent"
        length = int.from_bytes(sent[pos + 1 : pos + 4], "big")
        assert length >= 20 and length % 4 == 0 and pos + length <= len(sent), "message length"
        pos += length


def diameter_peer(data: bytes) -> None:
    """Any bytes to the EIR's Diameter peer, before CER (selector even) or after CER/CEA (odd)."""
    if not data:
        return
    peer = _responder()
    if data[0] & 1:
        peer.receive_data(_cer(), 0.0)
        peer.data_to_send()
    try:
        out = peer.receive_data(data[1:], 1.0)
        assert isinstance(out, list)
    except RemoteProtocolError:
        assert peer.state is PeerState.CLOSED, "a RemoteProtocolError only after the peer closed"
    peer.handle_timer(1000.0)
    _well_framed(peer.data_to_send())


def diameter_mme(data: bytes) -> None:
    """Any bytes as answers to the simulated MME (initiator), waiting for its CEA."""
    peer = _initiator()
    peer.data_to_send()
    try:
        peer.receive_data(data, 1.0)
    except RemoteProtocolError:
        assert peer.state is PeerState.CLOSED
    peer.handle_timer(1000.0)
    _well_framed(peer.data_to_send())


_MEMO = EcrMemo()


def diameter_ecr(data: bytes) -> None:
    """The ECR fast path (with and without a memo) against the strict decoder, on any message body."""
    if len(data) < 20:
        return
    wire = bytes(data)
    flags, hbh, e2e = wire[4], int.from_bytes(wire[12:16], "big"), int.from_bytes(wire[16:20], "big")
    buf = bytearray(b"\xaa" * 4 + wire + b"\x01\x00")
    fast = decode_ecr_fast(buf, 4, len(wire), flags, hbh, e2e)
    assert decode_ecr_fast(buf, 4, len(wire), flags, hbh, e2e, _MEMO) == fast, "the memo changed the outcome"
    try:
        strict = decode_ecr_raw(buf, 4, len(wire), flags, hbh, e2e)
    except RemoteProtocolError as e:
        assert fast is None, f"the fast path accepted an ECR the strict decoder refuses: {e}"
        return
    if fast is not None:
        assert dataclasses.astuple(fast) == dataclasses.astuple(strict), "fast and strict decodes differ"
        assert fast.session_id_avp == strict.session_id_avp and fast.proxy_info == strict.proxy_info


# --- SIGTRAN ---------------------------------------------------------------------------------------


def _sigtran_pair() -> tuple[CheckImeiClient, EirSigtranStack]:
    eir = EirSigtranStack(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.SG),
        point_code=2,
        ssn=9,
        global_title=EIR_GT,
        map_versions=(1, 2, 3),
        dialogue_timeout=30.0,
    )
    client = CheckImeiClient(
        m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.ASP, routing_context=5),
        opc=1,
        dpc=2,
        calling=sccp.make_address(ssn=8, gt="491700000008"),
        called=sccp.make_address(ssn=9, gt=EIR_GT),
    )
    client.start(0.0)
    for _ in range(4):
        if out := client.data_to_send():
            eir.receive_data(out, 0.0)
        if out := eir.data_to_send():
            client.receive_data(out, 0.0)
    return client, eir


def _drive_eir(eir: EirSigtranStack, wire: bytes) -> None:
    for ev in eir.receive_data(wire, 1.0):
        if isinstance(ev, CheckImeiRequested):
            eir.answer(ev, EquipmentStatus.WHITE_LISTED)
    eir.handle_timer(1000.0)
    eir.data_to_send()


def sigtran_stack(data: bytes) -> None:
    """The EIR's M3UA → SCCP → TCAP/MAP stack, never raising. Selector % 3: 0 raw M3UA bytes on an
    active association, 1 the bytes as SCCP inside M3UA DATA, 2 as TCAP inside a valid UDT."""
    if not data:
        return
    client, eir = _sigtran_pair()
    mode, payload = data[0] % 3, data[1:]
    if mode == 0:
        wire = payload
    elif mode == 1:
        client.send_sccp(payload)
        wire = client.data_to_send()
    else:
        # a UDT carries at most 255 octets of user data: our own encoder refuses more (ValueError,
        # a caller's error), so the fuzzed TCAP is cut to what a peer can put in one
        client.send_tcap(payload[:255])
        wire = client.data_to_send()
    _drive_eir(eir, wire)


def m3ua_fresh(data: bytes) -> None:
    """M3UA SG core from ASP-DOWN: any bytes, never an exception; what it sends decodes."""
    conn = m3ua.M3uaConnection(m3ua.M3uaSettings(role=m3ua.Role.SG, routing_context=5))
    conn.receive_data(data, 1.0)
    conn.handle_timer(1000.0)
    out = conn.data_to_send()
    pos = 0
    while pos < len(out):
        length = int.from_bytes(out[pos + 4 : pos + 8], "big")
        m3ua.decode_message(out[pos : pos + length])
        pos += length


def tcap_begin(data: bytes) -> None:
    """The TCAP Begin fast path agrees with the general decoder whenever it matches."""
    fast = match_check_imei_begin(data)
    if fast is None:
        return
    general = decode_tcap(data)
    invokes = [c for c in general.components if isinstance(c, Invoke)]
    assert len(invokes) == 1, "the fast path matched a Begin the general decoder does not see as one invoke"
    acn = general.dialogue.acn[-1] if isinstance(general.dialogue, Aarq) else None
    assert fast == (general.otid, acn, invokes[0].invoke_id, invokes[0].parameter)


def map_argument(data: bytes) -> None:
    """checkIMEI argument decoding (every MAP version and vendor form): MapParameterError or a value."""
    try:
        decode_check_imei_arg(data)
    except MapParameterError:
        pass
    except SigtranRemoteError as e:  # pragma: no cover - the invariant under test
        raise AssertionError(f"decode_check_imei_arg let {type(e).__name__} out") from e


# --- HTTP / N5g-eir -------------------------------------------------------------------------------


def http_server(data: bytes) -> None:
    """The HTTP server connection (h2c prior knowledge or HTTP/1.1): no exception out of any call."""
    if not data:
        return
    conn = HttpServerConnection(HttpLimits(fast_path=bool(data[0] & 1), max_concurrent_streams=8))
    conn.start(0.0)
    for ev in conn.receive_data(data[1:], 1.0):
        sid = getattr(ev, "stream_id", None)
        if sid is not None and hasattr(ev, "method"):
            conn.send_response(
                sid, 200, [(b"content-type", b"application/json")], b'{"status":"WHITELISTED"}'
            )
    conn.handle_timer(1000.0)
    conn.close(1001.0)
    conn.data_to_send()


_OPTIONS = (N5gEirOptions(), N5gEirOptions(bare_pei=False, non_imei_pei="bad_request"))


def n5g_request(data: bytes) -> None:
    """The N5g-eir request parser: a query or an answer for any method and target."""
    if not data:
        return
    method = ("GET", "POST", "HEAD", "PUT")[data[0] & 3]
    target = data[1:].decode("latin-1")
    got = parse_request(method, target, _OPTIONS[data[0] >> 7])
    assert isinstance(got, EquipmentStatusQuery | Answer)


# --- captures (eir replay reads files a lab hands it) -------------------------------------------


_LINKTYPES = (0, 1, 101, 113, 228, 229, 276)


def capture_frames(data: bytes) -> None:
    """Frames of any link type through the capture decoder (IP fragments, TCP reassembly, SCTP
    chunks, Diameter/M3UA framing) and the request/answer pairing: never an exception. The selector
    picks the link type; each frame is prefixed by a length octet."""
    from protocols.capture.decoder import CaptureDecoder
    from protocols.capture.exchanges import find_exchanges

    if not data:
        return
    linktype = _LINKTYPES[data[0] % len(_LINKTYPES)]
    dec = CaptureDecoder(max_pending=1 << 16, max_flows=64, max_tsns=64, max_ip_datagrams=16)
    messages = []
    pos, ts = 1, 0.0
    while pos < len(data):
        n = data[pos]
        frame = data[pos + 1 : pos + 1 + n]
        pos += 1 + n
        ts += 0.5
        messages += dec.receive_frame(linktype, ts, frame)
    messages += dec.finish()
    find_exchanges(messages)


def pcapng_file(data: bytes) -> None:
    """The pcapng reader: frames, or PcapngError for a block it cannot read — nothing else."""
    from protocols.capture.pcapng import PcapngError, read_pcapng

    try:
        for _ in read_pcapng(data):
            pass
    except PcapngError:
        pass


def _capture_seeds(name: str) -> Iterator[bytes]:
    import struct

    def ipv4_tcp(payload: bytes, sport: int = 40000, dport: int = 3868, seq: int = 1) -> bytes:
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 0x50, 0x18, 65535, 0, 0) + payload
        ip = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(tcp),
            1,
            0,
            64,
            6,
            0,
            bytes([127, 0, 0, 1]),
            bytes([127, 0, 0, 2]),
        )
        return ip + tcp

    ecr = _ecr()
    frames = [ipv4_tcp(ecr[:120], seq=1), ipv4_tcp(ecr[120:], seq=121)]
    if name == "capture_frames":
        yield bytes([2]) + b"".join(bytes([len(f)]) + f for f in frames if len(f) < 256)
        yield bytes([2]) + bytes([len(frames[0])]) + frames[0]
        return
    from protocols.capture.pcapng import (
        enhanced_packet_block,
        interface_description_block,
        section_header_block,
    )

    yield (
        section_header_block()
        + interface_description_block()
        + b"".join(enhanced_packet_block(i * 1.0, f) for i, f in enumerate(frames))
    )


# --- seeds -----------------------------------------------------------------------------------------


def _h2_request(path: str) -> bytes:
    import h2.config
    import h2.connection

    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(
        1, [(":method", "GET"), (":scheme", "http"), (":authority", "eir"), (":path", path)], end_stream=True
    )
    return c.data_to_send()


_PATH = "/n5g-eir-eic/v1/equipment-status?pei=imei-490154203237518&supi=imsi-001010000000001"


def seeds(name: str) -> Iterator[bytes]:
    """A handful of valid inputs per target, so mutations start from what peers really send."""
    if name in ("diameter_peer", "diameter_ecr", "diameter_mme"):
        ecrs = [
            _ecr(),
            _ecr(hbh=101, software_version=None, imsi=None),
            _ecr(hbh=102, destination_host=EIR_HOST),
            _ecr(hbh=103, imei=None, meid=b"\xa0\x00\x00\x00\x00\x00\x01"),
        ]
        if name == "diameter_ecr":
            yield from ecrs
        elif name == "diameter_peer":
            yield b"\x00" + _cer() + ecrs[0]
            for e in ecrs:
                yield b"\x01" + e
        else:
            responder = _responder()
            mme = _initiator()
            responder.receive_data(mme.data_to_send(), 0.0)
            yield responder.data_to_send()
        return
    if name in ("sigtran_stack", "m3ua_fresh", "tcap_begin", "map_argument"):
        begins = [
            encode_check_imei_begin(otid=1, version=v, invoke_id=1, imei=IMEI + "0", requested_bmuef=v == 3)
            for v in (1, 2, 3)
        ]
        begins.append(
            encode_check_imei_begin(
                otid=2, version=2, invoke_id=1, imei=IMEI + "0", imsi="001010123456789", vendor="huawei"
            )
        )
        if name == "tcap_begin":
            yield from begins
        elif name == "map_argument":
            from protocols.sigtran.map_checkimei import encode_check_imei_arg

            yield encode_check_imei_arg(version=2, imei=IMEI + "0")
            yield encode_check_imei_arg(version=3, imei=IMEI + "0", requested_bmuef=True)
            yield encode_check_imei_arg(version=2, imei=IMEI + "0", imsi="001010123456789", vendor="huawei")
            yield encode_check_imei_arg(version=3, imei=IMEI + "0", imsi="001010123456789", vendor="ericsson")
        elif name == "m3ua_fresh":
            client = CheckImeiClient(
                m3ua_settings=m3ua.M3uaSettings(role=m3ua.Role.ASP, routing_context=5),
                opc=1,
                dpc=2,
                calling=sccp.make_address(ssn=8, gt="491700000008"),
                called=sccp.make_address(ssn=9, gt=EIR_GT),
            )
            client.start(0.0)
            yield client.data_to_send()
        else:
            client, _ = _sigtran_pair()
            client.send_tcap(begins[1])
            yield b"\x00" + client.data_to_send()
            for b in begins:
                yield b"\x02" + b
        return
    if name == "http_server":
        yield b"\x01" + _h2_request(_PATH)
        yield b"\x00" + _h2_request(_PATH)
        yield b"\x00" + f"GET {_PATH} HTTP/1.1\r\nHost: eir\r\n\r\n".encode()
        return
    if name in ("capture_frames", "pcapng_file"):
        yield from _capture_seeds(name)
        return
    if name == "n5g_request":
        yield b"\x00" + _PATH.encode()
        yield b"\x80" + b"/n5g-eir-eic/v1/equipment-status?pei=imeisv-4370816125816151"
        yield b"\x01" + b"/n5g-eir-eic/v1/equipment-status?pei=mac-00-11-22-33-44-55"
        return
    raise KeyError(name)


TARGETS: dict[str, Target] = {
    "diameter_peer": diameter_peer,
    "diameter_mme": diameter_mme,
    "diameter_ecr": diameter_ecr,
    "sigtran_stack": sigtran_stack,
    "m3ua_fresh": m3ua_fresh,
    "tcap_begin": tcap_begin,
    "map_argument": map_argument,
    "http_server": http_server,
    "n5g_request": n5g_request,
    "capture_frames": capture_frames,
    "pcapng_file": pcapng_file,
}
