"""The Diameter dictionary the EIR needs: RFC 6733 base protocol and 3GPP TS 29.272 S13.

AVP codes, types and M-bit rules were checked against RFC 6733 §4.5 (the base AVP table), 3GPP TS
29.272 §7.3 (S13 AVPs, table 7.3.1) and Wireshark 4.0's ``diameter/dictionary.xml``: the M bit is
*must not* for Product-Name (269), Firmware-Revision (267), Error-Message (281) and
Error-Reporting-Host (294), *must* for the other base AVPs and for every 3GPP AVP used here (all of
which also carry the V bit with Vendor-Id 10415).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .codec import AVP_FLAG_MANDATORY, Avp, AvpType, encode_avp, encode_value

__all__ = [
    "APP_RELAY",
    "APP_S13",
    "AVPS",
    "VENDOR_3GPP",
    "AuthSessionState",
    "AvpDef",
    "Command",
    "DisconnectCause",
    "EquipmentStatus",
    "ResultCode",
    "lookup",
]

VENDOR_3GPP: Final = 10415
APP_S13: Final = 16777252
"""3GPP S13/S13' (TS 29.272 §7.1.8; IANA)."""
APP_COMMON: Final = 0
"""Diameter common messages: CER/CEA, DWR/DWA, DPR/DPA (RFC 6733 §2.4)."""
APP_RELAY: Final = 0xFFFFFFFF
"""A relay advertises this and shares every application (RFC 6733 §2.4, §5.3)."""


class Command(IntEnum):
    CAPABILITIES_EXCHANGE = 257
    DEVICE_WATCHDOG = 280
    DISCONNECT_PEER = 282
    ME_IDENTITY_CHECK = 324
    """TS 29.272 §7.2.19/§7.2.20 ECR/ECA."""


class ResultCode(IntEnum):
    """RFC 6733 §7.1 (and the 3GPP experimental code used by S13)."""

    DIAMETER_SUCCESS = 2001
    DIAMETER_COMMAND_UNSUPPORTED = 3001
    DIAMETER_UNABLE_TO_DELIVER = 3002
    DIAMETER_REALM_NOT_SERVED = 3003
    DIAMETER_TOO_BUSY = 3004
    DIAMETER_LOOP_DETECTED = 3005
    DIAMETER_APPLICATION_UNSUPPORTED = 3007
    DIAMETER_INVALID_HDR_BITS = 3008
    DIAMETER_INVALID_AVP_BITS = 3009
    DIAMETER_UNKNOWN_PEER = 3010
    DIAMETER_AVP_UNSUPPORTED = 5001
    DIAMETER_UNKNOWN_SESSION_ID = 5002
    DIAMETER_INVALID_AVP_VALUE = 5004
    DIAMETER_MISSING_AVP = 5005
    DIAMETER_NO_COMMON_APPLICATION = 5010
    DIAMETER_UNSUPPORTED_VERSION = 5011
    DIAMETER_UNABLE_TO_COMPLY = 5012
    DIAMETER_INVALID_AVP_LENGTH = 5014
    DIAMETER_INVALID_MESSAGE_LENGTH = 5015
    DIAMETER_ERROR_EQUIPMENT_UNKNOWN = 5422
    """Experimental-Result-Code, Vendor-Id 10415 (TS 29.272 §7.4.3)."""

    @property
    def is_protocol_error(self) -> bool:
        """3xxx answers go out with the E bit set (RFC 6733 §7.1.3)."""
        return 3000 <= self < 4000


class EquipmentStatus(IntEnum):
    """TS 29.272 §7.3.51."""

    WHITELISTED = 0
    BLACKLISTED = 1
    GREYLISTED = 2


class DisconnectCause(IntEnum):
    """RFC 6733 §5.4.3."""

    REBOOTING = 0
    BUSY = 1
    DO_NOT_WANT_TO_TALK_TO_YOU = 2


class AuthSessionState(IntEnum):
    """RFC 6733 §8.11. S13 is stateless: NO_STATE_MAINTAINED (TS 29.272 §7.2.19)."""

    STATE_MAINTAINED = 0
    NO_STATE_MAINTAINED = 1


