"""Bearer tokens of the admin API (RFC 6750): roles read and write, compared in constant time.

Each presented token is hashed (SHA-256) and compared with the digest of every configured token
with :func:`hmac.compare_digest`, always all of them: neither the time taken nor an early exit says
which token, or how much of one, matched. Tokens are never logged; only their role is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from typing import Literal

from eir.config import AdminConfig, parse_hostport

__all__ = ["Role", "TokenTable", "is_loopback"]

Role = Literal["read", "write"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """The configured tokens. With none, every request is allowed (write) — the server only runs
    so on loopback addresses (:func:`eir.admin.server.start` refuses otherwise)."""

    def __init__(self, tokens: Iterable[tuple[str, Role]]) -> None:
        self._tokens = [(_digest(t), r) for t, r in tokens if t]
        self.open = not self._tokens

    @classmethod
    def from_config(cls, cfg: AdminConfig) -> TokenTable:
        pairs: list[tuple[str, Role]] = [(t.token, t.role) for t in cfg.tokens]
        if cfg.token:
            pairs.append((cfg.token, "write"))
        return cls(pairs)

    def role(self, authorization: bytes | None) -> Role | None:
        """The role of an ``Authorization`` header value, or None (missing, malformed, unknown)."""
        if self.open:
            return "write"
        if not authorization:
            return None
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return None
        presented = hashlib.sha256(token.strip()).digest()
        found: Role | None = None
        for digest, role in self._tokens:
            if hmac.compare_digest(presented, digest) and (found is None or role == "write"):
                found = role
        return found


def is_loopback(address: str) -> bool:
    """``HOST:PORT`` on a loopback address (127.0.0.0/8, ::1, ``localhost``)."""
    host, _ = parse_hostport(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
