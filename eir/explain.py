"""One check with its explanation, as ``eir check --explain --json`` prints it and the admin API's
``GET /api/v1/check`` answers it: the same code for both, so that they cannot drift apart."""

from __future__ import annotations

from typing import Any

from eir.checker import PolicyChecker
from eir.model import CheckRequest, Verdict
from eir.policy import Step

__all__ = ["explained_check", "verdict_json"]


async def explained_check(
    checker: PolicyChecker, request: CheckRequest, *, explain: bool = True
) -> tuple[Verdict, list[Step] | None]:
    """The decision path (when ``explain``) and then the check itself (counted, sightings noted),
    as ``eir check`` runs them."""
    steps = await checker.explain(request) if explain else None
    verdict = await checker.check(request)
    return verdict, steps


def verdict_json(verdict: Verdict, steps: list[Step] | None) -> dict[str, Any]:
    """The JSON object of ``eir check --json`` (``steps`` empty without ``--explain``)."""
    return {
        "status": verdict.status.value,
        "rule": verdict.rule,
        "list": verdict.list_name,
        "entry": verdict.entry,
        "detail": verdict.detail,
        "reason": verdict.reason,
        "steps": [{"rule": s.rule, "outcome": s.outcome, "detail": s.detail} for s in steps or []],
    }
