"""An OIDC issuer for the API tests: an RSA key pair whose JWKS a fixture serves over a real socket,
and tokens signed with PyJWT."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.test/realms/finops"
AUDIENCE = "finops-api"
ROLE = "finops-reader"


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    kid: str
    jwks_url: str

    def token(
        self,
        *,
        roles: list[str] | None = None,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        expires_in: int = 300,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer,
            "aud": audience,
            "sub": "backstage",
            "iat": now,
            "exp": now + expires_in,
            "roles": [ROLE] if roles is None else roles,
            **claims,
        }
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
