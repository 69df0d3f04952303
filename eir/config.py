"""Typed configuration: YAML file → ``EIR_*`` environment → CLI overrides, validated at load.

Every field has a docstring-style comment; a bad value raises :class:`ConfigError` naming the key
(``diameter.listen[1]: expected HOST:PORT``). Environment variables name a key path with ``_``
between parts, upper-cased: ``EIR_DIAMETER_ORIGIN_HOST=eir.lab`` sets ``diameter.origin_host``;
lists are comma-separated (``EIR_DIAMETER_LISTEN=127.0.0.1:3868,[::1]:3868``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

VerdictName = Literal["white", "grey", "black"]
UnknownPolicy = Literal["white", "grey", "black", "unknown"]
BadCheckDigit = Literal["malformed", "ignore", "white", "grey", "black", "unknown"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


@dataclass(slots=True)
class LogConfig:
    level: str = "info"
    """debug | info | warning | error. At debug every check is logged with its verdict."""
    format: Literal["auto", "console", "json"] = "auto"
    """auto: console on a TTY, JSON lines otherwise."""
    rate_limit_burst: int = 10
    """Warnings about input a peer controls (protocol errors, refusals, refused connections): the first
    N of each kind per ``rate_limit_interval`` are logged, the rest counted in eir_log_suppressed."""
    rate_limit_interval: float = 60.0
    """Seconds; at its end one ``log_suppressed`` line per kind says how many were left out."""
    mask_identities: bool = False
    """Mask IMEI/IMSI/MSISDN digits in log lines and MQTT events: an IMEI keeps its TAC (8 digits), an
    IMSI its MCC+MNC (5 digits), the rest become ``*``."""


@dataclass(slots=True)
class DiameterConfig:
    enabled: bool = True
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:3868"])
    """HOST:PORT addresses ([v6]:port for IPv6)."""
    transports: list[Literal["tcp", "sctp"]] = field(default_factory=lambda: ["tcp", "sctp"])
    """SCTP is used where the kernel has it, with a log line when it does not."""
    origin_host: str = "eir.localdomain"
    origin_realm: str = "localdomain"
    product_name: str = "eir-emulator"
    vendor_id: int = 0
    watchdog_interval: float = 30.0
    """Tw (RFC 3539 §3.4.1), seconds. A peer silent for 2*Tw after a DWR is closed."""
    max_message_size: int = 65536
    """Larger messages are answered with 5015 DIAMETER_INVALID_MESSAGE_LENGTH and the connection is
    closed."""
    max_in_flight: int = 1024
    """Per connection: reading pauses when this many checks are outstanding."""
    accept_realms: list[str] = field(default_factory=list)
    """Destination-Realms answered besides ``origin_realm``; an ECR for another gets 3003
    DIAMETER_REALM_NOT_SERVED."""
    accept_hosts: list[str] = field(default_factory=list)
    """Destination-Hosts answered besides ``origin_host``; an ECR naming another gets 3002
    DIAMETER_UNABLE_TO_DELIVER (an ECR without Destination-Host is routed by realm alone)."""
    allow_hosts: list[str] = field(default_factory=list)
    """Peer allow-list: CER Origin-Host patterns (``mme*.epc.lab``, case-insensitive); empty: any."""
    allow_realms: list[str] = field(default_factory=list)
    """Peer allow-list: CER Origin-Realm patterns; empty: any."""
    allow_sources: list[str] = field(default_factory=list)
    """Peer allow-list: source addresses (CIDRs, ``10.0.0.0/8``, ``2001:db8::/32``); empty: any. A peer
    failing any non-empty list gets CEA 3010 DIAMETER_UNKNOWN_PEER and is disconnected."""
    check_origin_host: bool = True
    """An ECR's Origin-Host must be the one of the peer's CER (else 5012 DIAMETER_UNABLE_TO_COMPLY)."""
    forwarding_peers: list[str] = field(default_factory=list)
    """CER Origin-Host patterns of agents that forward other nodes' ECRs (a DRA, relay or proxy):
    their ECRs may carry any Origin-Host."""
    max_connections: int = 4096
    """Connections held at once (all sources); more are closed at accept."""
    max_connections_per_source: int = 1024
    """Connections held at once from one source address; more are closed at accept."""
    write_timeout: float = 30.0
    """Seconds a peer may leave our answers unread once they fill ``write_buffer_limit`` (it has
    stopped reading): then the connection is cut (eir_connections_closed reason write_stalled). 0:
    never."""
    write_buffer_limit: int = 262144
    """Octets of answers queued for a peer (beyond the kernel's socket buffer) above which reading
    from it pauses and the ``write_timeout`` clock runs."""
    tls_listen: list[str] = field(default_factory=list)
    """HOST:PORT addresses served over TLS/TCP (RFC 6733 §13: TLS from the first octet, on a port of
    its own; 5658 is the IANA one); need tls_cert and tls_key."""
    tls_cert: str | None = None
    """PEM certificate chain of the EIR (for tls_listen)."""
    tls_key: str | None = None
    """PEM private key of tls_cert."""
    tls_peer_ca: str | None = None
    """PEM CA bundle: when set, peers must present a certificate it signed (RFC 6733 §13.1 mutual
    authentication); else any peer completes the handshake and the allow-lists decide."""
    tls_keylog: str | None = None
    """Append the TLS session secrets here (NSS key log format) so that Wireshark can decrypt."""


@dataclass(slots=True)
class M3uaConfig:
    enabled: bool = True
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:2905"])
    transports: list[Literal["tcp", "sctp"]] = field(default_factory=lambda: ["tcp", "sctp"])
    connect: list[str] = field(default_factory=list)
    """Outbound ASP associations to an STP/SG (HOST:PORT)."""
    point_code: int = 2
    """The EIR's own signalling point code (integer, ITU 14-bit), used in the SCCP calling address of
    answers when the request addressed the EIR by point code. The MTP3 OPC/DPC and network indicator
    of an answer are the request's, reversed."""
    routing_context: int | None = None
    network_appearance: int | None = None
    asp_id: int | None = None
    """ASP Identifier sent in ASPUP when the EIR connects out (some STPs require one: ERR 0x0E)."""
    ssn: int = 9
    global_title: str = "491700000009"
    """E.164 digits of the EIR's GT (used as calling address in answers)."""
    map_versions: list[int] = field(default_factory=lambda: [1, 2, 3])
    """equipmentMngtContext versions the EIR accepts; others get AC negotiation to the highest."""
    beat_interval: float = 30.0
    """Send M3UA BEAT every N seconds (0: never; answer peers' BEATs always); an association whose
    peer leaves two BEATs unanswered is closed."""
    setup_timeout: float = 30.0
    """Seconds from connect to ASP-ACTIVE: an association still not active then is closed. 0: never."""
    idle_timeout: float = 600.0
    """Seconds without a whole message from the peer (BEAT ACKs count) before the association is
    closed. 0: never."""
    write_timeout: float = 30.0
    """Seconds a peer may leave our messages unread once they fill ``write_buffer_limit``; then the
    association is cut. 0: never."""
    write_buffer_limit: int = 262144
    """Octets queued for a peer (beyond the kernel's socket buffer) above which reading from it
    pauses and the ``write_timeout`` clock runs."""
    dialogue_timeout: float = 30.0
    """Seconds a TCAP dialogue may wait for its verdict before it is aborted towards the MSC."""
    max_in_flight: int = 1024
    allow_sources: list[str] = field(default_factory=list)
    """Accepted associations' source addresses (CIDRs); empty: any. Others get ERR Refused -
    Management Blocking (0x0d) and are closed at once."""
    allow_asp_ids: list[int] = field(default_factory=list)
    """ASP Identifiers allowed in ASPUP; empty: any. Set, an ASPUP without one gets ERR ASP Identifier
    Required (0x0e), one not listed ERR Refused - Management Blocking (0x0d); then the close."""
    allow_routing_contexts: list[int] = field(default_factory=list)
    """Routing contexts an ASPAC may name; empty: any. Another (or none, when set) gets ERR Invalid
    Routing Context (0x19) and the close."""
    max_connections: int = 4096
    """Associations held at once (all sources); more are closed at accept."""
    max_connections_per_source: int = 1024
    """Associations held at once from one source address; more are closed at accept."""
    accept_point_codes: list[int] = field(default_factory=list)
    """DPCs answered besides ``point_code``; DATA for any other DPC gets M3UA DUNA naming it."""
    network_indicators: list[int] = field(default_factory=list)
    """MTP3 network indicators answered (0 international, 2 national …); empty: any. DATA with
    another is discarded (counted, logged)."""
    accept_global_titles: list[str] = field(default_factory=list)
    """Called GTs answered besides ``global_title`` for messages routed on GT: digits, or a prefix
    ending in ``*`` (``"*"``: any). Another gets UDTS no translation for this specific address."""
    screen_opcs: list[int] = field(default_factory=list)
    """Screening (GSMA FS.11 category 1): the OPCs allowed to ask; empty: any. Others: UDTS
    unqualified when return on error is set, else discarded; counted and logged."""
    screen_calling_gt_prefixes: list[str] = field(default_factory=list)
    """Screening: calling GT prefixes allowed to ask (``"4917"``); empty: any. A message without a
    calling GT fails a non-empty list."""


@dataclass(slots=True)
class N5gConfig:
    """N5g-eir EquipmentIdentityCheck (TS 29.511) over HTTP/2 (prior knowledge) and HTTP/1.1."""

    enabled: bool = True
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:8000"])
    """HOST:PORT addresses; the AMF's 5G-EIR URI is ``http://HOST:PORT`` (apiRoot)."""
    bare_pei: bool = True
    """Accept a PEI of 15 bare digits (no ``imei-`` prefix, as go-eir does); false: 400."""
    non_imei_pei: Literal["unknown", "bad_request"] = "unknown"
    """A well-formed ``mac-…`` / ``eui-…`` PEI: 404 ERROR_EQUIPMENT_UNKNOWN or 400
    MANDATORY_QUERY_PARAM_INCORRECT."""
    max_uri_length: int = 2048
    """Longer request targets get 414 URI Too Long."""
    max_concurrent_streams: int = 256
    """SETTINGS_MAX_CONCURRENT_STREAMS per connection; streams beyond it get RST_STREAM REFUSED_STREAM."""
    max_header_list_size: int = 16384
    """SETTINGS_MAX_HEADER_LIST_SIZE (and the HTTP/1.1 head bound), octets."""
    max_body: int = 65536
    """Request bodies above it get 413 (a GET has none)."""
    max_in_flight: int = 1024
    """Per connection: reading pauses when this many checks wait for the store."""
    idle_timeout: float = 600.0
    """Seconds without a whole request from the client and none in progress before the connection
    is closed (HTTP/2: GOAWAY NO_ERROR); bytes that complete no request — a head sent a byte at a
    time, pings alone — do not count, so a slow-header client is closed too; 0: never."""
    overload_pending: int = 4096
    """Checks waiting for the store across the server from which new requests are answered
    ``overload_status`` instead of queueing."""
    overload_status: int = 503
    """503 (cause NF_CONGESTION) or 429 (cause NF_CONGESTION_RISK), with Retry-After."""
    retry_after: int = 1
    """Seconds, in the Retry-After of overload answers."""
    tls_listen: list[str] = field(default_factory=list)
    """HOST:PORT addresses served over TLS (ALPN ``h2`` and ``http/1.1``); need tls_cert, tls_key."""
    tls_cert: str | None = None
    """PEM certificate chain of the EIR (for tls_listen)."""
    tls_key: str | None = None
    """PEM private key of tls_cert."""
    tls_client_ca: str | None = None
    """PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS)."""
    tls_keylog: str | None = None
    """Append the TLS session secrets here (NSS key log format) so that Wireshark can decrypt."""
    tls_sniff: bool = False
    """``listen`` addresses also take TLS: a connection whose first byte is 0x16 (a TLS handshake)
    gets TLS with tls_cert/tls_key, any other is cleartext (h2c or HTTP/1.1) — one port for both."""
    max_connections: int = 4096
    """Client connections held at once (all sources, cleartext and TLS); more are closed at accept."""
    max_connections_per_source: int = 1024
    """Client connections held at once from one source address; more are closed at accept."""
    nrf: str | None = None
    """The NRF's apiRoot (``http://HOST:PORT``, HTTP/2 with prior knowledge; ``https://`` with ALPN
    h2): the EIR registers there on start (TS 29.510 NFRegister), heartbeats, deregisters on stop.
    None: no NRF."""
    nrf_advertise: str | None = None
    """HOST or HOST:PORT the NFProfile gives AMFs (address and ipEndPoints); default: the first
    ``n5g.listen`` address as bound (a wildcard 0.0.0.0 / :: needs this set)."""
    nf_instance_id: str | None = None
    """The EIR's nfInstanceId (a UUID); default: derived from the advertised address, so it stays
    the same across restarts."""
    nrf_heartbeat: int = 10
    """heartBeatTimer proposed in the NFProfile, seconds; the NRF's answer decides the interval."""
    nrf_retry_max: float = 30.0
    """Longest pause, seconds, between attempts while the NRF is away (1, 2, 4 … up to it)."""
    nrf_ca: str | None = None
    """PEM CA bundle that signed an ``https://`` NRF's certificate (a lab's own CA); None: the
    system's CAs."""
    oauth2_key: str | None = None
    """OAuth2 (TS 29.500 §6.7.3): a file with the NRF's token key — a PEM public key or certificate
    (RS256/PS256/ES256 …) or a shared secret (HS256); requests then need ``Authorization: Bearer``
    with a JWT carrying scope ``n5g-eir-eic`` (401/403 otherwise). None: no OAuth2."""
    oauth2_issuer: str | None = None
    """The ``iss`` a token must carry (the NRF's nfInstanceId); None: any."""
    oauth2_audience: list[str] = field(default_factory=list)
    """``aud`` values accepted; empty: the EIR's nfInstanceId or its NF type ``5G_EIR``."""


@dataclass(slots=True)
class CloneConfig:
    enabled: bool = True
    max_imsis: int = 3
    """Distinct IMSIs with one IMEI within the window before it is suspected cloned."""
    window: float = 3600.0
    """Seconds."""
    distinct_origins: bool = False
    """Also suspect an IMEI seen from two different origins (MSC GT / MME host) within the window.
    Off by default: a device on combined EPS/IMSI attach or CSFB is checked by its MME and by its
    MSC, and one moving within an MME pool by several MMEs — all legitimate."""
    verdict: VerdictName = "grey"
    max_tracked_imeis: int = 200_000
    """IMEIs whose sightings are held in memory (eir/sightings.py); beyond it the IMEI tracked
    longest is forgotten first. About 0.5 KB each."""
    max_values_per_imei: int = 32
    """IMSIs (and origins) remembered per IMEI; the oldest is forgotten first. Must exceed
    ``max_imsis``."""
    flush_interval: float = 0.2
    """Seconds between write-behind batches to the store: what a ``kill -9`` may lose."""
    share_interval: float = 1.0
    """Seconds between reads of the sightings other instances wrote (PostgreSQL, Redis, or an SQLite
    file shared by ``--workers``)."""
    max_stored: int = 2_000_000
    """Sightings kept in the store (rows, about 95 B each on disk); beyond it the oldest are deleted
    (``eir_sightings_evicted_total``). 0: no cap."""
    trusted_origins: list[str] = field(default_factory=list)
    """Origins whose checks record sightings (patterns, case-insensitive: a Diameter Origin-Host
    ``mme*.epc.lab``, a MAP calling GT ``4917*`` or ``pc:<OPC>``, an N5g-eir client's IP address
    ``10.1.*``); empty: every peer the interfaces admit. Others are answered as usual, but their
    IMSIs never count."""
    max_new_per_origin: float = 0.0
    """New sightings (an IMSI or origin not yet seen with the IMEI) recorded per second from one
    origin (a bucket of one second's worth, at least one); the excess is counted, not recorded.
    0: no limit."""
    max_new_per_second: float = 0.0
    """The same budget for all origins together. 0: no limit."""
    half_life: float = 0.0
    """Seconds: each sighting's weight halves with this age, and an IMEI counts the rounded-up sum
    of its weights, so a suspicion decays unless fresh sightings keep it (three IMSIs at once:
    suspect for about 0.58 half-lives). 0: every sighting in the window counts fully."""
    exempt_white: bool = False
    """An IMEI whose list entry is white, or which is paired with (or allowed for) the IMSI
    checked, records no sightings and is never suspected."""


@dataclass(slots=True)
class TacRuleConfig:
    enabled: bool = True
    """Once a TAC reference table is loaded (``eir lists import --format gsma-tac|pyhss-tac``), an
    IMEI whose TAC it lacks gets ``verdict`` (DIRBS ``gsma_not_found``). Silent with no table;
    ranks below the explicit lists (a listed IMEI keeps its list's verdict)."""
    verdict: VerdictName = "grey"
    grace_days: float = 0.0
    """Days, counted from the IMEI's first sighting with an unallocated TAC, during which
    ``verdict`` applies; then ``after_grace``. 0: ``verdict`` for good."""
    after_grace: VerdictName = "black"
    max_first_seen: int = 1_000_000
    """IMEIs whose first sighting is remembered (in memory and in the observations store; the
    oldest first sighting is forgotten first)."""


@dataclass(slots=True)
class RegistrationRuleConfig:
    enabled: bool = True
    """Once a registration list is loaded (``--format dirbs-registration``), an IMEI not on it gets
    ``verdict`` (DIRBS ``not_on_registration_list``). Silent with no list; ranks below the explicit
    lists."""
    verdict: VerdictName = "grey"


@dataclass(slots=True)
class NotificationRuleConfig:
    enabled: bool = True
    """DIRBS notification-list entries: ``before`` until their block date, ``after`` from it (UTC
    dates, against the EIR's clock). Off: they stay ``before`` (the status they were imported
    with) whatever the date."""
    before: VerdictName = "grey"
    after: VerdictName = "black"


@dataclass(slots=True)
class HandleConfig:
    enabled: bool = False
    """Resolve the record of an IMEI no list entry matched through an X.1255 Handle REST API
    (``GET {url}/api/handles/{prefix}/imei-<14 digits>``; record layout: protocols/handle.py)."""
    url: str = "http://127.0.0.1:8009"
    """http://HOST:PORT of the handle server (``eir sim handle`` serves one from a CSV)."""
    prefix: str = "20.500.12345"
    timeout: float = 0.5
    """Seconds a look-up may take; then ``on_failure`` (a check is never held longer)."""
    ttl: float = 300.0
    """Seconds an answer (found or not found) is cached; failures are cached for a tenth of it."""
    on_failure: Literal["skip", "white", "grey", "black"] = "skip"
    """A time-out or a bad answer: ``skip`` (the rule says nothing) or a verdict."""


@dataclass(slots=True)
class DuplicateConfig:
    enabled: bool = False
    """DIRBS ``duplicate_mk1`` on the per-day observation history (eir/duplicates.py): an IMEI
    seen with >= ``threshold`` distinct IMSIs over ``period_days`` *and* with a daily average of
    >= ``daily_avg`` IMSIs over ``daily_avg_days`` (averaged over the days it was seen, at least
    ``min_seen_days`` of them) is flagged — for good (sticky) — and gets ``verdict`` when that is
    stricter. A second clone rule beside the real-time ``clone``, classified in the background
    every ``classify_interval`` seconds, not per check. Only checks from
    ``policy.clone.trusted_origins`` (when set) feed the history."""
    verdict: VerdictName = "grey"
    threshold: int = 10
    period_days: int = 120
    period_months: int | None = None
    """DIRBS's other way of giving the ``threshold`` window: this many calendar months back from
    the day of the classification (so 28 to 31 days a month); when set it wins over
    ``period_days``."""
    use_msisdn: bool = False
    """DIRBS ``use_msisdn``: count distinct MSISDNs instead of IMSIs. Only checks that carry an
    MSISDN (Huawei's MAP checkIMEI forms, an N5g-eir ``msisdn-`` GPSI) feed the history then; S13
    and a standard checkIMEI carry none. The history holds what the option names when the pair was
    recorded: after switching it, the old values age out of the windows."""
    daily_avg: float = 4.0
    daily_avg_days: int = 30
    min_seen_days: int = 5
    classify_interval: float = 3600.0
    """Seconds between classifications (and prunings of the history)."""
    flush_interval: float = 1.0
    """Seconds between write-behind batches of the day's (IMEI, IMSI) pairs."""
    max_pending: int = 200_000
    """Pairs waiting for the store; beyond, new ones are counted and logged, not recorded."""
    max_rows: int = 5_000_000
    """History rows kept (IMEI, day, IMSI); beyond, the oldest days go first."""


@dataclass(slots=True)
class PolicyConfig:
    unknown_equipment: UnknownPolicy = "white"
    """Verdict for equipment on no list, or ``unknown`` for the interface's own error
    (S13 Experimental-Result 5422, MAP unknownEquipment 7)."""
    malformed: VerdictName = "black"
    """Verdict for an identity that fails validity (length, Luhn, all-zero)."""
    bad_check_digit: BadCheckDigit = "ignore"
    """A 15-digit IMEI whose 15th digit is neither its Luhn check digit nor the spare digit 0:
    ``malformed`` (the ``malformed`` verdict), ``ignore`` (looked up by its 14 digits, like any
    IMEI) or a verdict (white | grey | black | unknown). Default ``ignore``: UERANSIM's stock UE
    IMEI ``356938035643803`` fails the check, and a stock UERANSIM/Open5GS lab must register."""
    check_luhn: bool | None = None
    """Deprecated, kept for old config files: ``true`` = ``bad_check_digit: malformed``,
    ``false`` = ``bad_check_digit: ignore``; when set it wins over ``bad_check_digit``."""
    reserved_tacs: list[str] = field(default_factory=lambda: ["00000000"])
    """TACs treated as malformed (test / reserved)."""
    lock_verdict: VerdictName = "black"
    """Verdict for an IMEI not listed for an IMSI that is locked to its IMEIs."""
    golden: bool = True
    """The DIRBS golden list (``dirbs-golden``, the ``golden`` reference table): an IMEI on it is
    white whatever the lists (blacklist, notifications, stolen, barred — or the operator's own) and
    the later rules (lock, clone, duplicate, reference rules, handle) say — DIRBS never blocks a
    golden IMEI. Only validity ranks above it. ``false``: the table is kept but ignored."""
    clone: CloneConfig = field(default_factory=CloneConfig)
    tac_not_allocated: TacRuleConfig = field(default_factory=TacRuleConfig)
    not_registered: RegistrationRuleConfig = field(default_factory=RegistrationRuleConfig)
    notifications: NotificationRuleConfig = field(default_factory=NotificationRuleConfig)
    handle: HandleConfig = field(default_factory=HandleConfig)
    duplicate: DuplicateConfig = field(default_factory=DuplicateConfig)


@dataclass(slots=True)
class StoreConfig:
    url: str = "sqlite:///data/eir.db"
    """sqlite:///relative/path, sqlite:////abs/path, postgresql://…, redis://…, memory://"""
    observations_url: str | None = None
    """Where clone observations live (default: the list store). A Redis URL lets instances share them."""
    on_unavailable: Literal["failure", "white", "grey", "black"] = "failure"
    """failure: the interface's system-failure error (S13 5012, MAP systemFailure 34)."""
    poll_interval: float = 1.0
    """SQLite: seconds between data-version polls that pick up list changes."""
    keep_versions: int = 5
    """List versions kept for ``eir lists rollback`` (older ones are pruned at import)."""
    index_max_keys: int = 20_000_000
    """SQLite: the active list version is held in memory (by each worker process) as its exact keys
    (a set up to 250k, ≈ 64 bytes a key; above, a filter of 2-4 bytes a key: the bitmap's size is a
    power of two) and its range segments (16
    bytes each, their rows too up to 100k), up to this many keys (and 2M segments), so that an
    unlisted IMEI is answered without a statement (eir/store/listindex.py); 0: never."""
    connect_timeout: float = 3.0
    """PostgreSQL / Redis: seconds to wait for a connection before the store counts as unavailable."""
    command_timeout: float = 5.0
    """PostgreSQL / Redis: seconds a lookup or write may take before the store counts as unavailable."""
    call_timeout: float = 1.0
    """PostgreSQL / Redis: seconds one check may wait for the store in all (connecting included)
    before it gets the ``on_unavailable`` answer; a hung server then costs each check this long, not
    ``connect_timeout`` + ``command_timeout``."""


@dataclass(slots=True)
class OverloadConfig:
    """Global overload control (eir/overload.py): checks waiting for the store, for the process and
    per peer. Above the budget a check is answered at once — S13 3004 DIAMETER_TOO_BUSY, MAP
    ``map_answer``, N5g-eir ``n5g.overload_status`` with Retry-After — never queued."""

    max_in_flight: int = 2048
    """Checks waiting for the store (or a delay fault) in the whole process, all interfaces: bounds
    memory whatever the number of connections."""
    max_in_flight_per_peer: int = 256
    """The same for one peer (S13: the CER Origin-Host; MAP: the calling GT or pc:OPC; N5g-eir: the
    client address). What waits here queues for the store's connections: size it to what the store
    answers well within the peers' request timeout (README "Overload control")."""
    fair_share_above: float = 0.5
    """Fraction of max_in_flight above which a peer already holding its fair share (max_in_flight /
    peers holding slots) is refused: a flooding peer cannot take the whole budget."""
    map_answer: Literal["system_failure", "tc_abort"] = "system_failure"
    """MAP checkIMEI refused for overload: ReturnError systemFailure (34), or a TC-U-Abort."""


@dataclass(slots=True)
class ListsConfig:
    import_on_start: list[str] = field(default_factory=list)
    """List files imported at start when the store holds no list yet (demo lists for ``make run``):
    any ``eir lists import`` format, recognised by its header (a DIRBS list, a GSMA TAC file …)."""
    sync_from: str | None = None
    """URL of a central list (full or DIRBS delta, any ``eir lists import`` format) that ``eir lists
    sync`` follows when given no ``--from``, and that ``eir serve`` follows on its own when
    ``sync_interval`` is above 0."""
    sync_interval: float = 0.0
    """Seconds between fetches (conditional GETs) of ``sync_from``: by ``eir serve`` (worker 0) and by
    ``eir lists sync``; 0: ``eir serve`` does not fetch, ``eir lists sync`` fetches once."""


@dataclass(slots=True)
class MetricsConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:9464"
    """``GET /metrics`` (Prometheus text format); other paths 404, other methods 405."""
    read_timeout: float = 10.0
    """Seconds a client may take to send a request (and stay idle between keep-alive requests)."""
    max_connections: int = 64
    """Scrape connections held at once; more are closed at accept."""
    max_connections_per_source: int = 16
    """Scrape connections held at once from one source address."""
    username: str | None = None
    """With ``password``: scrapes must send HTTP basic auth (else 401)."""
    password: str | None = None
    token: str | None = None
    """Scrapes may send ``Authorization: Bearer <token>`` (else 401). With username/password too,
    either is accepted."""
    tls_cert: str | None = None
    """PEM certificate chain: the metrics listener speaks HTTPS only."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert``."""


@dataclass(slots=True)
class AdminToken:
    token: str = ""
    """The bearer token (``Authorization: Bearer <token>``); never logged."""
    role: Literal["read", "write"] = "read"
    """read: GET endpoints; write: also changes (lists, faults, rollback)."""


@dataclass(slots=True)
class AdminConfig:
    """The admin API (``/api/v1``, README "Admin API"): HTTP/1.1 and HTTP/2 (h2c) on its own port."""

    enabled: bool = True
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:9465"])
    """HOST:PORT addresses. A non-loopback address needs a token (else ``eir serve`` refuses to start)."""
    token: str | None = None
    """A read-write token (``EIR_ADMIN_TOKEN``). With no token at all the API answers every request
    from loopback without authentication."""
    tokens: list[AdminToken] = field(default_factory=list)
    """More tokens, each with a role: ``[{token: ..., role: read}]``."""
    max_body: int = 65536
    """Octets of a JSON request body; larger: 413 ProblemDetails."""
    max_import_body: int = 64 * 1024 * 1024
    """Octets of a CSV body on ``POST /lists/import`` sent with a write token (other requests:
    ``max_body``); larger: 413 ProblemDetails."""
    max_fault_rules: int = 100
    """Fault rules in force at once (``faults:`` and ``POST /faults``; more: refused, 400), 1 to 1000;
    whatever the count, the rule set as JSON stays within 60000 octets (under ``--workers`` it goes
    to every worker in one control datagram)."""
    max_connections: int = 64
    """Connections held at once; more are closed at accept."""
    max_connections_per_source: int = 32
    """Connections held at once from one source address."""
    idle_timeout: float = 60.0
    """Seconds an idle connection is kept open (0: forever); also the seconds a streamed import
    body may go without an octet before it is answered 408."""
    max_imports_in_flight: int = 2
    """``POST /lists/import`` requests in progress at once (each spools up to 1 MiB in memory and
    ``max_import_body`` on disk, and parses); more: 503 ProblemDetails with Retry-After."""


@dataclass(slots=True)
class MqttConfig:
    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "eir"
    """Events go to ``<prefix>/verdict/<status>``, ``<prefix>/clone``, ``<prefix>/peer`` and
    ``<prefix>/lists``."""
    publish_verdicts: bool = False
    """Publish every verdict (heavy under load); clone suspicions, peer and list events are always sent."""
    qos: int = 1
    """QoS of the events (0 or 1); the status and list acknowledgements are always QoS 1."""
    client_id: str | None = None
    """MQTT client identifier (worker i of ``--workers`` appends ``-w<i>``). None: ``eir-<origin_host>``
    with ``lists_in`` — fixed, so that the broker keeps the session and the list updates queued for it
    across reconnects (give each instance its own) — else ``eir-<origin_host>-<pid>``."""
    username: str | None = None
    """Broker user (the URL's user part works too)."""
    password: str | None = None
    """Broker password (``EIR_MQTT_PASSWORD``); never logged."""
    tls_ca: str | None = None
    """PEM CA bundle that signed the broker's certificate (``mqtts://`` URLs; None: the system's)."""
    tls_cert: str | None = None
    """PEM client certificate, for brokers that require one."""
    tls_key: str | None = None
    buffer_size: int = 10000
    """Events held while the broker is away, sent in order after reconnect; past it the oldest are
    dropped and counted in eir_events_dropped_total."""
    lists_in: bool = False
    """Apply list updates published on ``lists_topic`` (a central EIR / CEIR) as new list versions."""
    lists_topic: str = "eir/lists/update"
    """Where list updates arrive (JSON rows, or a whole CSV file); the acknowledgement goes to
    ``<topic_prefix>/lists/ack``."""
    max_update_bytes: int = 16777216
    """Larger list updates are refused (acknowledged with an error)."""


@dataclass(slots=True)
class RecordConfig:
    pcap: str | None = None
    """Write every message sent and received on every interface to this pcapng file (``eir serve
    --pcap``); relative paths are under the working directory. None: no recording."""
    max_mb: float = 0.0
    """Rotate the file when it would grow past this many MiB (``--pcap-max-mb``); 0: never."""
    keep: int = 5
    """Files kept when rotating: FILE, FILE.1 … FILE.<keep-1>."""


@dataclass(slots=True)
class Config:
    data_dir: str = "data"
    log: LogConfig = field(default_factory=LogConfig)
    diameter: DiameterConfig = field(default_factory=DiameterConfig)
    m3ua: M3uaConfig = field(default_factory=M3uaConfig)
    n5g: N5gConfig = field(default_factory=N5gConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    lists: ListsConfig = field(default_factory=ListsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    overload: OverloadConfig = field(default_factory=OverloadConfig)
    faults: list[dict[str, Any]] = field(default_factory=list)
    """Fault-injection rules in force from start (eir/faults.py, README "Fault injection"); the
    admin API changes them at run time. Environment: EIR_FAULTS as a JSON list."""
    workers: int = 1
    """Processes sharing the listening ports (SO_REUSEPORT)."""
    shutdown_grace: float = 5.0
    """Seconds to let peers close gracefully (DPR/DPA, ASP-DOWN) before connections are cut."""


# --- loading -------------------------------------------------------------------------------------


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if value is None:
            return tp()
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        sval = value if not isinstance(value, str) else value.strip()
        if sval not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, args))}; got {value!r}")
        return sval
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if origin is list:
        if isinstance(value, str) and typing.get_origin(args[0]) is dict:
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a JSON list of mappings") from None
        elif isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, bool | dict | list) or value is None:
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(names))})")
        kwargs[k] = _coerce(v, hints[k], key)
    return cls(**kwargs)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Map ``EIR_A_B_C`` to a nested dict by matching field names of the config tree."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("EIR_") or name in ("EIR_CONFIG",):
            continue
        rest = name[4:].lower()
        cls: Any = Config
        path: list[str] = []
        while True:
            fields = {f.name: f for f in dataclasses.fields(cls)}
            hints = typing.get_type_hints(cls)
            match = next(
                (n for n in sorted(fields, key=len, reverse=True) if rest == n or rest.startswith(n + "_")),
                None,
            )
            if match is None:
                raise ConfigError(f"{name}: names no configuration key")
            path.append(match)
            tp = hints[match]
            if rest == match:
                break
            if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
                raise ConfigError(f"{name}: names no configuration key")
            rest = rest[len(match) + 1 :]
            cls = tp
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), Mapping):
            base[k] = _merge(dict(base[k]), v)
        else:
            base[k] = v
    return base


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate: file, then environment, then explicit overrides (the CLI's)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except OSError as e:
            raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            what = getattr(e, "problem", None) or " ".join(str(e).split())
            raise ConfigError(f"{p}: not valid YAML{where}: {what}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{p}: the top level must be a mapping")
        data = dict(loaded)
        if p.is_file():  # /dev/null or a pipe (--config <(…)): no project, paths stay the cwd's
            data = _resolve_paths(data, base_dir(p))
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    cfg: Config = _build(Config, data)
    _validate(cfg)
    return cfg


# --- finding the file; paths in it ------------------------------------------------------------------

SYSTEM_CONFIG = Path("/etc/eir/eir.yaml")


def config_candidates(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> list[Path]:
    """Where a command looks for its configuration when neither ``--config`` nor ``EIR_CONFIG`` names
    one, in order: ``./config/eir.yaml`` (a project checkout), the user's
    ``$XDG_CONFIG_HOME/eir/eir.yaml`` (``~/.config/eir/eir.yaml``), the system's ``/etc/eir/eir.yaml``."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and Path(xdg).is_absolute():
        user = Path(xdg) / "eir" / "eir.yaml"
    else:
        user = (home if home is not None else Path(env.get("HOME") or Path.home())) / ".config/eir/eir.yaml"
    return [(cwd if cwd is not None else Path.cwd()) / "config" / "eir.yaml", user, SYSTEM_CONFIG]


def find_config(
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    candidates: list[Path] | None = None,
) -> Path | None:
    """The configuration file a command uses: ``--config`` (``explicit``), else ``EIR_CONFIG``, else the
    first of :func:`config_candidates` that exists; None: the built-in defaults. The path is absolute;
    a named file that does not exist is returned all the same (:func:`load_config` then says so)."""
    env = os.environ if environ is None else environ
    named = explicit if explicit not in (None, "") else env.get("EIR_CONFIG") or None
    if named is not None:
        p = Path(named).expanduser()
        return _absolute(p if p.is_absolute() else (cwd if cwd is not None else Path.cwd()) / p)
    for c in candidates if candidates is not None else config_candidates(env, cwd, home):
        if c.is_file():
            return _absolute(c)
    return None


def _absolute(p: Path) -> Path:
    """Absolute and without ``..`` (``--config ../eir.yaml`` from config/lists/ is config/eir.yaml),
    symbolic links kept as the user named them."""
    return Path(os.path.abspath(p))


def base_dir(config_file: str | Path) -> Path:
    """The directory relative paths in a config file are resolved against: the file's directory, or its
    parent when that directory is called ``config`` — a project checkout keeps ``config/eir.yaml``
    next to ``data/``, so the shipped ``store.url: sqlite:///data/eir.db`` and
    ``lists.import_on_start: [config/lists/demo.csv]`` name paths from the project root."""
    d = _absolute(Path(config_file)).parent
    return d.parent if d.name == "config" else d


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make the relative paths of a config file (and the relative defaults it leaves in place)
    absolute against ``base``: ``data_dir``, a ``sqlite:///relative`` ``store.url`` or
    ``store.observations_url``, ``lists.import_on_start``. Values from the environment or the command
    line stay relative to the working directory. Wrong types are left for the validation to name."""
    data_dir = data.get("data_dir", Config().data_dir)
    if isinstance(data_dir, str) and data_dir and not Path(data_dir).is_absolute():
        data["data_dir"] = str(base / data_dir)
    store = data.get("store", {})
    if store is None:
        store = {}
    if isinstance(store, Mapping):
        store = dict(store)
        store.setdefault("url", StoreConfig().url)
        for key in ("url", "observations_url"):
            url = store.get(key)
            if (
                isinstance(url, str)
                and url.lower().startswith("sqlite:///")
                and url[10:11] not in ("/", "?", "")
            ):
                store[key] = f"sqlite:///{base / url[10:]}"
        data["store"] = store
    lists = data.get("lists")
    if isinstance(lists, Mapping) and isinstance(lists.get("import_on_start"), list):
        data["lists"] = dict(lists)
        data["lists"]["import_on_start"] = [
            str(base / f) if isinstance(f, str) and not Path(f).is_absolute() else f
            for f in lists["import_on_start"]
        ]
    return data


def describe_store(config: Config) -> str:
    """The store URL as a user should read it: a SQLite file as an absolute path, a password masked."""
    from urllib.parse import urlsplit, urlunsplit

    url = config.store.url
    if url.lower().startswith("sqlite:"):
        from eir.store.sqlite import sqlite_path

        try:
            return f"sqlite:///{sqlite_path(url, config.data_dir).absolute()}"
        except Exception:
            return url
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return url


def parse_hostport(value: str, key: str = "address") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    v = value.strip()
    if v.startswith("["):
        host, sep, port = v[1:].partition("]:")
    else:
        host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key}: expected HOST:PORT or [IPv6]:PORT, got {value!r}")
    return host, int(port)


def _validate_nrf(n5g: N5gConfig) -> None:
    import uuid
    from urllib.parse import urlsplit

    if n5g.nrf is not None:
        try:
            u = urlsplit(n5g.nrf)
            ok = u.scheme in ("http", "https") and bool(u.hostname) and (u.port is None or u.port > 0)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"n5g.nrf: expected http://HOST:PORT or https://HOST:PORT, got {n5g.nrf!r}")
    if n5g.nrf_advertise is not None and not n5g.nrf_advertise.strip():
        raise ConfigError("n5g.nrf_advertise: empty")
    if n5g.nf_instance_id is not None:
        try:
            uuid.UUID(n5g.nf_instance_id)
        except ValueError:
            raise ConfigError(f"n5g.nf_instance_id: not a UUID: {n5g.nf_instance_id!r}") from None
    if n5g.nrf_heartbeat < 1:
        raise ConfigError("n5g.nrf_heartbeat: must be at least 1 second")
    if n5g.nrf_retry_max <= 0:
        raise ConfigError("n5g.nrf_retry_max: must be a positive number of seconds")
    if n5g.nrf_ca is not None and not Path(n5g.nrf_ca).is_file():
        raise ConfigError(f"n5g.nrf_ca: no such file {n5g.nrf_ca}")
    if n5g.oauth2_key is not None:
        from protocols.sbi.oauth2 import load_key

        try:
            load_key(Path(n5g.oauth2_key).read_bytes())
        except OSError as e:
            raise ConfigError(f"n5g.oauth2_key: cannot read {n5g.oauth2_key}: {e.strerror or e}") from None
        except ValueError as e:
            raise ConfigError(f"n5g.oauth2_key: {n5g.oauth2_key}: {e}") from None


