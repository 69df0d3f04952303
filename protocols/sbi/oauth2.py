"""OAuth2 on an SBI producer (TS 29.500 §6.7.3, TS 29.510 §6.3.5.2.4 AccessTokenClaims; RFC 6750
bearer tokens): is the request's ``Authorization: Bearer <JWT>`` one the NRF issued for this
service? Sans-IO: the caller passes ``now``; signatures are PyJWT's (HS256/384/512 with a shared
secret, RS*/PS* with an RSA public key, ES* with an EC one — the key decides which are allowed, so a
public key can never be used as an HMAC secret).

:meth:`TokenVerifier.verify` returns None (accepted) or the refusal to send:

* no bearer token → 401, ``WWW-Authenticate: Bearer realm="…"`` (RFC 6750 §3.1: no error code);
* a token that does not verify (signature, algorithm, ``exp`` passed, ``nbf`` not reached, ``aud``
  not this NF instance or NF type, ``iss`` not the configured NRF) → 401 ``error="invalid_token"``;
* a valid token without the scope ``n5g-eir-eic`` → 403 ``error="insufficient_scope"``.

All as ``application/problem+json`` ProblemDetails (TS29571 responses 401/403).

Tokens are verified once: the outcome is remembered (a bounded map) until the token expires, as an
AMF sends the same token on every request until it fetches a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate

from protocols.sbi.n5g_eir import Answer, problem

__all__ = ["TokenVerifier", "load_key"]

_HMAC = ("HS256", "HS384", "HS512")
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC = ("ES256", "ES384", "ES512")
_MEMO = 1024


def load_key(data: bytes) -> tuple[Any, tuple[str, ...]]:
    """A verification key from a file's contents and the algorithms it allows: a PEM public key or
    certificate (RSA → RS*/PS*, EC → ES*), else a shared secret (the bytes without surrounding
    white space, at least 32) for HS*. ValueError for anything else."""
    text = data.strip()
    if text.startswith(b"-----BEGIN CERTIFICATE"):
        key: Any = load_pem_x509_certificate(text).public_key()
    elif text.startswith(b"-----BEGIN"):
        key = load_pem_public_key(text)
    else:
        if len(text) < 32:
            # RFC 7518 §3.2: an HS256 key is at least 256 bits (PyJWT warns on every token below it)
            raise ValueError(f"a shared secret must be at least 32 bytes, this one has {len(text)}")
        return text, _HMAC
    if isinstance(key, RSAPublicKey):
        return key, _RSA
    if isinstance(key, EllipticCurvePublicKey):
        return key, _EC
    raise ValueError(f"unsupported public key type {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class _Outcome:
    refusal: Answer | None
    expires: float


class TokenVerifier:
    """Checks bearer tokens for one service (module docstring)."""

    def __init__(
        self,
        key: Any,
        algorithms: tuple[str, ...],
        *,
        audiences: tuple[str, ...],
        scope: str,
        issuer: str | None = None,
        realm: str = "5G-EIR",
    ) -> None:
        self.key = key
        self.algorithms = list(algorithms)
        self.audiences = set(audiences)
        self.scope = scope
        self.issuer = issuer
        self.realm = realm
        self._memo: dict[bytes, _Outcome] = {}
        self.missing = self._unauthorized("a bearer access token is required", None)

    def verify(self, authorization: bytes | None, now: float) -> Answer | None:
        """None when the request may proceed, else the 401/403 answer. ``now``: Unix time."""
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return self.missing
        token = authorization[7:].strip()
        hit = self._memo.get(token)
        if hit is not None and now < hit.expires:
            return hit.refusal
        refusal, expires = self._check(token, now)
        if len(self._memo) >= _MEMO:
            self._memo.clear()
        self._memo[token] = _Outcome(refusal, expires)
        return refusal

    def _check(self, token: bytes, now: float) -> tuple[Answer | None, float]:
        """The outcome and until when it holds (a refusal of a bad token: until the token could
        become valid, i.e. forever for a signature error; an expiry: forever)."""
        forever = float("inf")
        try:
            # time claims are checked here against ``now``, not PyJWT's clock
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": ["exp"],
                },
            )
        except jwt.InvalidTokenError as e:
            return self._unauthorized(f"the access token is not valid: {e}", "invalid_token"), forever
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return self._unauthorized("exp is not a number", "invalid_token"), forever
        if now >= exp:
            return self._unauthorized("the access token has expired", "invalid_token"), forever
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and not isinstance(nbf, bool) and now < nbf:
            return self._unauthorized("the access token is not valid yet", "invalid_token"), float(nbf)
        if self.issuer is not None and claims.get("iss") != self.issuer:
            return self._unauthorized("the access token's issuer is not the NRF", "invalid_token"), forever
        aud = claims.get("aud")
        auds = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
        if self.audiences and not auds & self.audiences:
            return self._unauthorized("the access token is not for this NF", "invalid_token"), forever
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        if self.scope not in scopes:
            return self._forbidden(), float(exp)
        return None, float(exp)

    def _unauthorized(self, detail: str, error: str | None) -> Answer:
        challenge = f'Bearer realm="{self.realm}"'
        if error:
            challenge += f', error="{error}", error_description="{_quotable(detail)}"'
        return problem(401, None, detail, headers=(("www-authenticate", challenge),))

    def _forbidden(self) -> Answer:
        detail = f"the access token lacks the scope {self.scope}"
        challenge = f'Bearer realm="{self.realm}", error="insufficient_scope", scope="{self.scope}"'
        return problem(403, None, detail, headers=(("www-authenticate", challenge),))


def _quotable(s: str) -> str:
    """RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no quote, no backslash)."""
    return "".join(c for c in s if 0x20 <= ord(c) <= 0x7E and c not in '"\\')[:200]
