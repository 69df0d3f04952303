"""``eir scenario run FILE.yaml…``: interoperability scenarios against an EIR (issue 7, part 3).

A scenario is a YAML file of steps (the format is ``simulations/scenario.schema.json``; unknown keys
are refused with the line they are on)::

    name: stolen handset
    steps:
      - name: black on S13
        s13: {imei: "35394206000002"}
        expect: black
      - map: {imei: "35394206000002", version: 3, role: msc}
        expect: black
        answered_version: 3
      - list: {set: {imei: "35000000000001", status: black, reason: lab}}
      - s13: {imei: "35000000000001"}
        expect: black
        until: 3                 # the list change reaches the EIR within 3 s
      - fault: {add: {kind: result_code, result_code: 3004, interfaces: [s13]}, as: busy}
      - reconnect: s13           # the simulated MME goes away and comes back (a peer restart)
      - wait: 0.5

Checks go through the project's own simulated MME, MSC/SGSN and AMF (talking to the EIR over the
wire only). List changes go through the admin API (``PUT``/``DELETE /api/v1/lists/entries/{imei}``)
when ``--admin`` is given, else through ``eir lists import --delta`` on the EIR's store (the
configuration's, or ``--store URL``). Fault steps need the admin API (``/api/v1/faults``); the rules
a scenario added are removed when it ends.

Each step is reported (``✓``/``✗`` with its line); a failed expectation names the step, its line,
what was expected and what came back. ``--junit FILE`` writes one testsuite per scenario and one
testcase per step. Exit code 0 when every step passed, 1 when one failed, 2 for a usage error or an
invalid scenario file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = [
    "SCHEMA",
    "Scenario",
    "ScenarioError",
    "ScenarioReport",
    "StepResult",
    "Targets",
    "load_scenario",
    "register",
    "run_scenarios",
]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

ACTIONS = ("s13", "map", "n5g", "wait", "list", "fault", "reconnect")
CHECKS = ("s13", "map", "n5g")
DEFAULT_TIMEOUT = 5.0


def _schema() -> dict[str, Any]:
    text = resources.files("simulations").joinpath("scenario.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


SCHEMA = _schema()
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class ScenarioError(Exception):
    """An unusable scenario file (the message names the file and line), or a usage error."""


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    """1-based."""
    line: int
    """1-based line of the step in its file."""
    action: str
    spec: Mapping[str, Any]

    @property
    def name(self) -> str:
        n = self.spec.get("name")
        if n:
            return str(n)
        body = self.spec[self.action]
        if self.action in CHECKS:
            what = body.get("imei") or body.get("imeisv") or body.get("pei")
            return f"{self.action} {what}"
        if self.action == "wait":
            return f"wait {body} s"
        return f"{self.action} {json.dumps(body, sort_keys=True)}"

    @property
    def expected(self) -> list[str]:
        e = self.spec.get("expect")
        if e is None:
            return []
        return [e] if isinstance(e, str) else list(e)


@dataclass(frozen=True, slots=True)
class Scenario:
    path: str
    name: str
    timeout: float
    steps: tuple[Step, ...]
    requires: Mapping[str, Any] = field(default_factory=dict)

    def interfaces(self) -> set[str]:
        return {s.action for s in self.steps if s.action in CHECKS} | {
            s.spec["reconnect"]
            for s in self.steps
            if s.action == "reconnect" and s.spec["reconnect"] != "all"
        }


def _lines(
    node: yaml.Node, loader: yaml.SafeLoader, lines: dict[tuple[Any, ...], int], path: tuple[Any, ...]
) -> None:
    """Record the 1-based line of every path of a composed YAML document (keys: ``(*path, "<key>")``);
    ScenarioError for a key given twice (YAML would silently keep the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in node.value:
            key = loader.construct_object(k, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            if key in seen:
                raise ScenarioError(f"line {k.start_mark.line + 1}: {key!r} given twice")
            seen.add(key)
            lines[(*path, key, "<key>")] = k.start_mark.line + 1
            _lines(v, loader, lines, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, loader, lines, (*path, i))


def _line_of(lines: Mapping[tuple[Any, ...], int], path: Sequence[Any]) -> int:
    p = tuple(path)
    while p not in lines and p:
        p = p[:-1]
    return lines.get(p, 1)


def _describe(err: jsonschema.ValidationError) -> str:
    """A one-line reason for a schema error, in the terms of the file."""
    where = ".".join(str(x) for x in err.absolute_path) or "the file"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))} (allowed: {', '.join(allowed)})"
    if err.validator == "oneOf" and isinstance(err.schema, dict):
        keys = [next(iter(s["required"])) for s in err.schema.get("oneOf", []) if "required" in s]
        if keys and isinstance(err.instance, dict):
            given = [k for k in keys if k in err.instance]
            return f"{where}: give exactly one of {', '.join(keys)}" + (
                f" (found {', '.join(given)})" if given else ""
            )
        if err.context:
            return _describe(min(err.context, key=lambda e: len(list(e.absolute_path))))
    if (
        err.validator == "type"
        and err.schema.get("type") == "string"
        and isinstance(err.instance, int | float)
    ):
        return f'{where}: {err.instance!r} is a number; quote digits ("...") so YAML keeps them as text'
    if err.validator == "pattern" and "white|grey|black" in str(err.schema.get("pattern", "")):
        return f"{where}: {err.instance!r} is not an expectation ({err.schema.get('description', '')})"
    return f"{where}: {err.message}"


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError names the file and line of the first problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file") from None
    loader = yaml.SafeLoader(text)
    lines: dict[tuple[Any, ...], int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError(f"{path}: empty scenario (it needs steps:)")
        try:
            _lines(node, loader, lines, ())
        except ScenarioError as e:
            raise ScenarioError(f"{path}:{str(e).removeprefix('line ')}") from None
        data = loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}{at}: not YAML: {getattr(e, 'problem', None) or e}") from None
    finally:
        loader.dispose()
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: (_line_of(lines, e.absolute_path), e.path))
    if errors:
        err = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        # report the first problem in file order, with the most specific reason for it
        first = errors[0]
        if _line_of(lines, first.absolute_path) < _line_of(lines, err.absolute_path):
            err = first
        path_ = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            if extra:
                path_ = [*path_, extra[0], "<key>"]
        raise ScenarioError(f"{path}:{_line_of(lines, path_)}: {_describe(err)}")
    steps = []
    for i, s in enumerate(data["steps"]):
        line = lines[("steps", i)]
        actions = [a for a in ACTIONS if a in s]
        if len(actions) != 1:
            found = f" (found {', '.join(actions)})" if actions else ""
            raise ScenarioError(
                f"{path}:{line}: step {i + 1}: give exactly one of {', '.join(ACTIONS)}{found}"
            )
        action = actions[0]
        check_only = [k for k in ("expect", "answered_version", "count", "window", "until") if k in s]
        if action not in CHECKS and check_only:
            raise ScenarioError(
                f"{path}:{lines[('steps', i, check_only[0], '<key>')]}: step {i + 1}: {check_only[0]} "
                f"belongs to a check step (s13, map, n5g), not to {action}"
            )
        if action in CHECKS and "expect" not in s:
            raise ScenarioError(f"{path}:{line}: step {i + 1}: a {action} check needs expect:")
        if "answered_version" in s and action != "map":
            raise ScenarioError(f"{path}:{line}: step {i + 1}: answered_version is for map steps")
        if "until" in s and s.get("count", 1) > 1:
            raise ScenarioError(f"{path}:{line}: step {i + 1}: until and count do not go together")
        steps.append(Step(index=i + 1, line=line, action=action, spec=s))
    return Scenario(
        path=str(path),
        name=str(data.get("name") or p.stem),
        timeout=float(data.get("timeout", DEFAULT_TIMEOUT)),
        steps=tuple(steps),
        requires=data.get("requires", {}),
    )


