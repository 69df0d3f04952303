"""Answers of the admin API: JSON bodies and RFC 9457 ProblemDetails for every error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JSON", "PROBLEM", "ApiError", "Response", "json_response", "problem"]

JSON = b"application/json"
PROBLEM = b"application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def fields(self) -> list[tuple[bytes, bytes]]:
        if not self.body and self.status == 204:
            return list(self.headers)
        return [(b"content-type", self.content_type), *self.headers]


class ApiError(Exception):
    """A refused request: becomes a ProblemDetails answer (``extra`` adds extension members)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        cause: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.cause = cause
        self.extra = extra or {}
        self.headers = headers or []

    def response(self, instance: str = "") -> Response:
        return problem(
            self.status,
            self.detail,
            cause=self.cause,
            extra=self.extra,
            instance=instance,
            headers=self.headers,
        )


def json_response(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value, separators=(",", ":")).encode())


def problem(
    status: int,
    detail: str,
    *,
    cause: str | None = None,
    extra: dict[str, Any] | None = None,
    instance: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if cause:
        body["cause"] = cause
    if extra:
        body.update(extra)
    return Response(status, json.dumps(body, separators=(",", ":")).encode(), PROBLEM, headers or [])
