"""Fault injection: rules that make the EIR misbehave on purpose, so a lab sees how its MMEs, MSCs
and AMFs cope (issue 7, part 4).

A rule says *what* goes wrong (``kind``) and *for which requests* (interface, IMEI pattern, peer,
probability, how many times). Rules come from the ``faults:`` config section and change at run time
through the admin API (``/api/v1/faults``) and ``eir faults set|clear|list``.

This module is the one registry the adapters, the admin API and the CLI share. It does no I/O: the
adapters ask :meth:`FaultRegistry.match` on their hot path, which costs one attribute test while no
rule is set.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

FaultKind = Literal[
    "delay",  # answer after delay_ms
    "no_answer",  # never answer this request
    "result_code",  # Diameter: answer with result_code (3004 DIAMETER_TOO_BUSY, 5012, any)
    "map_error",  # MAP: ReturnError with map_error (34 systemFailure by default)
    "tcap_abort",  # MAP: TCAP U-Abort instead of an answer
    "http_status",  # N5g-eir: answer with http_status (ProblemDetails)
    "close",  # close the connection instead of answering
    "dwr_silence",  # Diameter: stop answering DWR on the peer's connection (failover tests)
    "asp_down",  # M3UA: send ASP-DOWN-ACK / take the ASP down
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
INTERFACES = ("s13", "map", "n5g")
KIND_INTERFACES: dict[str, tuple[str, ...]] = {
    "delay": INTERFACES,
    "no_answer": INTERFACES,
    "close": INTERFACES,
    "result_code": ("s13",),
    "dwr_silence": ("s13",),
    "map_error": ("map",),
    "tcap_abort": ("map",),
    "asp_down": ("map",),
    "http_status": ("n5g",),
}
"""The interfaces a kind can apply to: a rule never matches a request of another interface (a
``result_code`` rule without ``interfaces`` is an S13 rule), and naming only others is refused."""


class FaultSpecError(ValueError):
    """A fault rule is malformed; the message names the field."""


class FaultLimitError(FaultSpecError):
    """One rule more would pass the registry's cap (:data:`MAX_RULES_LIMIT`, ``RULES_MAX_OCTETS``)."""


DEFAULT_MAX_RULES = 100
"""``admin.max_fault_rules``: rules in force at once (config and admin API refuse more)."""
MAX_RULES_LIMIT = 1000
"""The highest ``admin.max_fault_rules`` accepted."""
RULES_MAX_OCTETS = 60_000
"""The rule set as JSON (:meth:`FaultRegistry.specs`) never passes this many octets, whatever the rule
count: under ``--workers`` it travels whole in one control datagram (eir/control.py, 64 KiB)."""


def specs_octets(specs: list[dict[str, Any]]) -> int:
    """The octets of ``specs`` as the control channel encodes them."""
    return len(json.dumps(specs, separators=(",", ":")).encode())