# --- running -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Targets:
    """Where each interface is: ``HOST:PORT`` for s13 and map, a URL for n5g and the admin API."""

    s13: str = "127.0.0.1:3868"
    map: str = "127.0.0.1:2905"
    n5g: str = "http://127.0.0.1:8000"
    admin: str | None = None
    admin_token: str | None = None


@dataclass(slots=True)
class StepResult:
    step: Step
    ok: bool
    actual: str = ""
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        s = self.step
        mark = "✓" if self.ok else "✗"
        what = f"step {s.index} (line {s.line}) {s.name}"
        if s.action not in CHECKS:
            said = "; ".join(x for x in (self.actual, self.detail) if x)
            return f"{mark} {what}" + (f": {said}" if said else "")
        if self.ok:
            return f"{mark} {what}: {self.actual}" + (f" ({self.detail})" if self.detail else "")
        return f"{mark} {what}: expected {' or '.join(s.expected)}, got {self.actual}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(slots=True)
class ScenarioReport:
    scenario: Scenario
    results: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    @property
    def passed(self) -> bool:
        return self.failed == 0 and len(self.results) == len(self.scenario.steps)


class _Peers:
    """The simulated MME, MSC and AMF of one scenario, connected on first use."""

    def __init__(self, targets: Targets, timeout: float) -> None:
        self.targets = targets
        self.timeout = timeout
        self.mme: Any = None
        self.msc: dict[str, Any] = {}
        self.amf: Any = None

    async def get(self, interface: str, role: str = "msc") -> Any:
        from eir.config import parse_hostport

        if interface == "s13":
            if self.mme is None or self.mme.closed:
                from simulations.mme import SimulatedMme

                host, port = parse_hostport(self.targets.s13)
                self.mme = await SimulatedMme.connect(host, port, timeout=self.timeout)
            return self.mme
        if interface == "map":
            msc = self.msc.get(role)
            if msc is None or msc.closed:
                from simulations.msc import SimulatedMsc

                host, port = parse_hostport(self.targets.map)
                # one ASP per role, each its own point code
                msc = await SimulatedMsc.connect(
                    host, port, role=role, opc=1 if role == "msc" else 3, timeout=self.timeout
                )
                self.msc[role] = msc
            return msc
        if self.amf is None or self.amf._p.closed.is_set():
            from simulations.amf import SimulatedAmf

            self.amf = await SimulatedAmf.connect(self.targets.n5g, timeout=self.timeout)
        return self.amf

    async def close(self, interface: str = "all") -> None:
        if interface in ("s13", "all") and self.mme is not None:
            await self.mme.close()
            self.mme = None
        if interface in ("map", "all"):
            for m in self.msc.values():
                await m.close()
            self.msc.clear()
        if interface in ("n5g", "all") and self.amf is not None:
            await self.amf.close()
            self.amf = None


