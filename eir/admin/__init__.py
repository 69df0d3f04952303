"""The admin API (``/api/v1`` on ``admin.listen``): lists, checks with their explanation, sightings,
peers, faults and the effective configuration over HTTP, with bearer-token roles. README "Admin API";
the OpenAPI 3.1 document is ``eir/admin/openapi.json`` (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from eir.admin.routes import API_PREFIX, AdminApi
from eir.admin.server import AdminConfigError, AdminServer, check_exposure, start

__all__ = ["API_PREFIX", "AdminApi", "AdminConfigError", "AdminServer", "check_exposure", "start"]