@dataclass(slots=True)
class FaultRule:
    kind: FaultKind
    id: str = ""
    interfaces: list[str] = field(default_factory=list)
    """s13 / map / n5g; empty: every interface."""
    imei: str = ""
    """Glob over the IMEI as received (``35693803*``; a 14-digit pattern also matches the 15- or
    16-digit forms of that IMEI), or ``LOW-HIGH`` (inclusive, compared on the first len(LOW)
    digits); empty: any."""
    peer: str = ""
    """Glob over the peer's names: Diameter Origin-Host, ``pc:<OPC>``, ``gt:<calling GT>``, the remote
    ``address`` (host without port); empty: any peer."""
    probability: float = 1.0
    count: int | None = None
    """Inject at most this many times, then the rule removes itself; None: no limit."""
    delay_ms: float = 0.0
    result_code: int = 3004
    map_error: int = 34
    http_status: int = 503
    injected: int = 0
    """How many times this rule has fired (read-only; reported by list)."""
    _imei_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _imei_range: tuple[int, int, int] | None = field(default=None, repr=False, compare=False)
    _peer_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultRule:
        """Validate a rule as given in config, the admin API or the CLI."""
        if not isinstance(d, Mapping):
            raise FaultSpecError("a fault rule is a mapping")
        known = {f for f in cls.__slots__ if not f.startswith("_")} - {"injected"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FaultSpecError(f"unknown field(s): {', '.join(unknown)}")
        kind = d.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultSpecError(f"kind: expected one of {', '.join(FAULT_KINDS)}")
        interfaces = d.get("interfaces", [])
        if isinstance(interfaces, str):
            interfaces = [interfaces]
        if not isinstance(interfaces, list) or any(i not in INTERFACES for i in interfaces):
            raise FaultSpecError(f"interfaces: expected a list of {', '.join(INTERFACES)}")
        possible = KIND_INTERFACES[kind]
        if interfaces and not any(i in possible for i in interfaces):
            raise FaultSpecError(f"interfaces: kind {kind} applies to {', '.join(possible)} only")
        rule = cls(kind=cast(FaultKind, kind), interfaces=list(interfaces))
        rule.id = _str(d, "id", "")
        rule.imei = _str(d, "imei", "")
        if kind == "dwr_silence" and rule.imei:
            raise FaultSpecError("imei: a DWR carries no IMEI (dwr_silence is matched by peer)")
        rule.peer = _str(d, "peer", "")
        rule.probability = _num(d, "probability", 1.0, 0.0, 1.0)
        count = d.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise FaultSpecError("count: expected a positive integer or null")
        rule.count = count
        rule.delay_ms = _num(d, "delay_ms", 0.0, 0.0, 600_000.0)
        rule.result_code = int(_num(d, "result_code", 3004, 1000, 9999))
        rule.map_error = int(_num(d, "map_error", 34, 0, 255))
        rule.http_status = int(_num(d, "http_status", 503, 400, 599))
        rule._compile()
        return rule

    def _compile(self) -> None:
        self._imei_re = self._imei_range = None
        if self.imei:
            m = re.fullmatch(r"(\d{1,16})-(\d{1,16})", self.imei)
            if m:
                lo, hi = m.group(1), m.group(2)
                if len(lo) != len(hi) or int(lo) > int(hi):
                    raise FaultSpecError("imei: a range is LOW-HIGH with LOW <= HIGH, of equal length")
                self._imei_range = (len(lo), int(lo), int(hi))
            elif re.fullmatch(r"[0-9*?\[\]]+", self.imei):
                self._imei_re = re.compile(fnmatch.translate(self.imei))
            else:
                raise FaultSpecError("imei: expected digits with * ? [..] wildcards, or LOW-HIGH")
        self._peer_re = re.compile(fnmatch.translate(self.peer.lower())) if self.peer else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "interfaces": list(self.interfaces),
            "imei": self.imei,
            "peer": self.peer,
            "probability": self.probability,
            "count": self.count,
            "delay_ms": self.delay_ms,
            "result_code": self.result_code,
            "map_error": self.map_error,
            "http_status": self.http_status,
            "injected": self.injected,
        }

    def matches(self, interface: str, imei: str, peers: Iterable[str]) -> bool:
        if self.interfaces and interface not in self.interfaces:
            return False
        if interface not in KIND_INTERFACES[self.kind]:
            return False
        # as received: 14 digits, or 15 (check or spare digit) on MAP and N5g-eir, 16 (an IMEISV)
        pat = self._imei_re
        if pat is not None and not pat.match(imei) and not (len(imei) > 14 and pat.match(imei[:14])):
            return False
        if self._imei_range is not None:
            n, lo, hi = self._imei_range
            head = imei[:n]
            if len(head) != n or not head.isdigit() or not lo <= int(head) <= hi:
                return False
        if self._peer_re is not None:
            pat = self._peer_re
            if not any(pat.match(p.lower()) for p in peers if p):
                return False
        return True


def _str(d: Mapping[str, Any], key: str, default: str) -> str:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str | int) or isinstance(v, bool):
        raise FaultSpecError(f"{key}: expected a string")
    return str(v)