def _normalise(interface: str, verdict: str) -> set[str]:
    """The names an answer goes by: ``unknown`` is the interface's own unknown-equipment answer; an
    error matches ``error``, ``error CODE`` and ``error NAME``."""
    if interface == "map":
        from protocols.sigtran import MapError

        if verdict.startswith("error:"):
            name = verdict.removeprefix("error:")
            names = {"error", f"error {name}"}
            for e in MapError:
                if e.name.lower() == name:
                    names.add(f"error {int(e)}")
            if name == "unknown_equipment":
                names.add("unknown")
            return names
        return {verdict}
    if verdict.startswith("error "):
        parts = verdict.split()
        names = {"error", verdict}
        if len(parts) > 2:  # n5g: "error 400 CAUSE"
            names |= {f"error {parts[1]}", f"error {parts[2]}"}
        return names
    return {verdict}


class _Admin:
    """The admin API client (``/api/v1``, bearer token); synchronous urllib run in a thread."""

    def __init__(self, base: str, token: str | None, timeout: float) -> None:
        base = base if "://" in base else f"http://{base}"
        self.base = base.rstrip("/") + ("" if base.rstrip("/").endswith("/api/v1") else "/api/v1")
        self.token = token
        self.timeout = timeout

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self._call, method, path, body)

    def _call(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                detail: Any = json.loads(raw)
            except ValueError:
                detail = raw.decode("utf-8", "replace")
            return e.code, detail
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ConnectionError(f"admin API {self.base}: {reason}") from None


@dataclass(slots=True)
class _LocalLists:
    """List changes through ``eir lists import --delta`` on the EIR's store."""

    config: str | None
    store: str | None

    async def change(self, row: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as f:
            f.write("imei,status,imsi,reason,op\n" + row + "\n")
            name = f.name
        try:
            cmd = [sys.executable, "-m", "eir.cli", "lists", "import", name, "--delta", "-q"]
            if self.config:
                cmd += ["--config", self.config]
            env = dict(os.environ)
            if self.store:
                env["EIR_STORE_URL"] = self.store
            r = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, env=env, timeout=120
            )
        finally:
            os.unlink(name)
        out = (r.stdout + r.stderr).strip().splitlines()
        if r.returncode != 0:
            raise RuntimeError(f"eir lists import: {out[-1] if out else f'exit {r.returncode}'}")
        return out[-1] if out else "imported"


class Runner:
    def __init__(
        self, targets: Targets, *, config: str | None = None, store: str | None = None, verbose: bool = True
    ) -> None:
        self.targets = targets
        self.local = _LocalLists(config, store)
        self.verbose = verbose

    async def run(self, sc: Scenario, out: Any = None) -> ScenarioReport:
        report = ScenarioReport(sc)
        peers = _Peers(self.targets, sc.timeout)
        admin = (
            _Admin(self.targets.admin, self.targets.admin_token, sc.timeout) if self.targets.admin else None
        )
        faults: dict[str, str] = {}  # name → id of the rules this scenario added
        t0 = time.perf_counter()
        try:
            for step in sc.steps:
                started = time.perf_counter()
                try:
                    res = await self._step(step, sc, peers, admin, faults)
                except (ConnectionError, OSError, TimeoutError, RuntimeError) as e:
                    res = StepResult(step, False, actual="error", detail=str(e) or type(e).__name__)
                res.seconds = time.perf_counter() - started
                report.results.append(res)
                if out is not None:
                    print(res.line(), file=out, flush=True)
        finally:
            if admin is not None:
                for rule_id in faults.values():
                    with contextlib.suppress(ConnectionError):
                        await admin.call("DELETE", f"/faults/{rule_id}")
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await peers.close()
            report.seconds = time.perf_counter() - t0
        return report

    async def _step(
        self, step: Step, sc: Scenario, peers: _Peers, admin: _Admin | None, faults: dict[str, str]
    ) -> StepResult:
        spec = step.spec
        if step.action == "wait":
            await asyncio.sleep(float(spec["wait"]))
            return StepResult(step, True)
        if step.action == "reconnect":
            await peers.close(spec["reconnect"])
            for iface in CHECKS if spec["reconnect"] == "all" else (spec["reconnect"],):
                if iface in sc.interfaces() or spec["reconnect"] != "all":
                    await peers.get(iface)
            return StepResult(step, True, detail="reconnected")
        if step.action == "list":
            return await self._list(step, admin)
        if step.action == "fault":
            return await self._fault(step, admin, faults)
        return await self._check(step, sc, peers)

    async def _list(self, step: Step, admin: _Admin | None) -> StepResult:
        body = step.spec["list"]
        s = body.get("set")
        rm = body.get("remove")
        if isinstance(rm, str):
            rm = {"imei": rm}
        if admin is not None:
            if s is not None and (s["status"] in ("pairing", "lock")):
                raise RuntimeError("pairings and locks are not in the admin API: run without --admin")
            if s is not None:
                payload = {"status": s["status"], **({"reason": s["reason"]} if "reason" in s else {})}
                status, answer = await admin.call("PUT", f"/lists/entries/{s['imei']}", payload)
            else:
                status, answer = await admin.call("DELETE", f"/lists/entries/{rm['imei']}")
            if status != 200:
                return StepResult(step, False, actual=f"HTTP {status}", detail=json.dumps(answer))
            return StepResult(step, True, detail=f"list version {(answer or {}).get('version')}")
        if s is not None:
            reason = str(s.get("reason", "scenario")).replace(",", " ")
            row = f"{s['imei']},{s['status']},{s.get('imsi', '')},{reason},add"
        else:
            imsi = rm.get("imsi", "")
            kind = rm.get("status", "pairing") if imsi else ""
            row = f"{rm['imei']},{kind},{imsi},,remove"
        return StepResult(step, True, detail=await self.local.change(row))

    async def _fault(self, step: Step, admin: _Admin | None, faults: dict[str, str]) -> StepResult:
        if admin is None:
            raise RuntimeError(
                "fault steps need the admin API: give --admin URL (or --target admin=HOST:PORT)"
            )
        body = step.spec["fault"]
        if "add" in body:
            status, answer = await admin.call("POST", "/faults", body["add"])
            if status != 201 or not isinstance(answer, dict):
                return StepResult(step, False, actual=f"HTTP {status}", detail=json.dumps(answer))
            rule_id = str(answer.get("id", ""))
            faults[str(body.get("as", rule_id))] = rule_id
            return StepResult(step, True, detail=f"fault rule {rule_id}")
        if "remove" in body:
            name = str(body["remove"])
            rule_id = faults.pop(name, name)
            status, answer = await admin.call("DELETE", f"/faults/{rule_id}")
            ok = status == 204
            return StepResult(step, ok, actual="" if ok else f"HTTP {status}", detail=f"removed {rule_id}")
        status, answer = await admin.call("DELETE", "/faults")
        faults.clear()
        ok = status == 200
        n = answer.get("cleared") if isinstance(answer, dict) else None
        return StepResult(
            step,
            ok,
            actual="" if ok else f"HTTP {status}",
            detail=f"cleared {n}" if ok else json.dumps(answer),
        )

    async def _check(self, step: Step, sc: Scenario, peers: _Peers) -> StepResult:
        spec = step.spec
        timeout = float(spec.get("timeout", sc.timeout))
        count = int(spec.get("count", 1))
        window = int(spec.get("window", 1))
        expected = set(step.expected)
        want_version = spec.get("answered_version")

        async def one() -> tuple[str, set[str], int | None]:
            verdict, version = await self._ask(step, peers, timeout)
            return verdict, _normalise(step.action, verdict), version

        def matches(names: set[str], version: int | None) -> bool:
            return bool(names & expected) and (want_version is None or version == want_version)

        if "until" in spec:
            deadline = time.monotonic() + float(spec["until"])
            tries = 0
            while True:
                tries += 1
                verdict, names, version = await one()
                if matches(names, version) or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.1)
            return self._result(
                step, verdict, version, matches(names, version), f"after {tries} tries" if tries > 1 else ""
            )
        if count == 1:
            verdict, names, version = await one()
            return self._result(step, verdict, version, matches(names, version), "")
        sem = asyncio.Semaphore(window)

        async def bounded() -> tuple[str, set[str], int | None]:
            async with sem:
                return await one()

        got = await asyncio.gather(*(bounded() for _ in range(count)))
        bad = [(v, ver) for v, names, ver in got if not matches(names, ver)]
        tally: dict[str, int] = {}
        for v, _n, _ver in got:
            tally[v] = tally.get(v, 0) + 1
        summary = ", ".join(f"{k} x{n}" for k, n in sorted(tally.items()))
        if bad:
            v, ver = bad[0]
            return self._result(step, summary, ver, False, f"{len(bad)} of {count} differed")
        return StepResult(step, True, actual=summary, detail=f"{count} of {count}")

    @staticmethod
    def _result(step: Step, verdict: str, version: int | None, ok: bool, detail: str) -> StepResult:
        actual = verdict
        if step.action == "map" and version is not None:
            actual = f"{verdict} (MAP v{version})"
            if not ok and step.spec.get("answered_version") is not None:
                detail = (detail + "; " if detail else "") + f"expected MAP v{step.spec['answered_version']}"
        return StepResult(step, ok, actual=actual, detail=detail)

    async def _ask(self, step: Step, peers: _Peers, timeout: float) -> tuple[str, int | None]:
        body = step.spec[step.action]
        if step.action == "s13":
            imei, sv = body.get("imei"), body.get("sv")
            if "imeisv" in body:
                imei, sv = body["imeisv"][:14], body["imeisv"][14:]
            mme = await peers.get("s13")
            try:
                r = await mme.check(imei, software_version=sv, imsi=body.get("imsi"), timeout=timeout)
            except TimeoutError:
                return "timeout", None
            except ConnectionError:
                return "closed", None
            return str(r.verdict), None
        if step.action == "map":
            msc = await peers.get("map", body.get("role", "msc"))
            try:
                r = await msc.check(
                    body.get("imei") or body["imeisv"],
                    version=int(body.get("version", 3)),
                    imsi=body.get("imsi"),
                    vendor=body.get("vendor"),
                    timeout=timeout,
                    fallback=bool(body.get("fallback", True)),
                )
            except ConnectionError:
                return "closed", None
            return str(r.verdict), int(r.version)
        from simulations.amf import pei_of

        pei = body.get("pei") or pei_of(body.get("imei") or body["imeisv"])
        amf = await peers.get("n5g")
        try:
            a = await amf.check(pei, supi=body.get("supi"), gpsi=body.get("gpsi"), timeout=timeout)
        except ConnectionError:
            return "closed", None
        return str(a.verdict), None


