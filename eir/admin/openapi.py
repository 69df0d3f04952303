"""The admin API's OpenAPI 3.1 document, built here and kept in the repository as
``eir/admin/openapi.json`` (the server serves that file at ``/api/v1/openapi.json``; a test checks
it is what this module builds). Rewrite it with ``python -m eir.admin.openapi``."""

from __future__ import annotations

import json
import sys
from typing import Any

from eir.faults import FAULT_KINDS, INTERFACES
from eir.formats import FORMATS

__all__ = ["build", "render"]

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_NULLABLE_STR = {"type": ["string", "null"]}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM_REF}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _q(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _p(name: str, description: str, pattern: str = r"^[0-9-]{1,40}$") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
        "description": description,
    }


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    write: bool = False,
    public: bool = False,
    tag: str = "lists",
) -> dict[str, Any]:
    r = dict(responses)
    r.setdefault("400", _problem("Bad input (bad IMEI, unknown field or query parameter, bad JSON)"))
    if not public:
        r["401"] = _problem("No or unknown bearer token")
        if write:
            r["403"] = _problem("The token is read-only")
    r.setdefault("413", _problem("The body is too large"))
    r.setdefault("503", _problem("The store is unavailable (nothing was changed)"))
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": r}
    if public:
        op["security"] = []
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


_LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size")
_OFFSET = _q("offset", {"type": "integer", "minimum": 0, "maximum": 1 << 40, "default": 0}, "rows to skip")
_IMEI = _p(
    "imei",
    "IMEI (14 or 15 digits), IMEISV (16), TAC (8) or a range FIRST-LAST of two IMEIs",
    r"^([0-9]{8}|[0-9]{14,16}|[0-9]{14,15}-[0-9]{14,15})$",
)
_IMSI = _p("imsi", "IMSI (5 to 15 digits)", r"^[0-9]{5,15}$")
_PIMEI = _p("imei", "IMEI (14 or 15 digits)", r"^[0-9]{14,15}$")
_OK_VERSION = _json(_ref("VersionId"), "The change is the active list version")
_NOT_LISTED = _problem("Not listed")


def _pair_paths(kind: str, label: str) -> dict[str, Any]:
    return {
        f"/lists/{kind}": {
            "get": _op(
                f"The {label} rows (of the active version), filtered and paged",
                {"200": _json(_ref("PairingPage"))},
                params=[
                    _q("imsi", {"type": "string", "pattern": r"^[0-9]{5,15}$"}, "only this IMSI"),
                    _q("imei", {"type": "string", "pattern": r"^[0-9]{14,15}$"}, "only this IMEI"),
                    _LIMIT,
                    _OFFSET,
                ],
            )
        },
        f"/lists/{kind}/{{imsi}}/{{imei}}": {
            "put": _op(
                f"Add (or change the reason of) a {label} row: a new list version",
                {"200": _OK_VERSION},
                params=[_IMSI, _PIMEI],
                body={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"reason": {"type": ["string", "null"], "maxLength": 500}},
                            }
                        }
                    },
                },
                write=True,
            ),
            "delete": _op(
                f"Remove a {label} row: a new list version",
                {"200": _OK_VERSION, "404": _NOT_LISTED},
                params=[_IMSI, _PIMEI],
                write=True,
            ),
        },
    }


