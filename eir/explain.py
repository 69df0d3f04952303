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
    """The check (counted, sightings noted) and, when ``explain``, its decision path from the same
    evaluation (the policy ran twice per explained check before: once to explain, once to count),
    as ``eir check`` and the admin API run them."""
    steps: list[Step] | None = [] if explain else None
    verdict = await checker.check(request, steps)
    if steps is not None:
        steps.append(Step(rule="verdict", outcome=verdict.status.value, detail=verdict.reason))
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