# --- reports -----------------------------------------------------------------------------------------


def junit(reports: Sequence[ScenarioReport]) -> bytes:
    """One testsuite per scenario, one testcase per step; a failure names the line, expected and actual."""
    root = ET.Element(
        "testsuites",
        tests=str(sum(len(r.results) for r in reports)),
        failures=str(sum(r.failed for r in reports)),
    )
    for rep in reports:
        sc = rep.scenario
        suite = ET.SubElement(
            root,
            "testsuite",
            name=sc.name,
            file=sc.path,
            tests=str(len(rep.results)),
            failures=str(rep.failed),
            errors="0",
            skipped="0",
            time=f"{rep.seconds:.3f}",
        )
        for res in rep.results:
            s = res.step
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"scenario.{sc.name}",
                name=f"step {s.index}: {s.name}",
                file=sc.path,
                line=str(s.line),
                time=f"{res.seconds:.6f}",
            )
            if not res.ok:
                exp = " or ".join(s.expected) or "success"
                fail = ET.SubElement(
                    case,
                    "failure",
                    message=f"{sc.path}:{s.line}: step {s.index} ({s.name}): expected {exp}, "
                    f"got {res.actual}",
                    type="expectation",
                )
                fail.text = (
                    f"file: {sc.path}\nline: {s.line}\nstep: {s.index} {s.name}\nexpected: {exp}\n"
                    f"actual: {res.actual}\n" + (f"detail: {res.detail}\n" if res.detail else "")
                )
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