def _validate(cfg: Config) -> None:
    for section, addrs in (
        ("diameter.listen", cfg.diameter.listen),
        ("m3ua.listen", cfg.m3ua.listen),
        ("m3ua.connect", cfg.m3ua.connect),
        ("n5g.listen", cfg.n5g.listen),
        ("n5g.tls_listen", cfg.n5g.tls_listen),
        ("diameter.tls_listen", cfg.diameter.tls_listen),
    ):
        for i, a in enumerate(addrs):
            parse_hostport(a, f"{section}[{i}]")
    parse_hostport(cfg.metrics.listen, "metrics.listen")
    for i, a in enumerate(cfg.admin.listen):
        parse_hostport(a, f"admin.listen[{i}]")
    for i, tok in enumerate(cfg.admin.tokens):
        if not tok.token.strip():
            raise ConfigError(f"admin.tokens[{i}].token: must not be empty")
    if cfg.admin.token is not None and not cfg.admin.token.strip():
        raise ConfigError("admin.token: must not be empty (leave it unset for no token)")
    for key in ("max_body", "max_import_body"):
        if getattr(cfg.admin, key) < 1024:
            raise ConfigError(f"admin.{key}: must be at least 1024 octets")
    if cfg.admin.max_imports_in_flight < 1:
        raise ConfigError("admin.max_imports_in_flight: must be at least 1")
    if cfg.diameter.watchdog_interval < 6:
        raise ConfigError("diameter.watchdog_interval: RFC 3539 requires Tw >= 6 seconds")
    if not 0 <= cfg.m3ua.point_code < (1 << 24):
        raise ConfigError("m3ua.point_code: must be 0..16777215")
    if cfg.m3ua.dialogue_timeout <= 0:
        raise ConfigError("m3ua.dialogue_timeout: must be a positive number of seconds")
    if not 2 <= cfg.m3ua.ssn <= 255:
        raise ConfigError("m3ua.ssn: must be 2..255")
    bad = [v for v in cfg.m3ua.map_versions if v not in (1, 2, 3)]
    if bad or not cfg.m3ua.map_versions:
        raise ConfigError(f"m3ua.map_versions: each must be 1, 2 or 3; got {cfg.m3ua.map_versions}")
    if not cfg.m3ua.global_title.isdigit():
        raise ConfigError("m3ua.global_title: must be E.164 digits")
    for key in ("accept_point_codes", "screen_opcs"):
        for i, pc in enumerate(getattr(cfg.m3ua, key)):
            if not 0 <= pc < (1 << 24):
                raise ConfigError(f"m3ua.{key}[{i}]: a point code is 0..16777215, got {pc}")
    for i, ni in enumerate(cfg.m3ua.network_indicators):
        if not 0 <= ni <= 3:
            raise ConfigError(f"m3ua.network_indicators[{i}]: a network indicator is 0..3, got {ni}")
    for key in ("accept_global_titles", "screen_calling_gt_prefixes"):
        for i, gt in enumerate(getattr(cfg.m3ua, key)):
            digits = gt[:-1] if key == "accept_global_titles" and gt.endswith("*") else gt
            if not (digits.isdigit() or (digits == "" and gt == "*")):
                raise ConfigError(f"m3ua.{key}[{i}]: expected digits (or a prefix ending in *), got {gt!r}")
    for key in ("diameter", "m3ua"):
        sect = getattr(cfg, key)
        if sect.write_timeout < 0:
            raise ConfigError(f"{key}.write_timeout: must be 0 (never) or a positive number of seconds")
        if sect.write_buffer_limit < 1024:
            raise ConfigError(f"{key}.write_buffer_limit: must be at least 1024 octets")
    for key in ("beat_interval", "setup_timeout", "idle_timeout"):
        if getattr(cfg.m3ua, key) < 0:
            raise ConfigError(f"m3ua.{key}: must be 0 (never) or a positive number of seconds")
    if cfg.diameter.tls_listen and not (cfg.diameter.tls_cert and cfg.diameter.tls_key):
        raise ConfigError("diameter.tls_listen: needs diameter.tls_cert and diameter.tls_key")
    for i, t in enumerate(cfg.policy.reserved_tacs):
        if len(t) != 8 or not t.isdigit():
            raise ConfigError(f"policy.reserved_tacs[{i}]: a TAC is 8 digits, got {t!r}")
    pm = cfg.policy.duplicate.period_months
    if pm is not None and not 1 <= pm <= 1200:
        raise ConfigError(
            f"policy.duplicate.period_months: 1 to 1200 months (or null for period_days), got {pm}"
        )
    clone = cfg.policy.clone
    if clone.max_imsis < 2:
        raise ConfigError("policy.clone.max_imsis: must be at least 2")
    if clone.max_values_per_imei <= clone.max_imsis:
        raise ConfigError("policy.clone.max_values_per_imei: must be greater than policy.clone.max_imsis")
    if clone.max_tracked_imeis < 1:
        raise ConfigError("policy.clone.max_tracked_imeis: must be at least 1")
    for key in ("flush_interval", "share_interval", "window"):
        if getattr(clone, key) <= 0:
            raise ConfigError(f"policy.clone.{key}: must be a positive number of seconds")
    for key in ("max_stored", "max_new_per_origin", "max_new_per_second", "half_life"):
        if getattr(clone, key) < 0:
            raise ConfigError(f"policy.clone.{key}: must be 0 (off) or more")
    for section, cidrs in (
        ("diameter.allow_sources", cfg.diameter.allow_sources),
        ("m3ua.allow_sources", cfg.m3ua.allow_sources),
    ):
        for i, c in enumerate(cidrs):
            try:
                ipaddress.ip_network(c.strip(), strict=False)
            except ValueError:
                raise ConfigError(f"{section}[{i}]: expected an address or CIDR, got {c!r}") from None
    for key in ("diameter", "m3ua", "metrics", "n5g", "admin"):
        sect = getattr(cfg, key)
        for limit in ("max_connections", "max_connections_per_source"):
            if getattr(sect, limit) < 1:
                raise ConfigError(f"{key}.{limit}: must be at least 1")
    if bool(cfg.metrics.username) != bool(cfg.metrics.password):
        raise ConfigError("metrics.username / metrics.password: give both or neither")
    if bool(cfg.metrics.tls_cert) != bool(cfg.metrics.tls_key):
        raise ConfigError("metrics.tls_cert / metrics.tls_key: give both or neither")
    if cfg.mqtt.qos not in (0, 1):
        raise ConfigError(f"mqtt.qos: must be 0 or 1; got {cfg.mqtt.qos}")
    if cfg.mqtt.buffer_size < 1 or cfg.mqtt.max_update_bytes < 1:
        raise ConfigError("mqtt.buffer_size / mqtt.max_update_bytes: must be at least 1")
    if cfg.mqtt.url.split(":", 1)[0] not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"mqtt.url: use mqtt://HOST:PORT or mqtts://HOST:PORT; got {cfg.mqtt.url!r}")
    if (cfg.mqtt.tls_ca or cfg.mqtt.tls_cert) and not cfg.mqtt.url.startswith(("mqtts:", "ssl:")):
        raise ConfigError("mqtt.tls_ca / mqtt.tls_cert: TLS needs an mqtts://HOST:PORT mqtt.url")
    if bool(cfg.mqtt.tls_cert) != bool(cfg.mqtt.tls_key):
        raise ConfigError("mqtt.tls_cert / mqtt.tls_key: give both or neither")
    if not cfg.mqtt.lists_topic or any(c in cfg.mqtt.lists_topic for c in "#+"):
        raise ConfigError("mqtt.lists_topic: a topic name without wildcards")
    if cfg.metrics.read_timeout <= 0:
        raise ConfigError("metrics.read_timeout: must be a positive number of seconds")
    if cfg.log.rate_limit_burst < 0 or cfg.log.rate_limit_interval <= 0:
        raise ConfigError("log.rate_limit_burst / log.rate_limit_interval: must be >= 0 / > 0")
    if cfg.n5g.overload_status not in (429, 503):
        raise ConfigError(f"n5g.overload_status: must be 429 or 503; got {cfg.n5g.overload_status}")
    for key in ("max_uri_length", "max_concurrent_streams", "max_header_list_size", "max_in_flight"):
        if getattr(cfg.n5g, key) < 1:
            raise ConfigError(f"n5g.{key}: must be at least 1")
    if cfg.n5g.tls_listen and not (cfg.n5g.tls_cert and cfg.n5g.tls_key):
        raise ConfigError("n5g.tls_listen: needs n5g.tls_cert and n5g.tls_key")
    if cfg.n5g.tls_sniff and not (cfg.n5g.tls_cert and cfg.n5g.tls_key):
        raise ConfigError("n5g.tls_sniff: needs n5g.tls_cert and n5g.tls_key")
    if cfg.n5g.idle_timeout < 0:
        raise ConfigError("n5g.idle_timeout: must be 0 (never) or a positive number of seconds")
    if cfg.n5g.retry_after < 0:
        raise ConfigError("n5g.retry_after: must be 0 or more seconds")
    _validate_nrf(cfg.n5g)
    if cfg.workers < 1:
        raise ConfigError("workers: must be at least 1")
    if cfg.record.max_mb < 0:
        raise ConfigError("record.max_mb: must be 0 (no rotation) or a positive number of MiB")
    if cfg.record.keep < 1:
        raise ConfigError("record.keep: must be at least 1")
    if cfg.store.keep_versions < 1:
        raise ConfigError("store.keep_versions: must be at least 1")
    if cfg.store.index_max_keys < 0:
        raise ConfigError("store.index_max_keys: must be 0 (no index) or a number of keys")
    ov = cfg.overload
    if ov.max_in_flight < 1 or ov.max_in_flight_per_peer < 1:
        raise ConfigError("overload.max_in_flight / overload.max_in_flight_per_peer: must be at least 1")
    if not 0 < ov.fair_share_above <= 1:
        raise ConfigError("overload.fair_share_above: must be more than 0 and at most 1")
    from eir.faults import MAX_RULES_LIMIT, FaultRegistry, FaultRule, FaultSpecError

    if not 1 <= cfg.admin.max_fault_rules <= MAX_RULES_LIMIT:
        raise ConfigError(f"admin.max_fault_rules: must be from 1 to {MAX_RULES_LIMIT}")
    for i, spec in enumerate(cfg.faults):
        try:
            FaultRule.from_dict(spec)
        except FaultSpecError as e:
            raise ConfigError(f"faults[{i}]: {e}") from None
    try:
        FaultRegistry(max_rules=cfg.admin.max_fault_rules).load(cfg.faults)
    except FaultSpecError as e:
        raise ConfigError(f"faults: {e}") from None
    for key in ("connect_timeout", "command_timeout", "poll_interval", "call_timeout"):
        if getattr(cfg.store, key) <= 0:
            raise ConfigError(f"store.{key}: must be a positive number of seconds")
    scheme = cfg.store.url.split(":", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres", "redis", "memory"):
        raise ConfigError(f"store.url: unsupported scheme {scheme!r} (sqlite, postgresql, redis, memory)")
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log.level: must be debug, info, warning or error; got {cfg.log.level!r}")