@dataclass(frozen=True, slots=True)
class AvpDef:
    """One dictionary entry. ``mandatory`` is the M bit we set (and expect) on this AVP."""

    name: str
    code: int
    avp_type: AvpType
    vendor_id: int = 0
    mandatory: bool = True

    @property
    def flags(self) -> int:
        return AVP_FLAG_MANDATORY if self.mandatory else 0

    def encode(self, value: object) -> bytes:
        """The whole AVP (header, payload, padding)."""
        return encode_avp(
            self.code, encode_value(self.avp_type, value), flags=self.flags, vendor_id=self.vendor_id
        )

    def make(self, value: object) -> Avp:
        return Avp(
            self.code,
            self.flags | (0x80 if self.vendor_id else 0),
            self.vendor_id,
            encode_value(self.avp_type, value),
        )


T = AvpType

# RFC 6733 base protocol AVPs (§4.5 table).
USER_NAME = AvpDef("User-Name", 1, T.UTF8_STRING)
CLASS = AvpDef("Class", 25, T.OCTET_STRING)
SESSION_TIMEOUT = AvpDef("Session-Timeout", 27, T.UNSIGNED32)
PROXY_STATE = AvpDef("Proxy-State", 33, T.OCTET_STRING)
ACCT_SESSION_ID = AvpDef("Acct-Session-Id", 44, T.OCTET_STRING)
ACCT_MULTI_SESSION_ID = AvpDef("Acct-Multi-Session-Id", 50, T.UTF8_STRING)
EVENT_TIMESTAMP = AvpDef("Event-Timestamp", 55, T.TIME)
ACCT_INTERIM_INTERVAL = AvpDef("Acct-Interim-Interval", 85, T.UNSIGNED32)
HOST_IP_ADDRESS = AvpDef("Host-IP-Address", 257, T.ADDRESS)
AUTH_APPLICATION_ID = AvpDef("Auth-Application-Id", 258, T.UNSIGNED32)
ACCT_APPLICATION_ID = AvpDef("Acct-Application-Id", 259, T.UNSIGNED32)
VENDOR_SPECIFIC_APPLICATION_ID = AvpDef("Vendor-Specific-Application-Id", 260, T.GROUPED)
REDIRECT_HOST_USAGE = AvpDef("Redirect-Host-Usage", 261, T.ENUMERATED)
REDIRECT_MAX_CACHE_TIME = AvpDef("Redirect-Max-Cache-Time", 262, T.UNSIGNED32)
SESSION_ID = AvpDef("Session-Id", 263, T.UTF8_STRING)
ORIGIN_HOST = AvpDef("Origin-Host", 264, T.DIAMETER_IDENTITY)
SUPPORTED_VENDOR_ID = AvpDef("Supported-Vendor-Id", 265, T.UNSIGNED32)
VENDOR_ID = AvpDef("Vendor-Id", 266, T.UNSIGNED32)
FIRMWARE_REVISION = AvpDef("Firmware-Revision", 267, T.UNSIGNED32, mandatory=False)
RESULT_CODE = AvpDef("Result-Code", 268, T.UNSIGNED32)
PRODUCT_NAME = AvpDef("Product-Name", 269, T.UTF8_STRING, mandatory=False)
SESSION_BINDING = AvpDef("Session-Binding", 270, T.UNSIGNED32)
SESSION_SERVER_FAILOVER = AvpDef("Session-Server-Failover", 271, T.ENUMERATED)
MULTI_ROUND_TIME_OUT = AvpDef("Multi-Round-Time-Out", 272, T.UNSIGNED32)
DISCONNECT_CAUSE = AvpDef("Disconnect-Cause", 273, T.ENUMERATED)
AUTH_REQUEST_TYPE = AvpDef("Auth-Request-Type", 274, T.ENUMERATED)
AUTH_GRACE_PERIOD = AvpDef("Auth-Grace-Period", 276, T.UNSIGNED32)
AUTH_SESSION_STATE = AvpDef("Auth-Session-State", 277, T.ENUMERATED)
ORIGIN_STATE_ID = AvpDef("Origin-State-Id", 278, T.UNSIGNED32)
FAILED_AVP = AvpDef("Failed-AVP", 279, T.GROUPED)
PROXY_HOST = AvpDef("Proxy-Host", 280, T.DIAMETER_IDENTITY)
ERROR_MESSAGE = AvpDef("Error-Message", 281, T.UTF8_STRING, mandatory=False)
ROUTE_RECORD = AvpDef("Route-Record", 282, T.DIAMETER_IDENTITY)
DESTINATION_REALM = AvpDef("Destination-Realm", 283, T.DIAMETER_IDENTITY)
PROXY_INFO = AvpDef("Proxy-Info", 284, T.GROUPED)
RE_AUTH_REQUEST_TYPE = AvpDef("Re-Auth-Request-Type", 285, T.ENUMERATED)
ACCOUNTING_SUB_SESSION_ID = AvpDef("Accounting-Sub-Session-Id", 287, T.UNSIGNED64)
AUTHORIZATION_LIFETIME = AvpDef("Authorization-Lifetime", 291, T.INTEGER32)
REDIRECT_HOST = AvpDef("Redirect-Host", 292, T.DIAMETER_URI)
DESTINATION_HOST = AvpDef("Destination-Host", 293, T.DIAMETER_IDENTITY)
ERROR_REPORTING_HOST = AvpDef("Error-Reporting-Host", 294, T.DIAMETER_IDENTITY, mandatory=False)
TERMINATION_CAUSE = AvpDef("Termination-Cause", 295, T.ENUMERATED)
ORIGIN_REALM = AvpDef("Origin-Realm", 296, T.DIAMETER_IDENTITY)
EXPERIMENTAL_RESULT = AvpDef("Experimental-Result", 297, T.GROUPED)
EXPERIMENTAL_RESULT_CODE = AvpDef("Experimental-Result-Code", 298, T.UNSIGNED32)
INBAND_SECURITY_ID = AvpDef("Inband-Security-Id", 299, T.UNSIGNED32)
ACCOUNTING_RECORD_TYPE = AvpDef("Accounting-Record-Type", 480, T.ENUMERATED)
ACCOUNTING_REALTIME_REQUIRED = AvpDef("Accounting-Realtime-Required", 483, T.ENUMERATED)
ACCOUNTING_RECORD_NUMBER = AvpDef("Accounting-Record-Number", 485, T.UNSIGNED32)
DRMP = AvpDef("DRMP", 301, T.ENUMERATED, mandatory=False)
"""RFC 7944 (listed in the TS 29.272 ECR/ECA ABNF); the M bit must not be set."""