async def run_scenarios(
    scenarios: Sequence[Scenario],
    targets: Targets,
    *,
    config: str | None = None,
    store: str | None = None,
    out: Any = None,
) -> list[ScenarioReport]:
    runner = Runner(targets, config=config, store=store)
    reports = []
    for sc in scenarios:
        if out is not None:
            req = f"  (assumes {json.dumps(dict(sc.requires), sort_keys=True)})" if sc.requires else ""
            print(f"scenario {sc.name} ({sc.path}){req}", file=out, flush=True)
        rep = await runner.run(sc, out)
        reports.append(rep)
        if out is not None:
            print(
                f"  {len(rep.results) - rep.failed} passed, {rep.failed} failed in {rep.seconds:.2f} s",
                file=out,
                flush=True,
            )
    return reports


# --- CLI ---------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    from eir.cli import add_config_options, help_command

    sc = sub.add_parser("scenario", help="run interoperability scenarios (YAML) against an EIR")
    sc_sub = sc.add_subparsers(dest="scenario_command", metavar="COMMAND")
    sc.set_defaults(func=help_command(sc))
    p = sc_sub.add_parser(
        "run", help="run scenario files; exit 0 all passed, 1 a step failed, 2 usage or invalid file"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML files (or directories of them)")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="[IFACE=]HOST[:PORT]",
        help="where the EIR is: s13=HOST:PORT, map=HOST:PORT, n5g=HOST:PORT (or URL), admin=HOST:PORT "
        "(or URL); a bare HOST sets the host of every interface (default: the config's listen addresses)",
    )
    p.add_argument(
        "--admin",
        default=None,
        metavar="URL",
        help="the admin API (http://HOST:9465) for list changes and fault steps; token: $EIR_ADMIN_TOKEN",
    )
    p.add_argument(
        "--store", default=None, metavar="URL", help="without --admin: the store list changes go to"
    )
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML (a testcase per step)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of lines")
    p.add_argument("--check", action="store_true", help="only validate the files (no EIR needed)")
    add_config_options(p, "eir config file (default targets; the store for list changes)")
    p.set_defaults(func=_command)