def _num(d: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise FaultSpecError(f"{key}: expected a number from {lo:g} to {hi:g}")
    return float(v)


class FaultRegistry:
    """The rules in force in this process. ``active`` is False while there are none, so the hot path
    pays one attribute test."""

    def __init__(self, rng: random.Random | None = None, *, max_rules: int = DEFAULT_MAX_RULES) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._ids = itertools.count(1)
        self._rng = rng or random.Random()
        self.active = False
        self.max_rules = max_rules
        """At most this many rules (``admin.max_fault_rules``); and their JSON within
        :data:`RULES_MAX_OCTETS`. :meth:`add` and :meth:`load` refuse past either."""

    def load(self, specs: Iterable[Mapping[str, Any]], *, capped: bool = True) -> None:
        """Replace every rule (config load; a control message from worker 0, ``capped=False``: worker
        0 checked the cap); past the cap: FaultLimitError and nothing changes."""
        rules = [FaultRule.from_dict(s) for s in specs]
        if capped:
            self._check_cap(rules)
        self._rules.clear()
        for r in rules:
            self._insert(r)
        self.active = bool(self._rules)  # (an empty set: the hot path's one attribute test again)

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        """One rule more; past the cap (``max_rules``, :data:`RULES_MAX_OCTETS`): FaultLimitError."""
        rule = FaultRule.from_dict(spec)
        if not rule.id:
            rule.id = self._new_id()
        self._check_cap([*self._rules.values(), rule])
        return self._insert(rule)

    def _check_cap(self, rules: list[FaultRule]) -> None:
        if len(rules) > self.max_rules:
            raise FaultLimitError(f"at most {self.max_rules} fault rules at once (admin.max_fault_rules)")
        size = specs_octets([spec_of(r) for r in rules])
        if size > RULES_MAX_OCTETS:
            raise FaultLimitError(
                f"the fault rules would take {size} octets as JSON, more than {RULES_MAX_OCTETS}"
            )

    def specs(self) -> list[dict[str, Any]]:
        """The rules as specs (what :meth:`load` takes; no ``injected``)."""
        return [spec_of(r) for r in self._rules.values()]

    def _insert(self, rule: FaultRule) -> FaultRule:
        if not rule.id:
            rule.id = self._new_id()
        self._rules[rule.id] = rule
        self.active = True
        return rule

    def _new_id(self) -> str:
        rid = f"f{next(self._ids)}"
        while rid in self._rules:
            rid = f"f{next(self._ids)}"
        return rid

    def remove(self, rule_id: str) -> bool:
        found = self._rules.pop(rule_id, None) is not None
        self.active = bool(self._rules)
        return found

    def clear(self) -> int:
        n = len(self._rules)
        self._rules.clear()
        self.active = False
        return n

    def rules(self) -> list[FaultRule]:
        return list(self._rules.values())

    def match(
        self, interface: str, imei: str, peers: Iterable[str] = (), *, watchdog: bool = False
    ) -> FaultRule | None:
        """The first rule that applies to this request and wins its probability draw; it is counted
        as injected (and removed once its ``count`` is used up). None: answer normally.

        ``watchdog``: the question is about a Diameter DWR (``imei`` is then ""): only
        ``dwr_silence`` rules apply to DWRs, and they apply to nothing else."""
        if not self.active:
            return None
        peers = tuple(peers)
        for rule in list(self._rules.values()):
            if (rule.kind == "dwr_silence") is not watchdog:
                continue
            if not rule.matches(interface, imei, peers):
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            rule.injected += 1
            if rule.count is not None and rule.injected >= rule.count:
                self.remove(rule.id)
            return rule
        return None


def spec_of(rule: FaultRule) -> dict[str, Any]:
    d = rule.to_dict()
    d.pop("injected", None)
    return d


REGISTRY = FaultRegistry()
"""The process's registry: adapters, the admin API and config loading share it."""