# 3GPP TS 29.229 §6.3.29-31, used by TS 29.272 for feature negotiation.
SUPPORTED_FEATURES = AvpDef("Supported-Features", 628, T.GROUPED, VENDOR_3GPP)
FEATURE_LIST_ID = AvpDef("Feature-List-ID", 629, T.UNSIGNED32, VENDOR_3GPP)
FEATURE_LIST = AvpDef("Feature-List", 630, T.UNSIGNED32, VENDOR_3GPP)

# 3GPP TS 29.272 §7.3 (S13).
TERMINAL_INFORMATION = AvpDef("Terminal-Information", 1401, T.GROUPED, VENDOR_3GPP)
IMEI = AvpDef("IMEI", 1402, T.UTF8_STRING, VENDOR_3GPP)
SOFTWARE_VERSION = AvpDef("Software-Version", 1403, T.UTF8_STRING, VENDOR_3GPP)
EQUIPMENT_STATUS = AvpDef("Equipment-Status", 1445, T.ENUMERATED, VENDOR_3GPP)
MEID_3GPP2 = AvpDef("3GPP2-MEID", 1471, T.OCTET_STRING, VENDOR_3GPP)

AVPS: Final[dict[tuple[int, int], AvpDef]] = {
    (d.code, d.vendor_id): d for d in list(globals().values()) if isinstance(d, AvpDef)
}
"""Every known AVP by (code, vendor). An AVP outside this table with the M bit set is answered
with 5001 DIAMETER_AVP_UNSUPPORTED (RFC 6733 §4.1)."""


def lookup(code: int, vendor_id: int = 0) -> AvpDef | None:
    return AVPS.get((code, vendor_id))