def _files(values: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for v in values:
        p = Path(v)
        if p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                raise ScenarioError(f"{v}: no .yaml scenario in this directory")
            out.extend(found)
        else:
            out.append(p)
    return out


def _targets(args: argparse.Namespace) -> Targets:
    from eir.config import ConfigError, find_config, load_config, parse_hostport

    t = Targets()
    try:
        cfg = load_config(find_config(args.config))
    except ConfigError as e:
        raise ScenarioError(f"configuration error: {e}") from None

    def first(listen: Sequence[str], fallback: str) -> str:
        if not listen:
            return fallback
        host, port = parse_hostport(listen[0])
        if not port:
            return fallback
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    t.s13 = first(cfg.diameter.listen, t.s13)
    t.map = first(cfg.m3ua.listen, t.map)
    n5g = getattr(cfg, "n5g", None)
    if n5g is not None:
        t.n5g = "http://" + first(n5g.listen, "127.0.0.1:8000")
    for value in args.target:
        iface, eq, addr = value.partition("=")
        if not eq:
            iface, addr = "", value
        iface = iface.strip().lower()
        addr = addr.strip()
        if iface and iface not in ("s13", "map", "n5g", "admin"):
            raise ScenarioError(f"--target {value}: the interface is s13, map, n5g or admin")
        if not iface:
            if ":" in addr and not addr.startswith("["):
                raise ScenarioError(f"--target {value}: give the interface (s13=, map=, n5g=) with a port")
            for name in ("s13", "map"):
                _h, port = parse_hostport(getattr(t, name))
                setattr(t, name, f"{addr}:{port}")
            t.n5g = "http://" + addr + ":" + t.n5g.rsplit(":", 1)[1]
            continue
        if iface in ("n5g", "admin"):
            setattr(t, iface, addr if "://" in addr else f"http://{addr}")
            continue
        try:
            _h, port = parse_hostport(addr, "--target")
        except ConfigError:
            raise ScenarioError(f"--target {value}: expected {iface}=HOST:PORT") from None
        if not port:
            raise ScenarioError(f"--target {value}: a port is needed")
        setattr(t, iface, addr)
    if args.admin:
        t.admin = args.admin if "://" in args.admin else f"http://{args.admin}"
    t.admin_token = os.environ.get("EIR_ADMIN_TOKEN")
    return t


def _command(args: argparse.Namespace) -> int:
    try:
        scenarios = [load_scenario(p) for p in _files(args.files)]
    except ScenarioError as e:
        print(f"eir scenario run: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        for sc in scenarios:
            print(f"{sc.path}: ok ({len(sc.steps)} steps)")
        return EXIT_PASSED
    try:
        targets = _targets(args)
    except ScenarioError as e:
        print(f"eir scenario run: {e}", file=sys.stderr)
        return EXIT_USAGE
    out = None if args.json else sys.stdout
    reports = asyncio.run(run_scenarios(scenarios, targets, config=args.config, store=args.store, out=out))
    if args.json:
        print(json.dumps([_to_json(r) for r in reports], indent=1))
    if args.junit:
        try:
            Path(args.junit).write_bytes(junit(reports))
        except OSError as e:
            print(f"eir scenario run: --junit {args.junit}: {e.strerror}", file=sys.stderr)
            return EXIT_USAGE
    failed = sum(r.failed for r in reports)
    if not args.json:
        total = sum(len(r.results) for r in reports)
        print(f"{len(reports)} scenario(s), {total - failed} step(s) passed, {failed} failed")
    return EXIT_FAILED if failed or not all(r.passed for r in reports) else EXIT_PASSED


def _to_json(r: ScenarioReport) -> dict[str, Any]:
    return {
        "scenario": r.scenario.name,
        "file": r.scenario.path,
        "passed": r.passed,
        "seconds": round(r.seconds, 3),
        "steps": [
            {
                "step": x.step.index,
                "line": x.step.line,
                "name": x.step.name,
                "action": x.step.action,
                "expected": x.step.expected,
                "actual": x.actual,
                "ok": x.ok,
                "detail": x.detail,
                "seconds": round(x.seconds, 4),
            }
            for x in r.results
        ],
    }
