"""The Diameter peer connection, sans-IO (RFC 6733 §5 and RFC 3539 watchdog).

One :class:`DiameterPeer` per transport connection, either side:

* responder (the EIR): waits for CER, checks that S13 is in common, answers CEA, then answers
  ECRs, DWRs and DPR; sends DWR itself when the peer is silent for Tw;
* initiator (the simulated MME): sends CER, waits for CEA, then sends ECRs.

The RFC 6733 §5.6 machine is reduced to one connection (no election: the adapter owns the socket)
and written as one table, :data:`TRANSITIONS`, over every (state, input) pair. The core never reads
a clock: ``now`` comes in with each call, ``get_timer()`` gives the next deadline and
``handle_timer(now)`` is safe to call early.

Bad input never escapes as anything but an event or :class:`RemoteProtocolError`: a request that
is malformed but framed is answered (3xxx with the E bit, 5xxx in the command's own answer, with
Failed-AVP) and reported as :class:`ProtocolErrorOccurred`; when the framing is lost (bad version
or length) the error answer is queued, the state becomes CLOSED and the error is raised.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Sequence
from enum import Enum, auto
from typing import Any, Final

from . import dictionary as d
from ._s13_fast import EcrMemo, decode_ecr_fast
from .codec import (
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    HEADER_LENGTH,
    Avp,
    AvpType,
    Message,
    check_header_flags,
    decode_avps,
    decode_value,
    encode_message,
    encode_raw,
    scan_echo_avps,
)
from .dictionary import APP_COMMON, APP_RELAY, APP_S13, VENDOR_3GPP, Command, ResultCode
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    CapabilitiesExchanged,
    CloseReason,
    ConnectionClosed,
    DisconnectRequested,
    EquipmentCheckAnswered,
    EquipmentCheckRequested,
    Event,
    ProtocolErrorOccurred,
    WatchdogAnswered,
    WatchdogSuspect,
)
from .s13 import (
    EcaBuilder,
    InvalidEcrError,
    build_ecr,
    decode_eca,
    decode_ecr_raw,
    missing_avp,
    validate_avps,
)

__all__ = ["TRANSITIONS", "Action", "DiameterPeer", "Input", "PeerState", "Role"]


class Role(Enum):
    RESPONDER = auto()
    INITIATOR = auto()


class PeerState(Enum):
    """RFC 6733 §5.6 states for one connection: Wait-CER (R-Open pending), Wait-I-CEA, Open
    (R-Open/I-Open), Closing (DPR sent), Closed."""

    WAIT_CER = auto()
    WAIT_CEA = auto()
    OPEN = auto()
    CLOSING = auto()
    CLOSED = auto()


class Input(Enum):
    """What can happen to a peer: a received message class, a local command, or a timer."""

    RCV_CER_OK = auto()
    RCV_CER_REJECT = auto()
    RCV_CEA_OK = auto()
    RCV_CEA_FAIL = auto()
    RCV_DWR = auto()
    RCV_DWA = auto()
    RCV_DPR = auto()
    RCV_DPA = auto()
    RCV_REQUEST = auto()
    RCV_ANSWER = auto()
    SEND_REQUEST = auto()
    STOP = auto()
    WATCHDOG = auto()
    """Tw passed without traffic: send DWR (RFC 3539 §3.4.1)."""
    TIMEOUT = auto()
    """A fatal deadline: no CER/CEA within Tw, no DWA within 2·Tw, no DPA in time."""
    PEER_DISC = auto()


class Action(Enum):
    SEND_CEA = auto()
    SEND_CEA_REJECT = auto()
    REJECT_BEFORE_CER = auto()
    REFUSE_CER = auto()
    ACCEPT_CEA = auto()
    SEND_DWA = auto()
    NOTE_DWA = auto()
    SEND_DWR = auto()
    SEND_DPR = auto()
    SEND_DPA = auto()
    DELIVER_REQUEST = auto()
    DELIVER_ANSWER = auto()
    SEND_MESSAGE = auto()
    REFUSE_LOCAL = auto()
    DISCONNECT = auto()
    IGNORE = auto()


S, In, A = PeerState, Input, Action
_RCV_ALL = (
    In.RCV_CER_OK,
    In.RCV_CER_REJECT,
    In.RCV_CEA_OK,
    In.RCV_CEA_FAIL,
    In.RCV_DWR,
    In.RCV_DWA,
    In.RCV_DPR,
    In.RCV_DPA,
    In.RCV_REQUEST,
    In.RCV_ANSWER,
)

TRANSITIONS: Final[dict[tuple[PeerState, Input], tuple[Action, PeerState]]] = {
    # Wait-CER: the responder accepted the connection (RFC 6733 §5.6 R-Conn-CER). Anything but a
    # CER first is refused (3010 DIAMETER_UNKNOWN_PEER, E bit) and the connection closed.
    (S.WAIT_CER, In.RCV_CER_OK): (A.SEND_CEA, S.OPEN),
    (S.WAIT_CER, In.RCV_CER_REJECT): (A.SEND_CEA_REJECT, S.CLOSED),
    **{(S.WAIT_CER, i): (A.REJECT_BEFORE_CER, S.CLOSED) for i in _RCV_ALL[2:]},
    (S.WAIT_CER, In.SEND_REQUEST): (A.REFUSE_LOCAL, S.WAIT_CER),
    (S.WAIT_CER, In.STOP): (A.DISCONNECT, S.CLOSED),
    (S.WAIT_CER, In.WATCHDOG): (A.IGNORE, S.WAIT_CER),
    (S.WAIT_CER, In.TIMEOUT): (A.DISCONNECT, S.CLOSED),
    (S.WAIT_CER, In.PEER_DISC): (A.DISCONNECT, S.CLOSED),
    # Wait-I-CEA: the initiator sent CER.
    **{(S.WAIT_CEA, i): (A.DISCONNECT, S.CLOSED) for i in _RCV_ALL},
    (S.WAIT_CEA, In.RCV_CEA_OK): (A.ACCEPT_CEA, S.OPEN),
    (S.WAIT_CEA, In.SEND_REQUEST): (A.REFUSE_LOCAL, S.WAIT_CEA),
    (S.WAIT_CEA, In.STOP): (A.DISCONNECT, S.CLOSED),
    (S.WAIT_CEA, In.WATCHDOG): (A.IGNORE, S.WAIT_CEA),
    (S.WAIT_CEA, In.TIMEOUT): (A.DISCONNECT, S.CLOSED),
    (S.WAIT_CEA, In.PEER_DISC): (A.DISCONNECT, S.CLOSED),
    # Open (R-Open / I-Open).
    (S.OPEN, In.RCV_CER_OK): (A.REFUSE_CER, S.OPEN),
    (S.OPEN, In.RCV_CER_REJECT): (A.REFUSE_CER, S.OPEN),
    (S.OPEN, In.RCV_CEA_OK): (A.IGNORE, S.OPEN),
    (S.OPEN, In.RCV_CEA_FAIL): (A.IGNORE, S.OPEN),
    (S.OPEN, In.RCV_DWR): (A.SEND_DWA, S.OPEN),
    (S.OPEN, In.RCV_DWA): (A.NOTE_DWA, S.OPEN),
    # RFC 6733 §5.6 has R-Rcv-DPR: R-Snd-DPA → Closing, the DPA's receiver disconnecting (§5.4);
    # we close once the DPA is queued, as RFC 3588 did (R-Snd-DPA, R-Disc → Closed): the adapter
    # flushes it first, and learns of the close even from a peer that resets the connection.
    (S.OPEN, In.RCV_DPR): (A.SEND_DPA, S.CLOSED),
    (S.OPEN, In.RCV_DPA): (A.IGNORE, S.OPEN),
    (S.OPEN, In.RCV_REQUEST): (A.DELIVER_REQUEST, S.OPEN),
    (S.OPEN, In.RCV_ANSWER): (A.DELIVER_ANSWER, S.OPEN),
    (S.OPEN, In.SEND_REQUEST): (A.SEND_MESSAGE, S.OPEN),
    (S.OPEN, In.STOP): (A.SEND_DPR, S.CLOSING),
    (S.OPEN, In.WATCHDOG): (A.SEND_DWR, S.OPEN),
    (S.OPEN, In.TIMEOUT): (A.DISCONNECT, S.CLOSED),
    (S.OPEN, In.PEER_DISC): (A.DISCONNECT, S.CLOSED),
    # Closing: DPR sent, waiting for DPA; requests already in flight are still delivered.
    (S.CLOSING, In.RCV_CER_OK): (A.IGNORE, S.CLOSING),
    (S.CLOSING, In.RCV_CER_REJECT): (A.IGNORE, S.CLOSING),
    (S.CLOSING, In.RCV_CEA_OK): (A.IGNORE, S.CLOSING),
    (S.CLOSING, In.RCV_CEA_FAIL): (A.IGNORE, S.CLOSING),
    (S.CLOSING, In.RCV_DWR): (A.SEND_DWA, S.CLOSING),
    (S.CLOSING, In.RCV_DWA): (A.NOTE_DWA, S.CLOSING),
    (S.CLOSING, In.RCV_DPR): (A.SEND_DPA, S.CLOSED),
    (S.CLOSING, In.RCV_DPA): (A.DISCONNECT, S.CLOSED),
    (S.CLOSING, In.RCV_REQUEST): (A.DELIVER_REQUEST, S.CLOSING),
    (S.CLOSING, In.RCV_ANSWER): (A.DELIVER_ANSWER, S.CLOSING),
    (S.CLOSING, In.SEND_REQUEST): (A.REFUSE_LOCAL, S.CLOSING),
    (S.CLOSING, In.STOP): (A.DISCONNECT, S.CLOSED),
    (S.CLOSING, In.WATCHDOG): (A.IGNORE, S.CLOSING),
    (S.CLOSING, In.TIMEOUT): (A.DISCONNECT, S.CLOSED),
    (S.CLOSING, In.PEER_DISC): (A.DISCONNECT, S.CLOSED),
    # Closed: input is ignored; local requests are refused.
    **{(S.CLOSED, i): (A.IGNORE, S.CLOSED) for i in Input},
    (S.CLOSED, In.SEND_REQUEST): (A.REFUSE_LOCAL, S.CLOSED),
}
del S, In, A

# DiameterPeer._handle_message performs DELIVER_REQUEST itself for every ECR in these states, without
# a trip through _step (the hot path): that is only right while the table delivers a request there
# and keeps the state, and nowhere else.
_DELIVER_IN: Final = (PeerState.OPEN, PeerState.CLOSING)
if {k for k, (a, _) in TRANSITIONS.items() if a is Action.DELIVER_REQUEST} != {
    (st, Input.RCV_REQUEST) for st in _DELIVER_IN
} or any(TRANSITIONS[(st, Input.RCV_REQUEST)][1] is not st for st in _DELIVER_IN):  # pragma: no cover
    raise AssertionError("the ECR path of DiameterPeer assumes DELIVER_REQUEST exactly in _DELIVER_IN")

_HEADER: Final = struct.Struct(">IIIII")
_COMMON_CMDS: Final = frozenset(
    (Command.CAPABILITIES_EXCHANGE, Command.DEVICE_WATCHDOG, Command.DISCONNECT_PEER)
)
_S13_CMDS: Final = frozenset((Command.ME_IDENTITY_CHECK,))


class DiameterPeer:
    """One Diameter connection's protocol state (RFC 6733 peer, RFC 3539 watchdog), sans-IO.

    ``host_ip_addresses`` go into CER/CEA Host-IP-Address (§5.3.1: at least one); ``watchdog_interval``
    is Tw; ``identifier_seed`` seeds hop-by-hop and end-to-end identifiers (§3: the adapter passes
    something random / time-derived so that restarts do not reuse them).

    Admission and addressing (responder), all pure data or pure functions given by the adapter:

    * ``authorize_peer(origin_host, origin_realm)`` is asked at the CER: a string is the reason the
      peer is refused — CEA 3010 DIAMETER_UNKNOWN_PEER (E bit, RFC 6733 §5.3, §7.1.3) and close;
    * every ECR's Destination-Realm must be ``origin_realm`` or one of ``served_realms``, else
      3003 DIAMETER_REALM_NOT_SERVED; a Destination-Host, when present, must be ``origin_host`` or
      one of ``served_hosts``, else 3002 DIAMETER_UNABLE_TO_DELIVER (RFC 6733 §6.1.4, §7.1.3). Both
      answers carry the E bit and the offending AVP in Failed-AVP, and no Error-Reporting-Host
      (§7.4: only when the host setting the Result-Code is not the answer's Origin-Host; it is us).
      Names compare case-insensitively (DiameterIdentity is an FQDN);
    * with ``origin_host_check`` given, an ECR whose Origin-Host is not the CER's is answered 5012
      DIAMETER_UNABLE_TO_COMPLY (in the ECA, no E bit) unless ``origin_host_check(cer_host)`` says
      the peer may forward other nodes' requests (a relay or proxy agent, RFC 6733 §2.8). 3010 is
      defined for a CER from an unknown peer (§7.1.3); this peer is known, the request is what is
      refused, "for unspecified reasons" — 5012. The connection stays open.
    """

    def __init__(
        self,
        *,
        role: Role,
        origin_host: str,
        origin_realm: str,
        host_ip_addresses: Sequence[str] = ("127.0.0.1",),
        vendor_id: int = 0,
        product_name: str = "eir-emulator",
        origin_state_id: int | None = None,
        watchdog_interval: float = 30.0,
        watchdog_jitter: float = 0.0,
        dpa_timeout: float = 5.0,
        max_message_size: int = 65536,
        max_pending: int = 65536,
        identifier_seed: int = 0,
        destination_realm: str | None = None,
        served_realms: Iterable[str] = (),
        served_hosts: Iterable[str] = (),
        authorize_peer: Callable[[str, str], str | None] | None = None,
        origin_host_check: Callable[[str], bool] | None = None,
    ) -> None:
        if not host_ip_addresses:
            raise LocalProtocolError("a Diameter node needs at least one Host-IP-Address (RFC 6733 §5.3.1)")
        for ip in host_ip_addresses:
            ipaddress.ip_address(ip)
        self.role = role
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.state = PeerState.WAIT_CER if role is Role.RESPONDER else PeerState.WAIT_CEA
        self.peer_host: str | None = None
        self.peer_realm: str | None = None
        self.destination_realm = destination_realm
        realms = {origin_realm, *served_realms}
        hosts = {origin_host, *served_hosts}
        self._realms = frozenset(realms | {r.lower() for r in realms})
        self._hosts = frozenset(hosts | {h.lower() for h in hosts})
        self._authorize_peer = authorize_peer
        self._origin_host_check = origin_host_check
        self._fixed_origin: str | None = None
        """The Origin-Host every ECR must carry (the CER's), or None: not checked."""
        self._ips = tuple(host_ip_addresses)
        self._vendor_id = vendor_id
        self._product = product_name
        self._osi = origin_state_id
        self._tw = watchdog_interval
        self._jitter = max(0.0, min(watchdog_jitter, watchdog_interval / 3))
        self._rng = (identifier_seed ^ 0x5DEECE66) & 0x7FFFFFFF
        self._tw_next = watchdog_interval + self._draw_jitter()
        """Tw for the next DWR: RFC 3539 §3.4.1 jitters it by up to ±2 s so that peers restarted
        together do not send their DWRs in step. Drawn afresh after each DWR and DWA."""
        self._dpa_timeout = dpa_timeout
        self._max_size = max_message_size
        self._max_pending = max_pending
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._hbh = identifier_seed & 0xFFFFFFFF
        self._e2e = (identifier_seed * 2654435761) & 0xFFFFFFFF
        self._pending: dict[int, int] = {}
        """hop-by-hop → command code of requests we sent and await answers for."""
        self._started = False
        self._start_time = 0.0
        self._last_rx = 0.0
        self._dwr_sent: float | None = None
        self._suspect = False
        self._dpr_deadline: float | None = None
        self._eca = EcaBuilder(origin_host, origin_realm)
        self._ecr_memo = EcrMemo()
        self._base_avps = d.ORIGIN_HOST.encode(origin_host) + d.ORIGIN_REALM.encode(origin_realm)
        self._events: list[Event] = []
        self._actions: dict[Action, Callable[[Any, float], None]] = {
            Action.SEND_CEA: self._do_send_cea,
            Action.SEND_CEA_REJECT: self._do_send_cea_reject,
            Action.REJECT_BEFORE_CER: self._do_reject_before_cer,
            Action.REFUSE_CER: self._do_refuse_cer,
            Action.ACCEPT_CEA: self._do_accept_cea,
            Action.SEND_DWA: self._do_send_dwa,
            Action.NOTE_DWA: self._do_note_dwa,
            Action.SEND_DWR: self._do_send_dwr,
            Action.SEND_DPR: self._do_send_dpr,
            Action.SEND_DPA: self._do_send_dpa,
            Action.DELIVER_REQUEST: self._do_deliver_request,
            Action.DELIVER_ANSWER: self._do_deliver_answer,
            Action.SEND_MESSAGE: self._do_nothing,
            Action.REFUSE_LOCAL: self._do_refuse_local,
            Action.DISCONNECT: self._do_disconnect,
            Action.IGNORE: self._do_nothing,
        }
        self._close_reason = CloseReason.LOCAL
        self._close_code: int | None = None
        self._cer_reject: tuple[int, bytes | None, str] | None = None
        self._peer_product: str | None = None
        self._peer_apps: tuple[int, ...] = ()
        self._dpr_cause = d.DisconnectCause.REBOOTING
        self.answer_watchdog: Callable[[], bool] | None = None
        """Asked before each DWA: False leaves that DWR unanswered (fault injection, so that a peer's
        RFC 3539 failover can be tested). None: every DWR is answered."""

    # --- public API -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The transport is up: arm the CER/CEA deadline; the initiator queues its CER."""
        if self._started:
            return
        self._started = True
        self._start_time = self._last_rx = now
        if self.role is Role.INITIATOR:
            self._queue_request(Command.CAPABILITIES_EXCHANGE, APP_COMMON, 0, self._capabilities_avps())

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes from the transport (``b""`` = the peer closed it)."""
        if not self._started:
            self.start(now)
        if self.state is PeerState.CLOSED:
            self._buf.clear()
            return []
        if not data:
            self._close_reason = CloseReason.PEER_DISCONNECTED
            self._step(Input.PEER_DISC, None, now)
            return self._take_events()
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        try:
            while n - pos >= HEADER_LENGTH and self._is_open_or_pending():
                if buf[pos] != 1:
                    self._framing_lost(
                        buf,
                        pos,
                        ResultCode.DIAMETER_UNSUPPORTED_VERSION,
                        f"unsupported Diameter version {buf[pos]}",
                    )
                length = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
                if length < HEADER_LENGTH or length & 3 or length > self._max_size:
                    self._framing_lost(
                        buf,
                        pos,
                        ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                        f"invalid message length {length}",
                    )
                if n - pos < length:
                    break
                self._handle_message(buf, pos, length, now)
                pos += length
        except RemoteProtocolError as e:
            e.events = list(self._take_events())  # what happened before the framing was lost
            raise
        finally:
            if pos:
                del buf[:pos]
        return self._take_events()

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def get_timer(self) -> float | None:
        """The earliest deadline, or None (CLOSED)."""
        st = self.state
        if st is PeerState.CLOSED or not self._started:
            return None
        if st is PeerState.WAIT_CER or st is PeerState.WAIT_CEA:
            return self._start_time + self._tw
        if st is PeerState.CLOSING and self._dpr_deadline is not None:
            return self._dpr_deadline
        if self._dwr_sent is not None:
            return self._dwr_sent + (2 * self._tw if self._suspect else self._tw)
        return self._last_rx + self._tw_next

    def _draw_jitter(self) -> float:
        """A deterministic pseudo-random offset in [-jitter, +jitter] (no ``random`` in the core:
        the seed comes from the adapter, so tests replay exactly)."""
        if not self._jitter:
            return 0.0
        self._rng = (self._rng * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._rng / 0x7FFFFFFF * 2.0 - 1.0) * self._jitter

    def handle_timer(self, now: float) -> list[Event]:
        """Handle every deadline that has passed (safe to call early or twice)."""
        st = self.state
        if st is PeerState.CLOSED or not self._started:
            return []
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return []
        if st is PeerState.WAIT_CER or st is PeerState.WAIT_CEA:
            self._close_reason = CloseReason.TIMEOUT
            self._step(Input.TIMEOUT, None, now)
        elif st is PeerState.CLOSING and self._dpr_deadline is not None:
            self._close_reason = CloseReason.DPA_TIMEOUT
            self._step(Input.TIMEOUT, None, now)
        elif self._dwr_sent is None:
            self._step(Input.WATCHDOG, None, now)
        elif not self._suspect:
            self._suspect = True
            self._events.append(WatchdogSuspect())
        else:
            self._close_reason = CloseReason.WATCHDOG
            self._step(Input.TIMEOUT, None, now)
        return self._take_events()

    def close(self, now: float, cause: d.DisconnectCause = d.DisconnectCause.REBOOTING) -> list[Event]:
        """Graceful close: DPR when OPEN (then wait for DPA), otherwise close at once."""
        self._dpr_cause = cause
        self._close_reason = CloseReason.LOCAL
        self._step(Input.STOP, None, now)
        return self._take_events()

    def send_request(self, msg: Message, now: float) -> int:
        """Send an application request; hop-by-hop/end-to-end are assigned when zero. Returns the
        hop-by-hop identifier that the answer will carry."""
        self._step(Input.SEND_REQUEST, None, now)
        hbh = msg.hop_by_hop or self._next_hbh()
        e2e = msg.end_to_end or self._next_e2e()
        if len(self._pending) >= self._max_pending:
            raise LocalProtocolError("too many outstanding requests")
        self._pending[hbh] = msg.command_code
        msg.flags |= FLAG_REQUEST
        msg.hop_by_hop, msg.end_to_end = hbh, e2e
        self._out.append(encode_message(msg))
        return hbh

    def send_ecr(
        self,
        now: float,
        *,
        session_id: str,
        imei: str | None,
        software_version: str | None = None,
        imsi: str | None = None,
        destination_realm: str | None = None,
        destination_host: str | None = None,
    ) -> int:
        """Initiator convenience: an ECR to the peer (TS 29.272 §7.2.19)."""
        realm = destination_realm or self.destination_realm or self.peer_realm
        if realm is None:
            raise LocalProtocolError("no Destination-Realm known")
        msg = build_ecr(
            session_id=session_id,
            origin_host=self.origin_host,
            origin_realm=self.origin_realm,
            destination_realm=realm,
            destination_host=destination_host,
            imei=imei,
            software_version=software_version,
            imsi=imsi,
        )
        return self.send_request(msg, now)

    def send_answer(self, msg: Message) -> None:
        """Send a complete answer built by the caller (R bit cleared). Dropped once CLOSED."""
        if self.state is PeerState.CLOSED:
            return
        msg.flags &= ~FLAG_REQUEST
        self._out.append(encode_message(msg))

    def send_eca(
        self,
        request: EquipmentCheckRequested,
        *,
        status: d.EquipmentStatus | None = None,
        result_code: int | None = None,
        experimental_result_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        """Answer an ECR: ``status`` → 2001 + Equipment-Status; or an experimental result (5422)
        or a Result-Code failure (5012). Dropped once CLOSED (the peer is gone)."""
        if self.state is PeerState.CLOSED:
            return
        self._out.append(
            self._eca.answer(
                request,
                status=status,
                result_code=result_code,
                experimental_result_code=experimental_result_code,
                error_message=error_message,
            )
        )

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    # --- the machine ------------------------------------------------------------------------

    def _step(self, inp: Input, msg: Any, now: float) -> None:
        entry = TRANSITIONS.get((self.state, inp))
        if entry is None:  # pragma: no cover - the table is total; kept as the style's safety net
            old = self.state
            self._enter_closed(CloseReason.PROTOCOL_ERROR, None)
            raise RemoteProtocolError(f"no transition for {inp.name} in {old.name}")
        action, new_state = entry
        closing = new_state is PeerState.CLOSED
        if not closing:
            self.state = new_state
        self._actions[action](msg, now)
        if closing and self._is_open_or_pending():
            self._enter_closed(self._close_reason, self._close_code)

    def _is_open_or_pending(self) -> bool:
        return self.state is not PeerState.CLOSED

    def _enter_closed(self, reason: CloseReason, code: int | None) -> None:
        self.state = PeerState.CLOSED
        self._pending.clear()
        self._buf.clear()
        self._events.append(ConnectionClosed(reason=reason, result_code=code))

    def _take_events(self) -> list[Event]:
        ev = self._events
        self._events = []
        return ev

    def _framing_lost(self, buf: bytearray, pos: int, code: int, text: str) -> None:
        """§3/§7: the stream cannot be re-synchronised. Answer a request if the header is readable,
        close, and raise."""
        flags = buf[pos + 4]
        command = (buf[pos + 5] << 16) | (buf[pos + 6] << 8) | buf[pos + 7]
        app = int.from_bytes(buf[pos + 8 : pos + 12], "big")
        hbh = int.from_bytes(buf[pos + 12 : pos + 16], "big")
        e2e = int.from_bytes(buf[pos + 16 : pos + 20], "big")
        if flags & FLAG_REQUEST and self.state is not PeerState.CLOSED:
            self._queue_error_answer(command, app, flags, hbh, e2e, b"", b"", code, text, None)
        self._events.append(
            ProtocolErrorOccurred(
                result_code=code, command_code=command, detail=text, answered=bool(flags & FLAG_REQUEST)
            )
        )
        self._enter_closed(CloseReason.PROTOCOL_ERROR, code)
        raise RemoteProtocolError(text, result_code=code)

    def _handle_message(self, buf: bytearray, pos: int, length: int, now: float) -> None:
        _w0, w1, app, hbh, e2e = _HEADER.unpack_from(buf, pos)
        flags = w1 >> 24
        command = w1 & 0xFFFFFF
        self._last_rx = now
        is_request = bool(flags & FLAG_REQUEST)
        avps: list[Avp] | None = None
        try:
            if (
                command == 324
                and app == APP_S13
                and (flags == 0xC0 or flags == 0x80 or flags == 0xD0 or flags == 0x90)
                and (self.state is PeerState.OPEN or self.state is PeerState.CLOSING)
            ):
                # The ECR path: every ECR on an open connection (these four are all the header
                # flags check_header_flags allows a request), decoded once — by the fast decoder,
                # or when it declines by the strict one — and delivered: what the table says for a
                # request in OPEN and CLOSING (checked at import, _DELIVER_IN), without a _step.
                ev = decode_ecr_fast(buf, pos, length, flags, hbh, e2e, self._ecr_memo)
                if ev is None:  # not the usual shape: the strict decoder, with its precise errors
                    ev = decode_ecr_raw(buf, pos, length, flags, hbh, e2e)
                dh = ev.destination_host
                fixed = self._fixed_origin
                if (
                    ev.destination_realm not in self._realms
                    or (dh is not None and dh not in self._hosts)
                    or (fixed is not None and ev.origin_host != fixed)
                ) and self._refuse_ecr(ev):
                    return
                self._events.append(ev)  # DELIVER_REQUEST, inline: a call costs ~1 % per ECR here
                return
            avps = decode_avps(buf, pos + HEADER_LENGTH, pos + length)
            check_header_flags(flags)
            msg = Message(command, app, flags, hbh, e2e, avps)
            inp = self._classify_request(msg) if is_request else self._classify_answer(msg)
            if inp is None:
                return
            self._step(inp, msg, now)
        except RemoteProtocolError as e:
            if self.state is PeerState.WAIT_CEA:
                # Wait-I-CEA (RFC 6733 §5.6): a CEA we cannot read ends the attempt like a refusal,
                # and any other message is I-Rcv-Non-CEA → Error, malformed or not: nothing is
                # answered on a connection about to close.
                self._events.append(
                    ProtocolErrorOccurred(
                        result_code=e.result_code, command_code=command, detail=str(e), answered=False
                    )
                )
                cea = command == Command.CAPABILITIES_EXCHANGE and not is_request
                reason = CloseReason.CEA_INVALID if cea else CloseReason.PROTOCOL_ERROR
                self._close_reason, self._close_code = reason, e.result_code
                inp = Input.RCV_CEA_FAIL if cea else Input.RCV_REQUEST if is_request else Input.RCV_ANSWER
                self._step(inp, None, now)
                return
            if not is_request:
                self._events.append(
                    ProtocolErrorOccurred(
                        result_code=e.result_code, command_code=command, detail=str(e), answered=False
                    )
                )
                return
            if self.state is PeerState.WAIT_CER and command != Command.CAPABILITIES_EXCHANGE:
                self._close_reason, self._close_code = (
                    CloseReason.PROTOCOL_ERROR,
                    ResultCode.DIAMETER_UNKNOWN_PEER,
                )
                self._step(Input.RCV_REQUEST, Message(command, app, flags, hbh, e2e, []), now)
                return
            if isinstance(e, InvalidEcrError):  # the strict ECR decoder noted them on its one pass
                session, proxy = e.session_id_avp, e.proxy_info
            elif avps is None:
                session, proxy = scan_echo_avps(buf, pos + HEADER_LENGTH, pos + length)
            else:
                session, proxy = _echo_of(avps)
            self._queue_error_answer(
                command, app, flags, hbh, e2e, session, proxy, e.result_code, str(e), e.failed_avp
            )
            self._events.append(
                ProtocolErrorOccurred(
                    result_code=e.result_code, command_code=command, detail=str(e), answered=True
                )
            )
            if command == Command.CAPABILITIES_EXCHANGE and self.state is PeerState.WAIT_CER:
                self._close_reason, self._close_code = CloseReason.CER_INVALID, e.result_code
                self._step(Input.STOP, None, now)

    def _refuse_ecr(self, ev: EquipmentCheckRequested) -> bool:
        """The ECR failed the quick (exact-case) addressing or origin test: decide it properly and
        queue the error answer. False: it passes after all (a realm or host in another case)."""
        realm, host = ev.destination_realm, ev.destination_host
        if realm.lower() not in self._realms:
            code, refusal = ResultCode.DIAMETER_REALM_NOT_SERVED, "realm-not-served"
            text, failed = f"realm {realm} not served", d.DESTINATION_REALM.encode(realm)
        elif host is not None and host.lower() not in self._hosts:
            code, refusal = ResultCode.DIAMETER_UNABLE_TO_DELIVER, "host-not-served"
            text, failed = f"host {host} not served here", d.DESTINATION_HOST.encode(host)
        elif self._fixed_origin is not None and ev.origin_host != self._fixed_origin:
            code, refusal = ResultCode.DIAMETER_UNABLE_TO_COMPLY, "origin-mismatch"
            text = f"Origin-Host {ev.origin_host} is not the peer's ({self._fixed_origin})"
            failed = d.ORIGIN_HOST.encode(ev.origin_host)
        else:
            return False
        self._queue_error_answer(
            Command.ME_IDENTITY_CHECK,
            APP_S13,
            ev.flags,
            ev.hop_by_hop,
            ev.end_to_end,
            ev.session_id_avp,
            ev.proxy_info,
            code,
            text,
            failed,
        )
        self._events.append(
            ProtocolErrorOccurred(
                result_code=code,
                command_code=Command.ME_IDENTITY_CHECK,
                detail=text,
                answered=True,
                refusal=refusal,
            )
        )
        return True

    def _classify_request(self, msg: Message) -> Input | None:
        cmd = msg.command_code
        if cmd in _COMMON_CMDS:
            if msg.application_id != APP_COMMON:
                raise RemoteProtocolError(
                    f"command {cmd} with application {msg.application_id}",
                    result_code=ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
                )
            validate_avps(msg.avps)
            if cmd == Command.CAPABILITIES_EXCHANGE:
                return self._check_cer(msg)
            return Input.RCV_DWR if cmd == Command.DEVICE_WATCHDOG else Input.RCV_DPR
        if msg.application_id != APP_S13:
            raise RemoteProtocolError(
                f"application {msg.application_id} not supported",
                result_code=ResultCode.DIAMETER_APPLICATION_UNSUPPORTED,
            )
        if cmd not in _S13_CMDS:
            raise RemoteProtocolError(
                f"command {cmd} not supported", result_code=ResultCode.DIAMETER_COMMAND_UNSUPPORTED
            )
        if self.state is not PeerState.WAIT_CER:
            validate_avps(msg.avps)
        return Input.RCV_REQUEST

    def _classify_answer(self, msg: Message) -> Input | None:
        cmd = msg.command_code
        if cmd == Command.CAPABILITIES_EXCHANGE:
            if self.state is PeerState.WAIT_CEA:
                self._pending.pop(msg.hop_by_hop, None)
                return Input.RCV_CEA_OK if self._cea_ok(msg) else Input.RCV_CEA_FAIL
            return Input.RCV_CEA_OK
        if cmd == Command.DEVICE_WATCHDOG:
            self._pending.pop(msg.hop_by_hop, None)
            return Input.RCV_DWA
        if cmd == Command.DISCONNECT_PEER:
            self._pending.pop(msg.hop_by_hop, None)
            return Input.RCV_DPA
        if self.state is PeerState.WAIT_CER or self.state is PeerState.WAIT_CEA:
            return Input.RCV_ANSWER
        if self._pending.pop(msg.hop_by_hop, None) is None:
            # §6.2.2: an answer that matches no pending request is discarded.
            self._events.append(
                ProtocolErrorOccurred(
                    result_code=ResultCode.DIAMETER_UNABLE_TO_COMPLY,
                    command_code=cmd,
                    detail=f"answer with unknown hop-by-hop {msg.hop_by_hop:#x} discarded",
                    answered=False,
                )
            )
            return None
        return Input.RCV_ANSWER

    # --- capabilities exchange (§5.3) --------------------------------------------------------

    def _capabilities_avps(self) -> bytes:
        body = self._base_avps
        for ip in self._ips:
            body += d.HOST_IP_ADDRESS.encode(ip)
        body += d.VENDOR_ID.encode(self._vendor_id) + d.PRODUCT_NAME.encode(self._product)
        if self._osi is not None:
            body += d.ORIGIN_STATE_ID.encode(self._osi)
        body += d.SUPPORTED_VENDOR_ID.encode(VENDOR_3GPP)
        body += d.AUTH_APPLICATION_ID.encode(APP_S13)
        body += d.VENDOR_SPECIFIC_APPLICATION_ID.encode(
            d.VENDOR_ID.encode(VENDOR_3GPP) + d.AUTH_APPLICATION_ID.encode(APP_S13)
        )
        return body

    def _identity(self, msg: Message) -> tuple[str, str]:
        host = msg.find(d.ORIGIN_HOST.code)
        if host is None:
            raise missing_avp(d.ORIGIN_HOST)
        realm = msg.find(d.ORIGIN_REALM.code)
        if realm is None:
            raise missing_avp(d.ORIGIN_REALM)
        return (
            str(decode_value(host, AvpType.DIAMETER_IDENTITY)),
            str(decode_value(realm, AvpType.DIAMETER_IDENTITY)),
        )

    @staticmethod
    def _applications(msg: Message) -> tuple[int, ...]:
        apps: list[int] = []
        for a in msg.avps:
            if a.vendor_id:
                continue
            if a.code in (258, 259):
                apps.append(int.from_bytes(a.data, "big"))
            elif a.code == 260:
                apps.extend(
                    int.from_bytes(c.data, "big")
                    for c in a.children()
                    if c.vendor_id == 0 and c.code in (258, 259) and len(c.data) == 4
                )
        return tuple(apps)

    def _check_cer(self, msg: Message) -> Input:
        """§5.3: identity and mandatory AVPs, then the common-application check."""
        self._cer_reject = None
        host, realm = self._identity(msg)
        for defn in (d.HOST_IP_ADDRESS, d.VENDOR_ID, d.PRODUCT_NAME):
            if msg.find(defn.code) is None:
                raise missing_avp(defn)
        for a in msg.find_all(d.HOST_IP_ADDRESS.code):
            decode_value(a, AvpType.ADDRESS)
        name = msg.find(d.PRODUCT_NAME.code)
        product = str(decode_value(name, AvpType.UTF8_STRING)) if name else None
        apps = tuple(dict.fromkeys(self._applications(msg)))
        if self.state is not PeerState.WAIT_CER:
            # A CER on a connection past its capabilities exchange is refused (R-Reject of RFC 6733
            # §5.6, not Process-CER): it must not change what the first one established.
            return Input.RCV_CER_OK
        self.peer_host, self.peer_realm = host, realm
        self._peer_product = product
        self._peer_apps = apps
        why = self._authorize_peer(host, realm) if self._authorize_peer is not None else None
        if why is not None:
            self._cer_reject = (ResultCode.DIAMETER_UNKNOWN_PEER, None, why)
            return Input.RCV_CER_REJECT
        if self._origin_host_check is not None and not self._origin_host_check(host):
            self._fixed_origin = host
        if APP_S13 in apps or APP_RELAY in apps:
            return Input.RCV_CER_OK
        self._cer_reject = (
            ResultCode.DIAMETER_NO_COMMON_APPLICATION,
            None,
            f"no common application (offered {list(self._peer_apps)}, need {APP_S13})",
        )
        return Input.RCV_CER_REJECT

    def _cea_ok(self, msg: Message) -> bool:
        rc = msg.find(d.RESULT_CODE.code)
        try:
            code = int.from_bytes(rc.data, "big") if rc is not None and len(rc.data) == 4 else None
            host, realm = self._identity(msg)
            apps = tuple(dict.fromkeys(self._applications(msg)))
        except RemoteProtocolError as e:
            self._close_reason, self._close_code = CloseReason.CEA_INVALID, e.result_code
            return False
        if code != ResultCode.DIAMETER_SUCCESS:
            self._close_reason, self._close_code = CloseReason.CEA_REJECTED, code
            return False
        if apps and APP_S13 not in apps and APP_RELAY not in apps:
            self._close_reason, self._close_code = (
                CloseReason.NO_COMMON_APPLICATION,
                ResultCode.DIAMETER_NO_COMMON_APPLICATION,
            )
            return False
        self.peer_host, self.peer_realm = host, realm
        self._peer_product = None
        self._peer_apps = apps
        return True

    # --- actions ----------------------------------------------------------------------------

    def _do_nothing(self, msg: Message | None, now: float) -> None:
        return None

    def _do_send_cea(self, msg: Message | None, now: float) -> None:
        if msg is None:  # pragma: no cover
            raise LocalProtocolError("SEND_CEA without a CER")
        body = d.RESULT_CODE.encode(ResultCode.DIAMETER_SUCCESS) + self._capabilities_avps()
        self._out.append(encode_raw(msg.command_code, 0, APP_COMMON, msg.hop_by_hop, msg.end_to_end, body))
        self._last_rx = now
        self._events.append(
            CapabilitiesExchanged(
                peer_host=self.peer_host or "",
                peer_realm=self.peer_realm or "",
                product_name=self._peer_product,
                application_ids=self._peer_apps,
            )
        )

    def _do_send_cea_reject(self, msg: Message | None, now: float) -> None:
        if msg is None or self._cer_reject is None:  # pragma: no cover
            raise LocalProtocolError("SEND_CEA_REJECT without a CER")
        code, failed, text = self._cer_reject
        if code == ResultCode.DIAMETER_UNKNOWN_PEER:
            # A protocol error (3xxx): the E bit and the answer-message format (RFC 6733 §7.2),
            # which still holds Origin-Host/-Realm; the capabilities are not advertised to a
            # peer that is refused.
            flags = FLAG_ERROR
            body = d.RESULT_CODE.encode(code) + self._base_avps + d.ERROR_MESSAGE.encode(text[:200])
            reason, refusal = CloseReason.UNKNOWN_PEER, "unknown-peer"
        else:
            flags = 0
            body = d.RESULT_CODE.encode(code) + self._capabilities_avps() + d.ERROR_MESSAGE.encode(text)
            reason, refusal = CloseReason.NO_COMMON_APPLICATION, None
        if failed:
            body += d.FAILED_AVP.encode(failed)
        self._out.append(
            encode_raw(msg.command_code, flags, APP_COMMON, msg.hop_by_hop, msg.end_to_end, body)
        )
        self._events.append(
            ProtocolErrorOccurred(
                result_code=code,
                command_code=msg.command_code,
                detail=text,
                answered=True,
                refusal=refusal,
            )
        )
        self._close_reason, self._close_code = reason, code

    def _do_reject_before_cer(self, msg: Message | None, now: float) -> None:
        """RFC 6733 §5.6 has no transition for other messages before CER: refuse with 3010
        DIAMETER_UNKNOWN_PEER (E bit) and close."""
        self._close_reason, self._close_code = CloseReason.PROTOCOL_ERROR, ResultCode.DIAMETER_UNKNOWN_PEER
        if msg is None:  # pragma: no cover
            return
        text = "message before capabilities exchange"
        if msg.is_request:
            self._queue_error_answer(
                msg.command_code,
                msg.application_id,
                msg.flags,
                msg.hop_by_hop,
                msg.end_to_end,
                *_echo_of(msg.avps),
                ResultCode.DIAMETER_UNKNOWN_PEER,
                text,
                None,
            )
        self._events.append(
            ProtocolErrorOccurred(
                result_code=ResultCode.DIAMETER_UNKNOWN_PEER,
                command_code=msg.command_code,
                detail=text,
                answered=msg.is_request,
            )
        )

    def _do_refuse_cer(self, msg: Message | None, now: float) -> None:
        if msg is None:  # pragma: no cover
            return
        text = "capabilities already exchanged on this connection"
        self._queue_error_answer(
            msg.command_code,
            APP_COMMON,
            msg.flags,
            msg.hop_by_hop,
            msg.end_to_end,
            *_echo_of(msg.avps),
            ResultCode.DIAMETER_UNABLE_TO_COMPLY,
            text,
            None,
        )
        self._events.append(
            ProtocolErrorOccurred(
                result_code=ResultCode.DIAMETER_UNABLE_TO_COMPLY,
                command_code=msg.command_code,
                detail=text,
                answered=True,
            )
        )

    def _do_accept_cea(self, msg: Message | None, now: float) -> None:
        self._last_rx = now
        self._events.append(
            CapabilitiesExchanged(
                peer_host=self.peer_host or "",
                peer_realm=self.peer_realm or "",
                product_name=None,
                application_ids=self._peer_apps,
            )
        )

    def _do_send_dwa(self, msg: Message | None, now: float) -> None:
        if msg is None:  # pragma: no cover
            return
        if self.answer_watchdog is not None and not self.answer_watchdog():
            return
        body = d.RESULT_CODE.encode(ResultCode.DIAMETER_SUCCESS) + self._base_avps
        if self._osi is not None:
            body += d.ORIGIN_STATE_ID.encode(self._osi)
        self._out.append(encode_raw(msg.command_code, 0, APP_COMMON, msg.hop_by_hop, msg.end_to_end, body))

    def _do_note_dwa(self, msg: Message | None, now: float) -> None:
        self._dwr_sent = None
        self._suspect = False
        self._tw_next = self._tw + self._draw_jitter()
        self._events.append(WatchdogAnswered())

    def _do_send_dwr(self, msg: Message | None, now: float) -> None:
        body = self._base_avps
        if self._osi is not None:
            body += d.ORIGIN_STATE_ID.encode(self._osi)
        self._queue_request(Command.DEVICE_WATCHDOG, APP_COMMON, 0, body)
        self._dwr_sent = now
        self._tw_next = self._tw + self._draw_jitter()

    def _do_send_dpr(self, msg: Message | None, now: float) -> None:
        cause = self._dpr_cause
        self._queue_request(
            Command.DISCONNECT_PEER, APP_COMMON, 0, self._base_avps + d.DISCONNECT_CAUSE.encode(cause)
        )
        self._dpr_deadline = now + self._dpa_timeout
        self._close_reason = CloseReason.DPR

    def _do_send_dpa(self, msg: Message | None, now: float) -> None:
        if msg is None:  # pragma: no cover
            return
        cause_avp = msg.find(d.DISCONNECT_CAUSE.code)
        cause = (
            int.from_bytes(cause_avp.data, "big")
            if cause_avp is not None and len(cause_avp.data) == 4
            else None
        )
        body = d.RESULT_CODE.encode(ResultCode.DIAMETER_SUCCESS) + self._base_avps
        self._out.append(encode_raw(msg.command_code, 0, APP_COMMON, msg.hop_by_hop, msg.end_to_end, body))
        self._events.append(DisconnectRequested(cause=cause))
        self._close_reason = CloseReason.PEER_DPR

    def _do_deliver_request(self, msg: Message | None, now: float) -> None:  # pragma: no cover
        # The ECR path of _handle_message performs this action itself, for every ECR in a state of
        # _DELIVER_IN (checked at import), and no other request is classified RCV_REQUEST there:
        # _step never gets here. A guard, like _step's for a missing pair, not a second decoder.
        raise LocalProtocolError("DELIVER_REQUEST belongs to the ECR path of _handle_message")

    def _do_deliver_answer(self, msg: Message | None, now: float) -> None:
        if msg is None:  # pragma: no cover
            return
        if msg.command_code == Command.ME_IDENTITY_CHECK:
            ev: EquipmentCheckAnswered = decode_eca(msg)
            self._events.append(ev)

    def _do_refuse_local(self, msg: Message | None, now: float) -> None:
        raise LocalProtocolError(f"cannot send a request in state {self.state.name}")

    def _do_disconnect(self, msg: Message | None, now: float) -> None:
        if msg is not None and self.state is PeerState.WAIT_CEA and self._close_code is None:
            self._close_reason = CloseReason.PROTOCOL_ERROR

    # --- helpers -----------------------------------------------------------------------------

    def _next_hbh(self) -> int:
        self._hbh = (self._hbh + 1) & 0xFFFFFFFF
        return self._hbh

    def _next_e2e(self) -> int:
        self._e2e = (self._e2e + 1) & 0xFFFFFFFF
        return self._e2e

    def _queue_request(self, command: int, app: int, flags: int, body: bytes) -> int:
        hbh = self._next_hbh()
        self._pending[hbh] = command
        self._out.append(encode_raw(command, FLAG_REQUEST | flags, app, hbh, self._next_e2e(), body))
        return hbh

    def _queue_error_answer(
        self,
        command: int,
        app: int,
        req_flags: int,
        hbh: int,
        e2e: int,
        session: bytes,
        proxy: bytes,
        code: int,
        text: str,
        failed_avp: bytes | None,
    ) -> None:
        """§7.2 answer-message for 3xxx (E bit) or the command's own answer for 5xxx, echoing
        the request's Session-Id and every Proxy-Info (§6.2), given encoded."""
        flags = req_flags & FLAG_PROXIABLE
        if 3000 <= code < 4000:
            flags |= FLAG_ERROR
        body = session + d.RESULT_CODE.encode(code)
        if command == Command.ME_IDENTITY_CHECK and not flags & FLAG_ERROR:
            body += d.AUTH_SESSION_STATE.encode(d.AuthSessionState.NO_STATE_MAINTAINED)
        body += self._base_avps
        if command == Command.CAPABILITIES_EXCHANGE and not flags & FLAG_ERROR:
            body = d.RESULT_CODE.encode(code) + self._capabilities_avps()
        if text:
            body += d.ERROR_MESSAGE.encode(text[:200])
        if failed_avp is not None:
            body += d.FAILED_AVP.encode(failed_avp)
        body += proxy
        self._out.append(encode_raw(command, flags, app, hbh, e2e, body))


def _echo_of(avps: list[Avp]) -> tuple[bytes, bytes]:
    """(first Session-Id, every Proxy-Info) of a decoded request, encoded, for its error answer."""
    session = b""
    proxy = b""
    for a in avps:
        if a.vendor_id == 0 and a.code == 263 and not session:
            session = a.encode()
        elif a.vendor_id == 0 and a.code == 284:
            proxy += a.encode()
    return session, proxy


def describe(exc: ProtocolError) -> str:
    """One line for logs: ``5005 DIAMETER_MISSING_AVP: missing AVP Terminal-Information``."""
    try:
        name = ResultCode(exc.result_code).name
    except ValueError:
        name = str(exc.result_code)
    return f"{exc.result_code} {name}: {exc}"
