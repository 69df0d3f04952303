"""OAuth2 bearer tokens on N5g-eir (protocols/sbi/oauth2.py): HS256, RS256 and ES256 tokens made
by PyJWT with keys made here; expiry, not-before, audience, issuer, signature, algorithm and scope
refusals with the RFC 6750 challenge; the outcome remembered per token until it expires."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from protocols.sbi.oauth2 import TokenVerifier, load_key

NOW = 1_800_000_000.0
NF_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def claims(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "iss": "nrf-1",
        "sub": "amf-1",
        "aud": NF_ID,
        "scope": "n5g-eir-eic",
        "exp": int(NOW) + 600,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def pem_public(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[Any, bytes]]:
    """algorithm → (signing key, the verification key file's contents)."""
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    e = ec.generate_private_key(ec.SECP256R1())
    return {
        "HS256": (b"a shared secret of 32 bytes!!!!!", b"a shared secret of 32 bytes!!!!!\n"),
        "RS256": (r, pem_public(r)),
        "ES256": (e, pem_public(e)),
    }


def verifier(file: bytes, **kw: Any) -> TokenVerifier:
    key, algs = load_key(file)
    kw.setdefault("audiences", (NF_ID, "5G_EIR"))
    return TokenVerifier(key, algs, scope="n5g-eir-eic", **kw)


def bearer(token: str) -> bytes:
    return b"Bearer " + token.encode()


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_good_tokens_pass(keys: dict[str, tuple[Any, bytes]], alg: str) -> None:
    sign, file = keys[alg]
    v = verifier(file, issuer="nrf-1")
    assert v.verify(bearer(jwt.encode(claims(), sign, algorithm=alg)), NOW) is None
    # the NF type as audience, a list audience, several scopes
    t = jwt.encode(claims(aud=["x", "5G_EIR"], scope="nudm-sdm n5g-eir-eic"), sign, algorithm=alg)
    assert v.verify(bearer(t), NOW) is None


def challenge(a: Any) -> str:
    return dict(a.headers)["www-authenticate"]


@pytest.mark.parametrize(
    ("over", "status", "error"),
    [
        ({"exp": int(NOW) - 1}, 401, "invalid_token"),
        ({"exp": None}, 401, "invalid_token"),
        ({"nbf": int(NOW) + 60}, 401, "invalid_token"),
        ({"aud": "some-other-nf"}, 401, "invalid_token"),
        ({"iss": "another-nrf"}, 401, "invalid_token"),
        ({"scope": "nudm-sdm"}, 403, "insufficient_scope"),
        ({"scope": None}, 403, "insufficient_scope"),
    ],
)
def test_refusals(keys: dict[str, tuple[Any, bytes]], over: dict[str, Any], status: int, error: str) -> None:
    sign, file = keys["ES256"]
    a = verifier(file, issuer="nrf-1").verify(
        bearer(jwt.encode(claims(**over), sign, algorithm="ES256")), NOW
    )
    assert a is not None and a.status == status
    assert a.content_type == "application/problem+json"
    pd = json.loads(a.body)
    assert pd["status"] == status and pd["detail"]
    assert challenge(a).startswith('Bearer realm="5G-EIR"') and f'error="{error}"' in challenge(a)
    if status == 403:
        assert 'scope="n5g-eir-eic"' in challenge(a)


def test_missing_or_foreign_credentials(keys: dict[str, tuple[Any, bytes]]) -> None:
    v = verifier(keys["HS256"][1])
    for auth in (None, b"Basic dXNlcjpwdw==", b""):
        a = v.verify(auth, NOW)
        assert a is not None and a.status == 401
        assert challenge(a) == 'Bearer realm="5G-EIR"'  # RFC 6750 §3.1: no error without credentials
    for token in (b"Bearer not.a.jwt", b"Bearer " + b"x" * 5000):
        a = v.verify(token, NOW)
        assert a is not None and a.status == 401 and 'error="invalid_token"' in challenge(a)


def test_wrong_key_and_algorithm_confusion(keys: dict[str, tuple[Any, bytes]]) -> None:
    # signed by another EC key
    other = ec.generate_private_key(ec.SECP256R1())
    v = verifier(keys["ES256"][1])
    a = v.verify(bearer(jwt.encode(claims(), other, algorithm="ES256")), NOW)
    assert a is not None and a.status == 401
    # an HS256 token "signed" with the public key's PEM must not pass an RSA verifier
    rs = verifier(keys["RS256"][1])
    forged = jwt.api_jws.PyJWS().encode(
        json.dumps(claims()).encode(), b"k" * 32, algorithm="HS256"
    )  # any HS256 token: RS verifiers allow no HS* algorithm
    a = rs.verify(bearer(forged), NOW)
    assert a is not None and a.status == 401
    unsigned = jwt.encode(claims(), None, algorithm="none")
    a = rs.verify(bearer(unsigned), NOW)
    assert a is not None and a.status == 401


def test_outcome_is_remembered_until_expiry(keys: dict[str, tuple[Any, bytes]]) -> None:
    sign, file = keys["HS256"]
    v = verifier(file)
    t = bearer(jwt.encode(claims(exp=int(NOW) + 10), sign, algorithm="HS256"))
    assert v.verify(t, NOW) is None
    assert v.verify(t, NOW + 5) is None  # from the memo
    a = v.verify(t, NOW + 10)  # expired: checked again, refused
    assert a is not None and a.status == 401 and "expired" in json.loads(a.body)["detail"]


def test_load_key_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        load_key(b"  \n")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_key(b"short secret\n")
    with pytest.raises(ValueError):
        load_key(b"-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n")
