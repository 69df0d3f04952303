"""The verdict policy: ordered rules over what the store said about one check.

Pure decisions, no I/O: :mod:`eir.checker` fetches the store's answers (:class:`Lookup`,
:class:`ImsiRules`, :class:`Sightings`) and asks :meth:`Policy.decide`. Every :class:`Verdict`
names the rule that decided, the list and the entry.

Order (the first rule that decides wins, except where a later rule may only make it stricter):

1. ``validity`` — not 14-16 digits, a software version that is not 2 digits, the all-zero IMEI
   or a reserved/test TAC → ``policy.malformed``. Final.
   ``check_digit`` — a 15-digit IMEI whose 15th digit is neither its Luhn check digit
   (TS 23.003 §6.2.1 / Annex B) nor the spare digit 0 that networks send: ``policy.bad_check_digit``
   says what it means, the same for every interface — ``malformed`` (the validity verdict above),
   ``ignore`` (the default: the 14 digits go on to the lists like any IMEI; UERANSIM's stock UE
   IMEI 356938035643803 fails the check and a stock lab must register), or a verdict (final,
   rule ``check_digit``).
   ``golden`` — the IMEI is on the DIRBS golden list (the ``golden`` reference table,
   ``policy.golden``): white, final — above every list entry and every later rule, whatever the
   order the lists were imported in (DIRBS never blocks a golden IMEI).
2. ``imeisv`` — an exact IMEISV entry (14 digits + SVN) decides the list status.
3. ``imei`` — an exact IMEI entry.
4. ``range`` / ``tac`` — the narrowest range or TAC containing the IMEI.
   (Steps 2-4 pick the most specific list entry; when none matches, step 7's default stands in.)
   ``notification`` — when that entry came from a DIRBS notification list: ``policy.notifications.
   before`` (grey) until its block date and ``.after`` (black) from it — a time-dependent verdict,
   evaluated against the injected wall clock (UTC dates).
5. ``pairing`` — the IMSI is paired with this IMEI (an exception list, as DIRBS has): white
   whatever the lists said. Final: a pairing is an operator's explicit word on this IMSI+IMEI, so
   neither a lock nor a clone suspicion overrides it.
   ``lock`` — the IMSI is locked to its listed IMEIs and this IMEI is not one of them →
   ``policy.lock_verdict``, unless the lists already gave something as strict or stricter.
   Before the lock, the reference rules, only for an IMEI that no list entry matched (an IMEI
   on a list keeps that list's verdict) and no pairing excepted — the stricter of the two decides:
   ``not_registered`` — a registration list is loaded and lacks the IMEI →
   ``policy.not_registered.verdict`` (DIRBS ``not_on_registration_list``);
   ``tac_not_allocated`` — a TAC reference table is loaded and lacks the IMEI's TAC →
   ``policy.tac_not_allocated.verdict`` (DIRBS ``gsma_not_found``); with ``grace_days`` > 0 that
   verdict holds for that long from the IMEI's first sighting (eir/first_seen.py), then
   ``after_grace`` — against the injected wall clock. Both silent without their table.
6. ``clone`` — the IMEI was seen with ≥ ``max_imsis`` distinct IMSIs, or (``distinct_origins``)
   from two different origins, within ``window`` → ``policy.clone.verdict``, again only when that
   is stricter: a black entry stays black; white (or unknown) becomes grey. Clone suspicion never
   makes anything *more* permissive.
   ``duplicate`` — DIRBS ``duplicate_mk1`` flagged the IMEI on the per-day observation history
   (eir/duplicates.py: ≥ N IMSIs over D days and a daily average ≥ A over W days; sticky) →
   ``policy.duplicate.verdict``, again only when stricter.
7. ``default`` — equipment on no list → ``policy.unknown_equipment`` (white, grey, black, or
   ``unknown`` = the interface's own "unknown equipment" error).

Strictness: white = unknown < grey < black.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eir.config import PolicyConfig
from eir.formats._common import parse_tagged
from eir.formats.records import decode
from eir.model import CheckRequest, Status, Verdict
from eir.store.base import EntryKind, ImsiRules, ListEntry, Lookup, Sightings
from protocols.imei import BadIdentity, IdentityForm, bad_check_digit_detail, parse_identity

if TYPE_CHECKING:
    from eir.handle import HandleAnswer

__all__ = ["CLONE_REASONS", "Policy", "Step", "entry_text"]

CLONE_REASONS = ("imsis", "origins")
"""What :meth:`Policy.clone_reason` may return (the ``reason`` label of eir_clone_suspicions)."""

RANK = {Status.WHITE: 0, Status.UNKNOWN: 0, Status.GREY: 1, Status.BLACK: 2, Status.FAILURE: 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One line of ``eir check --explain``: a rule, what it found, and whether it decided."""

    rule: str
    outcome: str
    """``decided``, ``matched``, ``no match``, ``skipped``, ``overridden``, ``failed`` …"""
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.rule:<9} {self.outcome:<10} {self.detail}".rstrip()