def build() -> dict[str, Any]:
    entry = {
        "type": "object",
        "required": ["kind", "key", "last", "status", "imsi", "reason"],
        "properties": {
            "kind": {"enum": ["imeisv", "imei", "range", "tac"]},
            "key": {"type": "string"},
            "last": _NULLABLE_STR,
            "status": {"enum": ["white", "grey", "black"]},
            "imsi": _NULLABLE_STR,
            "reason": _NULLABLE_STR,
        },
    }
    fault = {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9._:-]{0,64}$"},
            "kind": {"enum": list(FAULT_KINDS)},
            "interfaces": {"type": "array", "items": {"enum": list(INTERFACES)}},
            "imei": {
                "type": ["string", "null"],
                "pattern": r"^([0-9*?\[\]]*|[0-9]{1,16}-[0-9]{1,16})$",
                "description": "glob (35693803*) or LOW-HIGH",
            },
            "peer": {
                "type": ["string", "null"],
                "description": "glob over Origin-Host, pc:OPC, gt:GT, address",
            },
            "probability": {"type": "number", "minimum": 0, "maximum": 1},
            "count": {"type": ["integer", "null"], "minimum": 1},
            "delay_ms": {"type": "number", "minimum": 0, "maximum": 600000},
            "result_code": {"type": "integer", "minimum": 1000, "maximum": 9999},
            "map_error": {"type": "integer", "minimum": 0, "maximum": 255},
            "http_status": {"type": "integer", "minimum": 400, "maximum": 599},
        },
    }
    fault_out = {
        "type": "object",
        "required": ["id", "kind", "injected"],
        "properties": {**fault["properties"], "injected": {"type": "integer", "minimum": 0}},  # type: ignore[dict-item]
    }
    version = {
        "type": "object",
        "required": ["id", "created", "source", "entries", "pairings", "active"],
        "properties": {
            "id": {"type": "integer"},
            "created": {"type": "number"},
            "source": {"type": "string"},
            "entries": {"type": "integer"},
            "pairings": {"type": "integer"},
            "active": {"type": "boolean"},
        },
    }
    report = {
        "type": "object",
        "required": ["version", "rows", "errors", "valid", "dry_run", "summary"],
        "properties": {
            "version": {"type": ["integer", "null"]},
            "dry_run": {"type": "boolean"},
            "kind": {"enum": ["equipment", "pairing", "lock"]},
            "delta": {"type": "boolean"},
            "valid": {"type": "boolean"},
            "rows": {"type": "integer"},
            "entries": {"type": "integer"},
            "pairings": {"type": "integer"},
            "removals": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "bad_rows": {"type": "integer"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "reason", "text"],
                    "properties": {
                        "line": {"type": "integer"},
                        "reason": {"type": "string"},
                        "text": {"type": "string"},
                    },
                },
            },
            "absent_removals": {"type": "array", "items": {"type": "string"}},
            "ignored_columns": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"},
            "format": {"type": "string", "description": "the file's format (given or recognised)"},
            "normalised": {
                "type": "object",
                "description": "DIRBS-style IMEI normalisations applied (hex digits, * and #, 14-digit keys)",
            },
            "table": {"type": "string", "description": "a reference table filled (tac, registration)"},
            "imported": {"type": "boolean"},
        },
    }
    explanation = {
        "type": "object",
        "required": ["status", "rule", "list", "entry", "detail", "reason", "steps"],
        "properties": {
            "status": {"enum": ["white", "grey", "black", "unknown", "failure"]},
            "rule": {"type": "string"},
            "list": _NULLABLE_STR,
            "entry": _NULLABLE_STR,
            "detail": {"type": "string"},
            "reason": {"type": "string"},
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rule", "outcome", "detail"],
                    "properties": {
                        "rule": {"type": "string"},
                        "outcome": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    }
    seen_item = {
        "type": "object",
        "required": ["last_seen", "source", "in_window"],
        "properties": {
            "imsi": {"type": "string"},
            "origin": {"type": "string"},
            "last_seen": {"type": "number"},
            "source": {"enum": ["memory", "store", "both"]},
            "in_window": {"type": "boolean"},
        },
    }
    paths: dict[str, Any] = {
        "/health": {
            "get": _op(
                "Liveness",
                {
                    "200": _json(
                        {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
                    )
                },
                public=True,
                tag="health",
            )
        },
        "/ready": {
            "get": _op(
                "Readiness: store reachable, listeners up, list version",
                {
                    "200": _json(_ref("Readiness")),
                    "503": {
                        "description": "Not ready",
                        "content": {"application/problem+json": {"schema": _ref("Readiness")}},
                    },
                },
                public=True,
                tag="health",
            )
        },
        "/openapi.json": {
            "get": _op("This document", {"200": _json({"type": "object"})}, public=True, tag="health")
        },
        "/check": {
            "get": _op(
                "One check with its explanation, exactly as `eir check --explain --json`",
                {"200": _json(explanation)},
                params=[
                    _q(
                        "imei",
                        {"type": "string", "pattern": r"^[0-9][0-9 -]{12,30}[0-9]$"},
                        "14, 15 or 16 digits (dashes and spaces dropped)",
                        True,
                    ),
                    _q(
                        "imsi",
                        {"type": "string", "pattern": r"^[0-9]{5,15}$"},
                        "IMSI (pairings, locks, clone detection)",
                    ),
                    _q("sv", {"type": "string", "pattern": r"^[0-9]{2}$"}, "2-digit software version"),
                    _q(
                        "origin", {"type": "string", "maxLength": 255}, "who asks (clone detection by origin)"
                    ),
                ],
                tag="check",
            )
        },
        "/lists/entries": {
            "get": _op(
                "Search the equipment list entries (active version) by prefix, IMEI range, status, kind",
                {"200": _json(_ref("EntryPage"))},
                params=[
                    _q(
                        "prefix",
                        {"type": "string", "pattern": r"^[0-9]{0,16}$"},
                        "key starts with these digits",
                    ),
                    _q(
                        "first",
                        {"type": "string", "pattern": r"^[0-9]{14,15}$"},
                        "entries reaching this IMEI or later",
                    ),
                    _q(
                        "last",
                        {"type": "string", "pattern": r"^[0-9]{14,15}$"},
                        "entries starting at this IMEI or before",
                    ),
                    _q("status", {"enum": ["white", "grey", "gray", "black"]}, "only this status"),
                    _q("kind", {"enum": ["imeisv", "imei", "range", "tac"]}, "only this kind"),
                    _LIMIT,
                    _OFFSET,
                ],
            )
        },
        "/lists/entries/{imei}": {
            "get": _op(
                "One entry (and the range or TAC entry covering an IMEI)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["entry", "covered_by"],
                            "properties": {
                                "entry": {"oneOf": [_ref("Entry"), {"type": "null"}]},
                                "covered_by": {"oneOf": [_ref("Entry"), {"type": "null"}]},
                            },
                        }
                    ),
                    "404": _NOT_LISTED,
                },
                params=[_IMEI],
            ),
            "put": _op(
                "Add or change an entry: a new list version, atomic",
                {"200": _OK_VERSION},
                params=[_IMEI],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status"],
                                "additionalProperties": False,
                                "properties": {
                                    "status": {"enum": ["white", "grey", "gray", "black"]},
                                    "reason": {"type": ["string", "null"], "maxLength": 500},
                                    "imsi": {"type": ["string", "null"], "pattern": r"^[0-9]{5,15}$"},
                                },
                            }
                        }
                    },
                },
                write=True,
            ),
            "delete": _op(
                "Remove an entry: a new list version, atomic",
                {"200": _OK_VERSION, "404": _NOT_LISTED},
                params=[_IMEI],
                write=True,
            ),
        },
        "/lists/import": {
            "post": _op(
                "Import a CSV list file (the CLI's validation report; a new version unless dry_run)",
                {
                    "200": _json(_ref("ImportReport"), "The validation report (and the version made)"),
                    "422": {
                        "description": "Bad rows: nothing imported",
                        "content": {"application/problem+json": {"schema": _ref("ImportReport")}},
                    },
                    "503": _problem(
                        "The store is unavailable, or admin.max_imports_in_flight imports are in "
                        "progress (cause imports_busy, with Retry-After): nothing was changed"
                    ),
                },
                params=[
                    _q(
                        "format",
                        {"enum": ["auto", *FORMATS], "default": "eir"},
                        "eir: imei,status[,imsi][,reason][,op]; the DIRBS, GSMA TAC, PyHSS and Open5GS"
                        " formats of `eir lists import --format`; auto: recognised by the header",
                    ),
                    _q("dry_run", {"type": "boolean", "default": False}, "validate only"),
                    _q(
                        "kind",
                        {"enum": ["equipment", "pairing", "lock"], "default": "equipment"},
                        "what the file lists",
                    ),
                    _q(
                        "delta",
                        {"type": "boolean"},
                        "apply on top of the active version (default: when an op column is there)",
                    ),
                    _q(
                        "skip_bad",
                        {"type": "boolean", "default": False},
                        "import the good rows even if some are bad",
                    ),
                ],
                body={
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string", "minLength": 1}}},
                },
                write=True,
            )
        },
        "/lists/versions": {
            "get": _op(
                "The list versions kept",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["versions"],
                            "properties": {"versions": {"type": "array", "items": _ref("Version")}},
                        }
                    )
                },
            )
        },
        "/lists/rollback": {
            "post": _op(
                "Make an older version active again",
                {"200": _json(_ref("Version")), "404": _problem("No such version")},
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["version"],
                                "additionalProperties": False,
                                "properties": {"version": {"type": "integer", "minimum": 1}},
                            }
                        }
                    },
                },
                write=True,
            )
        },
        "/lists/export": {
            "get": _op(
                "The active version as CSV (re-importable)",
                {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}},
                params=[
                    _q(
                        "kind",
                        {"enum": ["all", "equipment", "pairing", "lock"], "default": "all"},
                        "which lists",
                    )
                ],
            )
        },
        **_pair_paths("pairings", "pairing"),
        **_pair_paths("locks", "lock"),
        "/sightings/{imei}": {
            "get": _op(
                "What an IMEI was seen with (IMSIs, origins) and whether the clone rule would fire",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["imei", "imsis", "origins", "clone_suspected"],
                            "properties": {
                                "imei": {"type": "string"},
                                "window": {"type": "number"},
                                "clone_enabled": {"type": "boolean"},
                                "clone_max_imsis": {"type": "integer"},
                                "imsis": {"type": "array", "items": seen_item},
                                "origins": {"type": "array", "items": seen_item},
                                "distinct_imsis": {"type": "integer"},
                                "distinct_origins": {"type": "integer"},
                                "clone_suspected": {"type": "boolean"},
                                "clone_reason": _NULLABLE_STR,
                                "store_error": _NULLABLE_STR,
                            },
                        }
                    )
                },
                params=[_p("imei", "IMEI (14 or 15 digits) or IMEISV (16)", r"^[0-9]{14,16}$")],
                tag="sightings",
            ),
            "delete": _op(
                "Clear a clone suspicion: the IMEI's sightings go from this process and the store, "
                "and instances sharing the store drop theirs within policy.clone.share_interval",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["imei", "cleared"],
                            "properties": {
                                "imei": {"type": "string"},
                                "cleared": {"type": "integer", "description": "stored sightings deleted"},
                            },
                        }
                    )
                },
                params=[_p("imei", "IMEI (14 or 15 digits) or IMEISV (16)", r"^[0-9]{14,16}$")],
                write=True,
                tag="sightings",
            ),
        },
        "/duplicates": {
            "get": _op(
                "The IMEIs DIRBS duplicate_mk1 flagged (policy.duplicate), by IMEI, paged",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["duplicates", "total", "offset", "limit"],
                            "properties": {
                                "duplicates": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["imei", "flagged"],
                                        "properties": {
                                            "imei": {"type": "string"},
                                            "flagged": {"type": "number", "description": "UNIX time"},
                                        },
                                    },
                                },
                                "total": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "limit": {"type": "integer"},
                            },
                        }
                    )
                },
                params=[_LIMIT, _OFFSET],
                tag="duplicates",
            )
        },
        "/duplicates/{imei}": {
            "get": _op(
                "One duplicate_mk1 flag with the rule's inputs on the day it was flagged (from the "
                "history the store still holds)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["imei", "flagged", "rule_enabled", "verdict", "inputs"],
                            "properties": {
                                "imei": {"type": "string"},
                                "flagged": {"type": "number"},
                                "rule_enabled": {"type": "boolean"},
                                "verdict": {"type": "string"},
                                "inputs": {
                                    "type": "object",
                                    "properties": {
                                        "day": {"type": "integer", "description": "days since the epoch"},
                                        "period_days": {"type": "integer"},
                                        "counts": {
                                            "enum": ["imsis", "msisdns"],
                                            "description": "what distinct_imsis and imsis count "
                                            "(policy.duplicate.use_msisdn)",
                                        },
                                        "distinct_imsis": {"type": "integer"},
                                        "threshold": {"type": "integer"},
                                        "daily_avg_days": {"type": "integer"},
                                        "days_seen": {"type": "integer"},
                                        "min_seen_days": {"type": "integer"},
                                        "daily_average": {"type": "number"},
                                        "daily_avg": {"type": "number"},
                                        "per_day": {
                                            "type": "object",
                                            "additionalProperties": {"type": "integer"},
                                        },
                                        "imsis": {"type": "array", "items": {"type": "string"}},
                                        "meets_rule": {"type": "boolean"},
                                    },
                                },
                            },
                        }
                    ),
                    "404": _problem("Not flagged"),
                },
                params=[_p("imei", "IMEI (14 or 15 digits) or IMEISV (16)", r"^[0-9]{14,16}$")],
                tag="duplicates",
            ),
            "delete": _op(
                "Clear a duplicate_mk1 flag: the flag and the IMEI's history go, so only observations "
                "after the clear can flag it again (other instances drop it at their next classification)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["imei", "cleared", "history_rows"],
                            "properties": {
                                "imei": {"type": "string"},
                                "cleared": {"type": "boolean"},
                                "history_rows": {"type": "integer", "description": "history rows deleted"},
                            },
                        }
                    ),
                    "404": _problem("Not flagged (nothing changed)"),
                },
                params=[_p("imei", "IMEI (14 or 15 digits) or IMEISV (16)", r"^[0-9]{14,16}$")],
                write=True,
                tag="duplicates",
            ),
        },
        "/peers": {
            "get": _op(
                "Diameter peers, M3UA associations and N5g-eir clients, with state and counters, of "
                "every worker (under --workers, the other workers' through the control channel, "
                "waited for at most 1 s)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["s13", "map", "n5g", "incomplete_workers"],
                            "properties": {
                                **{
                                    k: {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["worker"],
                                            "properties": {
                                                "worker": {
                                                    "type": "integer",
                                                    "description": "the worker process holding it",
                                                }
                                            },
                                        },
                                    }
                                    for k in ("s13", "map", "n5g")
                                },
                                "incomplete_workers": {
                                    "type": "array",
                                    "items": {"type": "integer"},
                                    "description": "workers that did not answer in time or whose "
                                    "list was cut to fit the control channel",
                                },
                            },
                        }
                    )
                },
                tag="peers",
            )
        },
        "/faults": {
            "get": _op(
                "The fault-injection rules in force",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["faults"],
                            "properties": {"faults": {"type": "array", "items": _ref("FaultOut")}},
                        }
                    )
                },
                tag="faults",
            ),
            "post": _op(
                "Set a fault rule",
                {"201": _json(_ref("FaultOut"), "The rule, with its id"), "409": _problem("The id is taken")},
                body={"required": True, "content": {"application/json": {"schema": _ref("Fault")}}},
                write=True,
                tag="faults",
            ),
            "delete": _op(
                "Clear every fault rule",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["cleared"],
                            "properties": {"cleared": {"type": "integer"}},
                        }
                    )
                },
                write=True,
                tag="faults",
            ),
        },
        "/faults/{id}": {
            "delete": _op(
                "Clear one fault rule",
                {"204": {"description": "Cleared"}, "404": _problem("No such rule")},
                params=[_p("id", "rule id", r"^[^/]{1,64}$")],
                write=True,
                tag="faults",
            )
        },
        "/config": {
            "get": _op(
                "The effective configuration, secrets redacted (tokens, passwords, keys)",
                {"200": _json({"type": "object"})},
                tag="config",
            )
        },
    }
    for item in paths.values():
        for op in item.values():
            op["responses"].setdefault("404", _problem("No such resource"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eir-emulator admin API",
            "version": "1",
            "description": "Lists, checks with their explanation, sightings, peers, faults and the "
            "effective configuration of a running `eir serve`. Errors are RFC 9457 ProblemDetails.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "cause": {"type": "string"},
                    },
                },
                "Entry": entry,
                "EntryPage": {
                    "type": "object",
                    "required": ["entries", "total", "offset", "limit"],
                    "properties": {
                        "entries": {"type": "array", "items": _ref("Entry")},
                        "total": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "limit": {"type": "integer"},
                    },
                },
                "PairingPage": {
                    "type": "object",
                    "required": ["pairings", "total", "offset", "limit"],
                    "properties": {
                        "pairings": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["kind", "imsi", "imei", "reason"],
                                "properties": {
                                    "kind": {"enum": ["pairing", "lock"]},
                                    "imsi": {"type": "string"},
                                    "imei": {"type": "string"},
                                    "reason": _NULLABLE_STR,
                                },
                            },
                        },
                        "total": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "limit": {"type": "integer"},
                    },
                },
                "Version": version,
                "VersionId": {
                    "type": "object",
                    "required": ["version"],
                    "properties": {"version": {"type": "integer"}},
                },
                "ImportReport": report,
                "Readiness": {
                    "type": "object",
                    "required": ["ready", "store", "listeners", "list_version"],
                    "properties": {
                        "ready": {"type": "boolean"},
                        "store": {"type": "string"},
                        "listeners": {
                            "type": "object",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        },
                        "list_version": {"type": ["integer", "null"]},
                    },
                },
                "Fault": fault,
                "FaultOut": fault_out,
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=False) + "\n"


if __name__ == "__main__":
    from eir.admin.routes import OPENAPI_PATH

    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if OPENAPI_PATH.read_text() == render() else 1)
    OPENAPI_PATH.write_text(render())
