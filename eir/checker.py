"""CheckRequest → Verdict: the policy (eir/policy.py) run against the identity store.

On the hot path of every interface (~20k checks/s per process), so it stays lean:

* Validity is decided before any store call; label children of the metrics are resolved once.
* Store calls are awaited directly. The SQLite store answers synchronously inside them (a point
  lookup is microseconds; a hop to a thread would cost more than the lookup).
* Stores that set ``cache_lookups`` (remote ones, where a round trip costs far more than a dict
  lookup) get their answers cached per active version; the cache is dropped whenever ``watch``
  reports a new version.
* A store that suspends (PostgreSQL, Redis) gets ``store.call_timeout`` seconds per check, connecting
  included: a hung server (or one stopped with SIGSTOP) costs each check that long, not the
  client library's connect + command timeouts (8 s by default). The call runs as its own Task so
  that the limit holds even when the library delays its cancellation (:meth:`_limited`).
* A store outage (StoreUnavailableError, connection errors, timeouts) becomes the configured
  ``store.on_unavailable`` answer (FAILURE = the interface's system-failure error, or a verdict),
  one log line when it starts and one when it ends, and ``eir_store_errors``. After a failure the
  store is left alone for ``retry_after`` seconds (answers are the fallback meanwhile) so an outage
  does not turn into a storm of connection attempts; then the next check tries again.
* The servers start each check eagerly (:mod:`eir.servers._eager`): its first step runs in
  ``data_received``, outside any Task. A store whose ``needs_task`` is True (its client library uses
  ``asyncio.timeout``, which refuses to run outside a Task) is first reached after one yield, so the
  check continues under the Task the server wraps around it; stores that answer inline (SQLite,
  memory) and cached answers cost no Task and no loop turn.
* Time comes from the injected clocks (``clock`` for delays, ``wall`` for sighting timestamps), so
  tests step time instead of sleeping.
* Clone sightings are counted in memory and written behind to ``observations`` (default: the list
  store) by :class:`eir.sightings.SightingTracker`: no store write on the hot path; a store that
  cannot take them costs the durable copy (logged and counted), never an answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any, TypeVar

from eir.config import Config
from eir.duplicates import DuplicateTracker
from eir.events import EventSink
from eir.first_seen import FirstSeen
from eir.logging import RateLimitedLog, get_logger
from eir.metrics import (
    CLONE_SUSPICIONS,
    LIST_ENTRIES,
    LIST_VERSION,
    REQUESTS,
    STORE_ERRORS,
    STORE_SECONDS,
    VERDICTS,
)
from eir.model import CheckRequest, Interface, Status, Verdict
from eir.policy import CLONE_REASONS, Policy, Step
from eir.sightings import IMSI, IMSI_MAP, IMSI_N5G, IMSI_S13, MSISDN_KINDS, SightingTracker
from eir.store.base import (
    REGISTERED,
    IdentityStore,
    ImsiRules,
    Lookup,
    Sightings,
    StoreError,
    answers_inline,
)

__all__ = ["CallTimeoutError", "PolicyChecker", "build_checker"]

RETRY_AFTER = 0.25
"""Seconds a failed store is not asked again (fallback answers meanwhile)."""
CACHE_SIZE = 100_000
"""Entries per cache (lookups, IMSI rules) before it is simply cleared."""

_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (StoreError, OSError, TimeoutError, ConnectionError)
_NO_RULES = ImsiRules()
_STORE_LOOKUP = STORE_SECONDS.labels("lookup")
_STORE_RULES = STORE_SECONDS.labels("imsi_rules")


_IMSI_KIND = {
    Interface.S13: IMSI_S13,
    Interface.MAP: IMSI_MAP,
    Interface.N5G: IMSI_N5G,
    Interface.CLI: IMSI,
}
"""The sighting kind of an IMSI by the interface it came on (the observations dump's ``rat``)."""

_IMSI_KEPT = 32
"""Characters of a request's IMSI a sighting keeps (an IMSI has at most 15 digits; S13's User-Name
is free text): ``_observe`` cuts a longer one, so the first-sighting path takes only shorter ones."""

_T = TypeVar("_T")


class CallTimeoutError(TimeoutError):
    """A store call went past ``store.call_timeout``. ``alive``: the store answered other calls
    since this one started — the delay was this process's (an event loop busy with a flood), so
    only this check gets the fallback; otherwise the store counts as down for ``retry_after``
    (every check answered the fallback at once meanwhile, as for any outage)."""

    def __init__(self, limit: float, *, alive: bool) -> None:
        super().__init__(f"no answer within store.call_timeout ({limit:g} s)")
        self.alive = alive


class PolicyChecker:
    """The :class:`eir.model.Checker` every server adapter calls."""

    def __init__(
        self,
        config: Config,
        store: IdentityStore,
        events: EventSink,
        observations: IdentityStore | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self.config = config
        self._clock = clock
        self._wall = wall
        self.retry_after = retry_after
        self.call_timeout = config.store.call_timeout
        """Seconds one check may wait for a store that suspends (PostgreSQL, Redis) before it
        gets the ``on_unavailable`` answer (``store.call_timeout``)."""
        self._store_answers = 0
        """Store calls answered in time: a call that times out while others were answered found
        the store alive (this process was too busy), not down (:class:`CallTimeoutError`)."""
        self._slow_log = RateLimitedLog(config.log.rate_limit_burst, config.log.rate_limit_interval)
        self._abandoned: set[asyncio.Future[Any]] = set()
        """Store calls cut by call_timeout, still finishing in the background (held: a Task nobody
        references may be garbage-collected mid-flight)."""
        self.policy = Policy(config.policy, wall=wall)
        self.handle = _handle_resolver(config, clock)
        self.store = store
        self.observations = observations or store
        self.events = events
        self._log = get_logger(component="checker")
        self._debug = config.log.level.lower() == "debug"
        self._publish_verdicts = config.mqtt.enabled and config.mqtt.publish_verdicts
        ou = config.store.on_unavailable
        self._fallback = Verdict(
            status=Status.FAILURE if ou == "failure" else Status(ou), rule="store", detail="store unavailable"
        )
        self._store_name = getattr(store, "name", None) or config.store.url.split(":", 1)[0]
        obs_url = config.store.observations_url or config.store.url
        self._obs_name = getattr(self.observations, "name", None) or obs_url.split(":", 1)[0]
        self._cache_on = bool(getattr(store, "cache_lookups", False))
        self._lookups: dict[tuple[str, str | None], Lookup] = {}
        self._rules: dict[tuple[str, str], ImsiRules] = {}
        self._no_pairs = False
        """The active list version holds no pairing or lock (its ``versions()`` count, read after
        each version change): an IMSI's rules are known without asking the store or filling the
        cache. False until known, and again from each new version until its count is read."""
        self._version_seen: int | None = None
        self._watching = False
        self._watch_registered = False
        self._size_tasks: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._down: dict[str, bool] = {}
        self._requests: dict[Interface, Any] = {}
        self._verdicts: dict[tuple[Interface, Status, str], Any] = {}
        self._clone_seen: dict[str, float] = {}
        self._store_needs_task = store.needs_task
        self._lookup_inline = store.lookup_inline if answers_inline(store) else None
        clone = config.policy.clone
        self.sightings: SightingTracker | None = None
        self._track_origins = clone.distinct_origins
        """Origins are recorded only for the rule that reads them (off by default): otherwise
        every fresh IMEI would cost a second row for an origin nobody counts."""
        if self.policy.clone_enabled:
            # other writers: remote stores (other instances may use them), or --workers on one file
            shared = getattr(self.observations, "name", "") in ("postgres", "redis") or config.workers > 1
            self.sightings = SightingTracker(
                self.observations,
                clone.window,
                max_tracked_imeis=clone.max_tracked_imeis,
                max_values_per_imei=clone.max_values_per_imei,
                flush_interval=clone.flush_interval,
                share_interval=clone.share_interval if shared else None,
                max_stored=clone.max_stored,
                trusted_origins=clone.trusted_origins,
                max_new_per_origin=clone.max_new_per_origin,
                max_new_per_second=clone.max_new_per_second,
                half_life=clone.half_life,
                clock=wall,
            )
        self._exempt_white = clone.exempt_white
        self.duplicates: DuplicateTracker | None = None
        if config.policy.duplicate.enabled:
            self.duplicates = DuplicateTracker(
                self.observations, config.policy.duplicate, clock=wall, trusted_origins=clone.trusted_origins
            )
        self.first_seen: FirstSeen | None = None
        if self.policy.tac_grace > 0:
            self.first_seen = FirstSeen(
                self.observations, max_imeis=config.policy.tac_not_allocated.max_first_seen, clock=wall
            )
        # Every series exists from start-up (0 until it happens), so rate() and alerts work at once.
        STORE_ERRORS.labels(self._store_name)
        STORE_ERRORS.labels(self._obs_name)
        for reason in CLONE_REASONS:
            CLONE_SUSPICIONS.labels(reason)

    # --- the Checker protocol ----------------------------------------------------------------------
    async def check(self, request: CheckRequest, steps: list[Step] | None = None) -> Verdict:
        """The verdict, counted (and published); ``steps``, when given, receives the decision path
        rule by rule from the same evaluation (``eir check --explain``, the admin API's check),
        without its last ``verdict`` step (:func:`eir.explain.explained_check` adds it)."""
        iface = request.interface
        c = self._requests.get(iface)
        if c is None:
            c = self._requests[iface] = REQUESTS.labels(iface.value)
        c.inc()
        try:
            verdict = await self._decide(request, steps)
        except Exception as e:  # a bug must not take the server down: answer, log, count
            self._log.error(
                "check_failed", imei=request.imei[:32], error=f"{type(e).__name__}: {e}", exc_info=True
            )
            verdict = Verdict(status=Status.FAILURE, rule="error", detail=type(e).__name__)
        key = (iface, verdict.status, verdict.rule)
        vc = self._verdicts.get(key)
        if vc is None:
            vc = self._verdicts[key] = VERDICTS.labels(iface.value, verdict.status.value, verdict.rule)
        vc.inc()
        if self._debug:
            self._log.debug(
                "check",
                interface=iface.value,
                imei=request.imei[:32],
                sv=request.software_version,
                imsi=request.imsi,
                origin=request.origin,
                status=verdict.status.value,
                reason=verdict.reason,
            )
        if self._publish_verdicts:
            self.events.publish(
                f"verdict/{verdict.status.value}",
                {
                    "imei": request.imei[:32],
                    "imsi": request.imsi,
                    "interface": iface.value,
                    "origin": request.origin,
                    "status": verdict.status.value,
                    "rule": verdict.rule,
                    "list": verdict.list_name,
                    "entry": verdict.entry,
                },
            )
        return verdict

    async def explain(self, request: CheckRequest) -> list[Step]:
        """The decision path of one check, rule by rule (``eir check --explain``); the last step
        is the verdict."""
        steps: list[Step] = []
        v = await self._decide(request, steps)
        steps.append(Step(rule="verdict", outcome=v.status.value, detail=v.reason))
        return steps

    # --- internals ---------------------------------------------------------------------------------
    async def _decide(self, req: CheckRequest, steps: list[Step] | None) -> Verdict:
        parsed = self.policy.validate(req)
        if isinstance(parsed, Verdict):
            if steps is not None:
                note = self.policy.check_digit_note(req)
                if parsed.rule == "check_digit":
                    steps.append(Step(rule="check_digit", outcome="decided", detail=note or parsed.detail))
                else:
                    if note is not None:
                        steps.append(Step(rule="check_digit", outcome="malformed", detail=note))
                    steps.append(Step(rule="validity", outcome="failed", detail=parsed.detail))
            return parsed
        imei, imeisv = parsed
        if steps is not None:
            note = self.policy.check_digit_note(req)
            if note is not None:
                steps.append(Step(rule="check_digit", outcome="ignored", detail=note))
            steps.append(
                Step(
                    rule="validity",
                    outcome="ok",
                    detail=f"IMEI {imei}" + (f", IMEISV {imeisv}" if imeisv else ""),
                )
            )
        if self._clock() < self._down_until:
            if steps is not None:
                steps.append(Step(rule="store", outcome="failed", detail="unavailable (retrying shortly)"))
            return self._fallback
        if not self._watching:
            await self._start_watch()
            if self._clock() < self._down_until:
                if steps is not None:
                    steps.append(Step(rule="store", outcome="failed", detail="unavailable"))
                return self._fallback
        imsi = req.imsi
        try:
            key = (imei, imeisv)
            lookup = self._lookups.get(key) if self._cache_on else None
            if imsi and self._no_pairs:
                imsi = None  # no pairing list to ask (self._no_pairs): the rules are _NO_RULES
            r = self._rules.get((imsi, imei)) if self._cache_on and imsi else None
            if lookup is None and not (imsi and r is None) and self._lookup_inline is not None:
                # a fresh IMEI and nothing else to ask, from a store that answers inline: no
                # coroutine (_fetch's work, called directly)
                t0 = perf_counter()
                lookup = self._lookup_inline(imei, imeisv)
                _STORE_LOOKUP.observe(perf_counter() - t0)
                if self._cache_on:
                    self._remember(key, lookup)
            elif lookup is None or (imsi and r is None):
                if self._store_needs_task:
                    if asyncio.current_task() is None:
                        await asyncio.sleep(0)  # continue under the server's Task (module docstring)
                    lookup, r = await self._limited(self._fetch(imei, imeisv, imsi, lookup, r))
                else:
                    lookup, r = await self._fetch(imei, imeisv, imsi, lookup, r)
            rules = r if imsi and r is not None else _NO_RULES
            if lookup is None:  # never: _fetch fills it (said for the type checker)
                raise StoreError("store gave no lookup")
        except _OUTAGE_ERRORS as e:
            self._store_failed("store", self._store_name, e)
            if steps is not None:
                steps.append(Step(rule="store", outcome="failed", detail=f"{type(e).__name__}: {e}"))
            return self._fallback
        if self._down.get("store"):
            self._store_recovered("store", self._store_name)

        sightings = None
        tracker = self.sightings
        if tracker is not None and self._exempt_white and _exempt(lookup, rules):
            tracker = None  # policy.clone.exempt_white: nothing recorded, never suspected
            if steps is not None:
                steps.append(
                    Step(rule="clone", outcome="exempt", detail="white-listed or paired (exempt_white)")
                )
        if tracker is not None and (req.imsi or (self._track_origins and req.origin)):
            if not tracker.running:  # `eir check`: the stored sightings of this IMEI, nothing recorded
                try:
                    await tracker.load_imei(imei)
                except _OUTAGE_ERRORS as e:
                    self._store_failed("observations", self._obs_name, e)
            seen = req.imsi
            if seen and req.msisdn is None and not self._track_origins and len(seen) <= _IMSI_KEPT:
                # a population load's commonest case, a first sighting of the IMEI, without
                # _observe's bounds and observe's tests (None: not that case)
                sightings = tracker.first_imsi(imei, seen, self._wall(), _IMSI_KIND[req.interface])
            if sightings is None:
                sightings = self._observe(tracker, imei, req)
        if steps is not None and lookup.registration == REGISTERED:
            # the store left the record out on the hot path: the explanation shows it
            try:
                record = await self.store.reference("registration", imei)
            except _OUTAGE_ERRORS:
                record = None
            if record:
                lookup = dataclasses.replace(lookup, registration=record)
        handle = None
        if (
            self.handle is not None
            and lookup.imei is None
            and lookup.imeisv is None
            and lookup.range is None
            and not (lookup.golden and self.policy.golden)  # golden decides: no look-up to wait for
        ):
            handle = await self.handle.resolve(imei)  # bounded by policy.handle.timeout (eir/handle.py)
        first = None
        fs = self.first_seen
        if (
            fs is not None
            and lookup.tac_table
            and lookup.device is None
            and lookup.imei is None
            and lookup.imeisv is None
            and lookup.range is None
        ):
            # the grace clock of an unallocated TAC (policy.tac_not_allocated.grace_days): a dict
            # look-up, a new IMEI recorded and written behind (eir/first_seen.py)
            if not fs.running and not fs.loaded:  # `eir check`: the stored clocks, nothing recorded
                try:
                    await fs.load()
                except _OUTAGE_ERRORS as e:
                    self._store_failed("observations", self._obs_name, e)
            first = fs.first_seen(imei, self._wall())
        dup = self.duplicates
        duplicated = None
        if dup is not None:
            subscriber = req.msisdn if dup.use_msisdn else req.imsi
            if subscriber and dup.running:
                # written behind (eir/duplicates.py); origins outside policy.clone.trusted_origins
                # are not recorded
                dup.observe(imei, subscriber[:32], self._wall(), req.origin)
            elif not dup.running and not dup.loaded:  # `eir check`: the stored flags, nothing recorded
                try:
                    await dup.load()
                except _OUTAGE_ERRORS as e:
                    self._store_failed("observations", self._obs_name, e)
            duplicated = imei in dup.flagged
        verdict = self.policy.decide(req, imei, lookup, rules, sightings, steps, handle, first, duplicated)
        if sightings is not None and (
            sightings.distinct_imsis >= self.policy.clone_max_imsis or sightings.distinct_origins >= 2
        ):  # no call below policy.clone.max_imsis and two origins: clone_reason decides the rest
            reason = self.policy.clone_reason(sightings)
            if reason is not None:
                self._clone_suspected(imei, req, sightings, reason, verdict)
        return verdict

    async def _fetch(
        self, imei: str, imeisv: str | None, imsi: str | None, lookup: Lookup | None, rules: ImsiRules | None
    ) -> tuple[Lookup, ImsiRules | None]:
        """The store's answers the cache did not have (filling the cache)."""
        if lookup is None:
            t0 = perf_counter()
            lookup = await self.store.lookup(imei, imeisv)
            _STORE_LOOKUP.observe(perf_counter() - t0)
            if self._cache_on:
                self._remember((imei, imeisv), lookup)
        if imsi and rules is None:
            t0 = perf_counter()
            rules = await self.store.imsi_rules(imsi, imei)
            _STORE_RULES.observe(perf_counter() - t0)
            if self._cache_on and len(imsi) <= 16:
                if len(self._rules) >= CACHE_SIZE:
                    self._rules.clear()
                self._rules[(imsi, imei)] = rules
        return lookup, rules

    def _remember(self, key: tuple[str, str | None], lookup: Lookup) -> None:
        """Cache an answer under ``(imei, imeisv)`` (the key the miss was looked up by)."""
        if len(self._lookups) >= CACHE_SIZE:
            self._lookups.clear()
        self._lookups[key] = lookup

    def _observe(self, tracker: SightingTracker, imei: str, req: CheckRequest) -> Sightings:
        imsi = req.imsi
        origin = req.origin if self._track_origins else None
        # what the wire sent is kept and stored: bound it (an IMSI has at most 15 digits, a
        # DiameterIdentity or a GT is short too)
        if imsi is not None and len(imsi) > _IMSI_KEPT:
            imsi = imsi[:_IMSI_KEPT]
        if origin is not None and len(origin) > 255:
            origin = origin[:255]
        peer = req.origin
        if peer is not None and len(peer) > 255:
            peer = peer[:255]
        kind = _IMSI_KIND[req.interface]
        msisdn = req.msisdn
        if msisdn is not None and (
            kind not in MSISDN_KINDS or not (len(msisdn) <= 15 and msisdn.isascii() and msisdn.isdigit())
        ):
            msisdn = None  # kept for the dump as DIRBS has it (E.164 digits), on MAP and N5g rows only
        return tracker.observe(imei, imsi, origin, self._wall(), peer, kind, msisdn)

    async def clear_sightings(self, imei: str) -> int:
        """An operator clears a clone suspicion (the admin API calls this; ``eir sightings clear``
        does the store's part from the CLI): the IMEI's sightings go from memory and from the
        observations store, and a clear row tells instances sharing the store to drop theirs
        (within ``share_interval``). The next check of the IMEI starts from nothing. Returns how
        many stored rows went. Raises StoreError / ValueError (not an IMEI)."""
        imei14 = imei[:14]
        if len(imei14) != 14 or not imei14.isdigit():
            raise ValueError(f"not an IMEI: {imei!r}")
        now = self._wall()
        tracker = self.sightings
        if tracker is None:  # the rule is off: the store only
            tracker = SightingTracker(self.observations, self.config.policy.clone.window, clock=self._wall)
        tracker.clear(imei14, now)
        self._clone_seen.pop(imei14, None)
        gone = await tracker.clear_stored(imei14, now)
        self._log.info("sightings_cleared", imei=imei14, rows=gone)
        return gone

    def forget_sightings(self, imei: str) -> None:
        """Another worker cleared this IMEI's clone suspicion (eir/control.py): drop it from this
        process's memory (the store's part was done there)."""
        imei14 = imei[:14]
        if self.sightings is not None:
            self.sightings.clear(imei14, self._wall())
        self._clone_seen.pop(imei14, None)

    async def start(self) -> None:
        """Start the background work of a serving checker: the clone sightings' read-back,
        write-behind and sharing (eir/sightings.py). ``eir check`` never starts it."""
        if self.sightings is not None:
            await self.sightings.start()
        if self.first_seen is not None:
            await self.first_seen.start()
        if self.duplicates is not None:
            await self.duplicates.start()

    async def close(self) -> None:
        """Write the sightings still queued (before the stores close)."""
        if self.sightings is not None:
            await self.sightings.close()
        if self.first_seen is not None:
            await self.first_seen.close()
        if self.duplicates is not None:
            await self.duplicates.close()

    def _clone_suspected(self, imei: str, req: CheckRequest, s: Sightings, reason: str, v: Verdict) -> None:
        """Event + metric once per IMEI per window, not on every check of a suspect IMEI."""
        now = self._clock()
        last = self._clone_seen.get(imei)
        if last is not None and now - last < self.policy.clone_window:
            return
        if len(self._clone_seen) >= CACHE_SIZE:
            self._clone_seen.clear()
        self._clone_seen[imei] = now
        CLONE_SUSPICIONS.labels(reason).inc()
        payload = {
            "imei": imei,
            "imsi": req.imsi,
            "origin": req.origin,
            "interface": req.interface.value,
            "reason": reason,
            "distinct_imsis": s.distinct_imsis,
            "distinct_origins": s.distinct_origins,
            "window": self.policy.clone_window,
            "status": v.status.value,
            "rule": v.rule,
        }
        self._log.warning("clone_suspected", **payload)
        self.events.publish("clone", payload)

    def _store_failed(self, which: str, name: str, e: BaseException) -> None:
        STORE_ERRORS.labels(name).inc()
        if isinstance(e, CallTimeoutError) and e.alive:
            # the store answered other calls meanwhile: this check's fallback, no outage
            self._slow_log.warning(
                self._log, "store_call_timeout", "store_call_timeout", store=name, error=str(e)
            )
            return
        if which == "store":
            # From the moment of failure: a store that takes longer than RETRY_AFTER to fail (a
            # black-holed server, a connect timeout) must still be left alone for RETRY_AFTER.
            self._down_until = self._clock() + self.retry_after
        if not self._down.get(which):
            self._down[which] = True
            fallback = self._fallback.status.value if which == "store" else "clone rule skipped"
            self._log.warning(
                f"{which}_unavailable", store=name, error=f"{type(e).__name__}: {e}", fallback=fallback
            )

    def _store_recovered(self, which: str, name: str) -> None:
        self._down[which] = False
        self._log.info(f"{which}_recovered", store=name)

    async def _limited(self, call: Coroutine[Any, Any, _T]) -> _T:
        """``call`` (a call to a store that suspends) within ``store.call_timeout``: past it, a
        TimeoutError now, and the call is cancelled and left to finish in the background.

        Not ``asyncio.timeout``: a client library may hold up its own cancellation — asyncpg, for
        one, waits for the server to acknowledge a cancelled query, up to its command timeout, and
        a server stopped with SIGSTOP never does. A separate Task makes the limit hold whatever
        the library does; what is abandoned meanwhile is bounded by the library's pool."""
        answered = self._store_answers
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait((task,), timeout=self.call_timeout)
        except asyncio.CancelledError:  # our own check was cancelled (its connection went away)
            task.cancel()
            self._abandon(task)
            raise
        if not done:
            task.cancel()
            self._abandon(task)
            raise CallTimeoutError(self.call_timeout, alive=self._store_answers != answered)
        result = task.result()
        self._store_answers += 1
        return result

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned_done)

    def _abandoned_done(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the failure was already answered and counted

    async def _start_watch(self) -> None:
        # Register the callback once: a store that is down when asked for its active version must
        # not collect a second callback on the next check.
        if self._store_needs_task and asyncio.current_task() is None:
            await asyncio.sleep(0)
        if not self._watch_registered:
            try:
                if self._store_needs_task:
                    await self._limited(self.store.watch(self._on_version))
                else:
                    await self.store.watch(self._on_version)
            except _OUTAGE_ERRORS as e:
                self._store_failed("store", self._store_name, e)
                return  # try again once the retry delay has passed
            self._watch_registered = True
        try:
            if self._store_needs_task:
                v = await self._limited(self.store.active_version())
            else:
                v = await self.store.active_version()
        except _OUTAGE_ERRORS as e:
            self._store_failed("store", self._store_name, e)
            return
        self._watching = True
        if v is not None:
            LIST_VERSION.set(v)
            if self._version_seen is None:
                self._version_seen = v
            self._refresh_sizes()
        elif self._cache_on and self._version_seen is None:
            self._no_pairs = True  # no list at all (until a version is notified: _on_version)

    def lists_changed(self, version_id: int) -> None:
        """This process changed the lists (the admin API): drop the cached answers now rather than
        when the store's notification arrives, so that the next check sees the change."""
        self._on_version(version_id)

    def _on_version(self, version_id: int) -> None:
        self._no_pairs = False  # until this version's pairing count is read (_refresh_sizes)
        self._version_seen = version_id
        self._lookups.clear()
        self._rules.clear()
        LIST_VERSION.set(version_id)
        self._log.info("list_version_active", version=version_id)
        self.events.publish("lists", {"version": version_id})
        self._refresh_sizes()

    def _refresh_sizes(self) -> None:
        """eir_list_entries from the active version's counts (one versions() call, in a task)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._set_list_sizes(self._version_seen))
        self._size_tasks.add(task)
        task.add_done_callback(self._size_tasks.discard)

    async def _set_list_sizes(self, seen: int | None) -> None:
        """eir_list_entries, and whether the active version has pairings: when it has none (and
        the cached answers are dropped on every new version, ``cache_lookups``), a check with an
        IMSI skips the pairing look-up and its cache. Only for the version that was active when
        asked: a newer one notified meanwhile leaves ``_no_pairs`` False until its own count."""
        try:
            versions = await self.store.versions()
        except Exception:  # the store is down: the gauge keeps its last value, the checks say why
            return
        for v in versions:
            if v.active:
                LIST_ENTRIES.labels("equipment").set(v.entries)
                LIST_ENTRIES.labels("pairing").set(v.pairings)
                if self._cache_on and v.id == seen == self._version_seen and not v.pairings:
                    self._no_pairs = True


def _exempt(lookup: Lookup, rules: ImsiRules) -> bool:
    """policy.clone.exempt_white: the IMEI's most specific list entry is white, or the IMSI is
    paired with it (an exception, or a lock that lists it)."""
    entry = lookup.imeisv or lookup.imei or lookup.range
    if entry is not None and entry.status is Status.WHITE:
        return True
    return rules.pairing is not None or (rules.locked and rules.lock_allows)


def _handle_resolver(config: Config, clock: Callable[[], float]) -> Any:
    h = config.policy.handle
    if not h.enabled:
        return None
    from eir.handle import HandleResolver

    return HandleResolver(h.url, h.prefix, timeout=h.timeout, ttl=h.ttl, clock=clock)


def build_checker(
    config: Config, store: IdentityStore, events: EventSink, observations: IdentityStore | None = None
) -> PolicyChecker:
    """The checker for ``eir serve`` (and ``eir check``): config, opened store(s), event sink."""
    return PolicyChecker(config, store, events, observations)