def entry_text(e: ListEntry) -> str:
    return f"{e.key}-{e.last}" if e.kind is EntryKind.RANGE else e.key


def reason_text(reason: str | None) -> str:
    """An entry's reason for people: a tagged one (eir/formats) as ``[list] key value, …``."""
    tagged = parse_tagged(reason)
    if tagged is None:
        return reason or ""
    tag, meta = tagged
    return f"[{tag}] " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in meta.items())


def device_text(table: str, record: str | None) -> str:
    """A TAC-table / registration record (eir/formats/records.py) as ``brand model (device type,
    OS, radio)``."""
    d = decode(table, record)
    brand = d.get("brand_name") or d.get("make") or d.get("manufacturer") or ""
    model = d.get("model_name") or d.get("model") or d.get("marketing_name") or ""
    extra = [d[k] for k in ("device_type", "operating_system", "radio_interface") if d.get(k)]
    text = f"{brand} {model}".strip() or "(no name)"
    return text + (f" ({', '.join(extra)})" if extra else "")


class Policy:
    """The configured policy, with its constants resolved once (it runs on every check)."""

    def __init__(self, cfg: PolicyConfig, *, wall: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.wall = wall
        """UNIX time now (injected: tests move it; notification block dates are read against it)."""
        n = cfg.notifications
        self.notify_on = n.enabled
        self.notify_before = Status(n.before)
        self.notify_after = Status(n.after)
        self.tac_rule = Status(cfg.tac_not_allocated.verdict) if cfg.tac_not_allocated.enabled else None
        t = cfg.tac_not_allocated
        self.tac_grace = t.grace_days * 86400.0 if t.enabled else 0.0
        """Seconds of ``tac_not_allocated`` grace from an IMEI's first sighting (0: none)."""
        self.tac_after = Status(t.after_grace)
        self.reg_rule = Status(cfg.not_registered.verdict) if cfg.not_registered.enabled else None
        self._today: tuple[float, str] = (-1.0, "")
        self._reg_verdict = Verdict(
            status=self.reg_rule or Status.GREY,
            rule="not_registered",
            list_name="registration",
            detail="not on the registration list",
        )
        """Shared, as ``default`` is (no entry: what is missing is the IMEI the request names)."""
        self._reg_first = (
            self.reg_rule is not None
            and self.tac_rule is not None
            and RANK[self.reg_rule] >= RANK[self.tac_rule]
        )
        """Both reference rules fire: ``not_registered`` decides unless ``tac_not_allocated`` is stricter."""
        of = cfg.handle.on_failure
        self.handle_failure = None if of == "skip" else Status(of)
        d = cfg.duplicate
        self.dup_status = Status(d.verdict)
        over = f"{d.period_months} months" if d.period_months is not None else f"{d.period_days} days"
        who = "MSISDNs" if d.use_msisdn else "IMSIs"
        self._dup_params = (
            f">= {d.threshold} {who} over {over} and a daily average >= {d.daily_avg:g} "
            f"over {d.daily_avg_days} days, seen on >= {d.min_seen_days} days"
        )
        self._dup_detail = f"flagged by duplicate_mk1 ({self._dup_params}; sticky)"
        self._dup_verdict = Verdict(
            status=self.dup_status, rule="duplicate", list_name="observations", detail=self._dup_detail
        )
        self.golden = cfg.golden
        self.malformed = Status(cfg.malformed)
        self.lock_status = Status(cfg.lock_verdict)
        self.clone_status = Status(cfg.clone.verdict)
        self.clone_enabled = cfg.clone.enabled
        self.clone_max_imsis = cfg.clone.max_imsis
        self.clone_origins = cfg.clone.distinct_origins
        self.clone_window = cfg.clone.window
        mode = cfg.bad_check_digit
        if cfg.check_luhn is not None:  # the deprecated switch wins when a config file sets it
            mode = "malformed" if cfg.check_luhn else "ignore"
        self.bad_check_digit = mode
        """``malformed`` | ``ignore`` | a status name (``policy.bad_check_digit``)."""
        self.check_luhn = mode == "malformed"
        self._bad_cd_status = None if mode in ("malformed", "ignore") else Status(mode)
        self.reserved = frozenset(cfg.reserved_tacs)
        self.default = Verdict(status=Status(cfg.unknown_equipment), rule="default", detail="on no list")
        self._tac_verdicts: tuple[dict[str, Verdict], dict[str, Verdict]] = ({}, {})
        self._list_verdicts: dict[tuple[str, EntryKind, Status, str, str | None, str | None], Verdict] = {}

    # --- 1. validity ------------------------------------------------------------------------------
    def validate(self, req: CheckRequest) -> tuple[str, str | None] | Verdict:
        """``(imei14, imeisv or None)`` for a valid identity, else the ``validity`` verdict.

        The digits go through :func:`protocols.imei.parse_identity`, the one normaliser of every
        interface (the 15th digit is the Luhn CD or the spare digit 0: protocols/imei.py says why).
        A request that carries only a 3GPP2 MEID (S13 allows it instead of an IMEI, TS 29.272
        §7.3.2) gets ``unknown``: no IMEI list can match it."""
        d = req.imei
        if not d and req.meid is not None:
            return Verdict(
                status=Status.UNKNOWN,
                rule="meid",
                entry=req.meid[:32],
                detail="3GPP2 MEID only: no IMEI list can match it",
            )
        ident = parse_identity(d, req.software_version, check_luhn=self.check_luhn)
        if isinstance(ident, BadIdentity):
            return self._malformed(d, ident.detail)
        imei = ident.imei
        if ident.form is IdentityForm.IMEI_BAD_CD and self._bad_cd_status is not None:
            return Verdict(
                status=self._bad_cd_status,
                rule="check_digit",
                entry=d,
                detail=f"{self.bad_check_digit_detail(d)} (policy.bad_check_digit)",
            )
        if imei == "00000000000000":
            return self._malformed(d, "all-zero IMEI")
        if imei[:8] in self.reserved:
            return self._malformed(d, f"reserved TAC {imei[:8]}")
        return imei, ident.imeisv

    bad_check_digit_detail = staticmethod(bad_check_digit_detail)

    def check_digit_note(self, req: CheckRequest) -> str | None:
        """For ``--explain``: what ``policy.bad_check_digit`` did with this request's 15th digit,
        or None when it did not apply."""
        d = req.imei
        if len(d) != 15 or not d.isascii() or not d.isdigit():
            return None
        ident = parse_identity(d, req.software_version, check_luhn=False)
        if isinstance(ident, BadIdentity) or ident.form is not IdentityForm.IMEI_BAD_CD:
            return None
        what = {
            "malformed": f"malformed → {self.malformed.value}",
            "ignore": "ignored: looked up by its 14 digits",
        }.get(self.bad_check_digit, f"verdict {self.bad_check_digit}")
        return f"{self.bad_check_digit_detail(d)}: policy.bad_check_digit={self.bad_check_digit}, {what}"

    def _malformed(self, digits: str, detail: str) -> Verdict:
        return Verdict(status=self.malformed, rule="validity", entry=digits[:32], detail=detail)

    # --- 2.-7. ------------------------------------------------------------------------------------
    def decide(
        self,
        req: CheckRequest,
        imei: str,
        lookup: Lookup,
        rules: ImsiRules,
        sightings: Sightings | None,
        steps: list[Step] | None = None,
        handle: HandleAnswer | None = None,
        first_seen: float | None = None,
        duplicated: bool | None = None,
    ) -> Verdict:
        """Apply rules 2-7. ``steps`` (for ``--explain``) collects what each rule found.
        ``first_seen``: the IMEI's first sighting (UNIX time), for the ``tac_not_allocated`` grace
        period (eir/first_seen.py). ``duplicated``: the IMEI is flagged by DIRBS duplicate_mk1
        (eir/duplicates.py; None: the rule is off)."""
        verdict: Verdict | None = None
        if steps is not None and (lookup.tac_table or lookup.registration_list):
            steps.append(self.device_step(imei, lookup))
        if lookup.golden:
            if self.golden:
                return self._golden_verdict(imei, lookup, steps)
            if steps is not None:
                steps.append(Step(rule="golden", outcome="skipped", detail="policy.golden disabled"))
        for rule, e in (("imeisv", lookup.imeisv), ("imei", lookup.imei), ("range", lookup.range)):
            if e is None:
                if steps is not None:
                    steps.append(Step(rule=rule, outcome="no match"))
                continue
            if rule == "range" and e.kind is EntryKind.TAC:
                rule = "tac"
            if verdict is None and e.reason is not None and e.reason.startswith("dirbs-notifications"):
                verdict = self._notification(e, rule, steps)
                continue
            if verdict is None:
                # Verdicts are immutable: one per (rule, entry) is shared rather than built per check.
                key = (rule, e.kind, e.status, e.key, e.last, e.reason)
                verdict = self._list_verdicts.get(key)
                if verdict is None:
                    verdict = Verdict(
                        status=e.status,
                        rule=rule,
                        list_name=e.status.value,
                        entry=entry_text(e),
                        detail=reason_text(e.reason),
                    )
                    if len(self._list_verdicts) >= 4096:
                        self._list_verdicts.clear()
                    self._list_verdicts[key] = verdict
                if steps is not None:
                    steps.append(
                        Step(
                            rule=rule,
                            outcome="matched",
                            detail=f"{e.status.value} list: {entry_text(e)} {reason_text(e.reason)}",
                        )
                    )
            elif steps is not None:
                steps.append(
                    Step(
                        rule=rule,
                        outcome="shadowed",
                        detail=f"{e.status.value} list: {entry_text(e)} (a more specific entry decided)",
                    )
                )

        # 5. pairing exception: final
        if rules.pairing is not None:
            p = rules.pairing
            v = Verdict(
                status=Status.WHITE,
                rule="pairing",
                list_name="pairing",
                entry=f"{p.imsi}/{p.imei}",
                detail=p.reason or "",
            )
            if steps is not None:
                was = f" (overrides {verdict.status.value} from {verdict.rule})" if verdict else ""
                steps.append(Step(rule="pairing", outcome="decided", detail=f"IMSI {p.imsi} paired{was}"))
            return v
        if steps is not None:
            steps.append(
                Step(
                    rule="pairing",
                    outcome="no match" if req.imsi else "skipped",
                    detail="" if req.imsi else "no IMSI in the request",
                )
            )

        if verdict is None and handle is not None:
            verdict = self._handle_rule(handle, steps)
        if verdict is None:
            verdict = self._reference_rules(imei, lookup, steps, first_seen) or self.default
        elif steps is not None and (lookup.tac_table or lookup.registration_list):
            steps.append(
                Step(rule="reference", outcome="skipped", detail=f"listed: the {verdict.rule} entry decides")
            )
        # 5. lock: only stricter
        if rules.locked and not rules.lock_allows:
            if RANK[self.lock_status] > RANK[verdict.status]:
                verdict = Verdict(
                    status=self.lock_status,
                    rule="lock",
                    list_name="lock",
                    entry=f"{req.imsi}/{imei}",
                    detail="IMSI is locked to other IMEIs",
                )
                if steps is not None:
                    steps.append(
                        Step(
                            rule="lock", outcome="decided", detail=f"IMSI {req.imsi} is locked to other IMEIs"
                        )
                    )
            elif steps is not None:
                steps.append(
                    Step(
                        rule="lock",
                        outcome="matched",
                        detail=f"IMSI locked to other IMEIs; {verdict.status.value} already as strict",
                    )
                )
        elif steps is not None:
            steps.append(Step(rule="lock", outcome="allowed" if rules.locked else "no match"))

        # 6. clone: only stricter
        reason = self.clone_reason(sightings)
        if reason is not None:
            assert sightings is not None
            if RANK[self.clone_status] > RANK[verdict.status]:
                verdict = Verdict(
                    status=self.clone_status,
                    rule="clone",
                    list_name="observations",
                    entry=imei,
                    detail=self.clone_detail(sightings),
                )
                if steps is not None:
                    steps.append(Step(rule="clone", outcome="decided", detail=self.clone_detail(sightings)))
            elif steps is not None:
                steps.append(
                    Step(
                        rule="clone",
                        outcome="suspected",
                        detail=f"{self.clone_detail(sightings)}; {verdict.status.value} already as strict",
                    )
                )
        elif steps is not None:
            if sightings is None:
                why = "disabled" if not self.clone_enabled else "no IMSI or origin, or no data"
                steps.append(Step(rule="clone", outcome="skipped", detail=why))
            else:
                steps.append(Step(rule="clone", outcome="no match", detail=self.clone_detail(sightings)))

        # 6b. duplicate_mk1 (the history's clone rule): only stricter
        if duplicated:
            if RANK[self.dup_status] > RANK[verdict.status]:
                verdict = self._dup_verdict
                if steps is not None:
                    steps.append(Step(rule="duplicate", outcome="decided", detail=self._dup_detail))
            elif steps is not None:
                steps.append(
                    Step(
                        rule="duplicate",
                        outcome="flagged",
                        detail=f"{self._dup_detail}; {verdict.status.value} already as strict",
                    )
                )
        elif steps is not None and duplicated is not None:
            steps.append(
                Step(rule="duplicate", outcome="no match", detail=f"not flagged ({self._dup_params})")
            )

        if steps is not None and verdict is self.default:
            steps.append(
                Step(
                    rule="default",
                    outcome="decided",
                    detail=f"unknown equipment → {self.default.status.value}",
                )
            )
        return verdict

    def _golden_verdict(self, imei: str, lookup: Lookup, steps: list[Step] | None) -> Verdict:
        """1b. A golden IMEI is white: what the lists said is overridden (``--explain`` names it)."""
        over = [
            f"the {e.status.value} list's {entry_text(e)} {reason_text(e.reason)}".rstrip()
            for e in (lookup.imeisv, lookup.imei, lookup.range)
            if e is not None and e.status is not Status.WHITE
        ]
        detail = "on the DIRBS golden list: never blocked"
        if steps is not None:
            was = f" (overrides {'; '.join(over)})" if over else ""
            steps.append(Step(rule="golden", outcome="decided", detail=detail + was))
        return Verdict(status=Status.WHITE, rule="golden", list_name="golden", entry=imei, detail=detail)

    # --- reference data and grace dates -------------------------------------------------------------
    def today(self) -> str:
        """The wall clock's UTC date as YYYYMMDD (recomputed at most once a second)."""
        now = self.wall()
        if now - self._today[0] >= 1.0 or now < self._today[0]:
            self._today = (now, datetime.fromtimestamp(now, UTC).strftime("%Y%m%d"))
        return self._today[1]

    def _notification(self, e: ListEntry, rule: str, steps: list[Step] | None) -> Verdict:
        tagged = parse_tagged(e.reason)
        meta = tagged[1] if tagged is not None else {}
        block = meta.get("block_date", "")
        amnesty = meta.get("amnesty") == "true"
        today = self.today()
        due = self.notify_on and bool(block) and today >= block and not amnesty
        status = self.notify_after if due else (self.notify_before if self.notify_on else e.status)
        when = f"{block[:4]}-{block[4:6]}-{block[6:]}" if len(block) == 8 else "none"
        if amnesty:
            why = f"amnesty granted (block date {when})"
        elif not self.notify_on:
            why = "policy.notifications disabled"
        elif due:
            why = f"block date {when} reached (today {today[:4]}-{today[4:6]}-{today[6:]})"
        else:
            why = f"{self.notify_before.value} until block date {when}"
        reasons = meta.get("reasons", "")
        detail = why + (f"; reasons {reasons}" if reasons else "")
        if steps is not None:
            steps.append(
                Step(rule="notification", outcome="decided", detail=f"{rule} entry {entry_text(e)}: {detail}")
            )
        return Verdict(
            status=status, rule="notification", list_name="notification", entry=entry_text(e), detail=detail
        )

    def _handle_rule(self, h: HandleAnswer, steps: list[Step] | None) -> Verdict | None:
        """X.1255: the record's EIR.STATUS decides; no record → nothing; a failure →
        ``policy.handle.on_failure``."""
        cached = " (cached)" if h.cached else ""
        if h.result == "found" and h.record is not None:
            st = h.record.status
            if st in ("white", "grey", "black"):
                reason = h.record.values.get("EIR.REASON", "")
                if steps is not None:
                    steps.append(
                        Step(rule="handle", outcome="decided", detail=f"{h.handle}: {st}{cached} {reason}")
                    )
                return Verdict(
                    status=Status(st), rule="handle", list_name="x1255", entry=h.handle, detail=reason
                )
            if steps is not None:
                steps.append(
                    Step(rule="handle", outcome="no status", detail=f"{h.handle}: EIR.STATUS {st!r}{cached}")
                )
            return None
        if h.result == "not_found":
            if steps is not None:
                steps.append(Step(rule="handle", outcome="no record", detail=f"{h.handle}{cached}"))
            return None
        if self.handle_failure is None:
            if steps is not None:
                steps.append(
                    Step(rule="handle", outcome=h.result, detail=f"{h.handle}: {h.detail}; skipped{cached}")
                )
            return None
        if steps is not None:
            steps.append(
                Step(
                    rule="handle",
                    outcome=h.result,
                    detail=f"{h.handle}: {h.detail} → on_failure {self.handle_failure.value}{cached}",
                )
            )
        return Verdict(
            status=self.handle_failure, rule="handle", list_name="x1255", entry=h.handle, detail=h.result
        )

    def _reference_rules(
        self, imei: str, lookup: Lookup, steps: list[Step] | None, first_seen: float | None = None
    ) -> Verdict | None:
        """``not_registered`` and ``tac_not_allocated`` for an IMEI no list entry matched."""
        if steps is None:  # the hot path: the same answer as below, built cheaply
            reg = lookup.registration_list and self.reg_rule is not None and lookup.registration is None
            tac = lookup.tac_table and self.tac_rule is not None and lookup.device is None
            if not (reg or tac):
                return None
            if tac and not (reg and self._reg_first):
                return self._tac_verdict(imei, self.grace_over(first_seen))
            return self._reg_verdict
        found: Verdict | None = None
        if lookup.registration_list and self.reg_rule is not None:
            if lookup.registration is None:
                found = self._reg_verdict
                if steps is not None:
                    steps.append(
                        Step(
                            rule="registered",
                            outcome="no",
                            detail=f"not on the registration list → {self.reg_rule.value}",
                        )
                    )
            elif steps is not None:
                steps.append(
                    Step(
                        rule="registered",
                        outcome="yes",
                        detail=device_text("registration", lookup.registration),
                    )
                )
        elif steps is not None and lookup.registration_list:
            steps.append(Step(rule="registered", outcome="skipped", detail="policy.not_registered disabled"))
        if lookup.tac_table and self.tac_rule is not None:
            if lookup.device is None:
                tv = self._tac_verdict(imei, self.grace_over(first_seen))
                if found is None or RANK[tv.status] > RANK[found.status]:
                    found = tv
                if steps is not None:
                    steps.append(
                        Step(
                            rule="tac_alloc",
                            outcome="no",
                            detail=f"TAC {imei[:8]} not in the TAC table → {tv.status.value}"
                            + self.grace_text(first_seen),
                        )
                    )
            elif steps is not None:
                steps.append(Step(rule="tac_alloc", outcome="yes", detail=f"TAC {imei[:8]} allocated"))
        elif steps is not None and lookup.tac_table:
            steps.append(
                Step(rule="tac_alloc", outcome="skipped", detail="policy.tac_not_allocated disabled")
            )
        if found is not None and steps is not None:
            steps.append(
                Step(rule=found.rule, outcome="decided", detail=f"{found.detail} → {found.status.value}")
            )
        return found

    def grace_over(self, first_seen: float | None) -> bool:
        """The ``tac_not_allocated`` grace period of an IMEI first seen then is over (by the
        injected wall clock). No grace configured, or no first sighting known: False."""
        return self.tac_grace > 0 and first_seen is not None and self.wall() >= first_seen + self.tac_grace

    def grace_text(self, first_seen: float | None) -> str:
        if self.tac_grace <= 0:
            return ""
        if first_seen is None:
            return " (grace period: no first sighting known)"
        end = datetime.fromtimestamp(first_seen + self.tac_grace, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        first = datetime.fromtimestamp(first_seen, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        state = "over" if self.grace_over(first_seen) else "until"
        return f" (first seen {first}; grace {state} {end}, then {self.tac_after.value})"

    def _tac_verdict(self, imei: str, due: bool = False) -> Verdict:
        """The ``tac_not_allocated`` verdict of ``imei``'s TAC (one per TAC and grace state,
        shared)."""
        tac = imei[:8]
        cache = self._tac_verdicts[due]
        v = cache.get(tac)
        if v is None:
            assert self.tac_rule is not None
            if len(cache) >= 4096:
                cache.clear()
            v = cache[tac] = Verdict(
                status=self.tac_after if due else self.tac_rule,
                rule="tac_not_allocated",
                list_name="tac",
                entry=tac,
                detail="TAC not in the TAC table" + ("; grace period over" if due else ""),
            )
        return v

    @staticmethod
    def device_step(imei: str, lookup: Lookup) -> Step:
        """``--explain``: the device the TAC table (or the registration list) says this is."""
        if lookup.device is not None:
            return Step(
                rule="device",
                outcome="tac table",
                detail=f"TAC {imei[:8]}: {device_text('tac', lookup.device)}",
            )
        if lookup.registration is not None:
            return Step(
                rule="device", outcome="registered", detail=device_text("registration", lookup.registration)
            )
        if lookup.tac_table:
            return Step(rule="device", outcome="unknown", detail=f"TAC {imei[:8]} is not in the TAC table")
        return Step(rule="device", outcome="unknown", detail="no TAC table loaded")

    def clone_reason(self, s: Sightings | None) -> str | None:
        """``imsis`` / ``origins`` when the sightings make the IMEI a clone suspect."""
        if s is None:
            return None
        if s.distinct_imsis >= self.clone_max_imsis:
            return "imsis"
        if self.clone_origins and s.distinct_origins >= 2:
            return "origins"
        return None

    def clone_detail(self, s: Sightings) -> str:
        return (
            f"{s.distinct_imsis} IMSIs, {s.distinct_origins} origins within {self.clone_window:g}s "
            f"(limit {self.clone_max_imsis} IMSIs{', 2 origins' if self.clone_origins else ''})"
        )
