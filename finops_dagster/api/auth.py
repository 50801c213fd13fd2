"""Authentication: OIDC bearer tokens checked against the issuer's published keys.

A token is accepted when its signature verifies with a key of the issuer's JWKS (selected by `kid`),
with one of the configured asymmetric algorithms, and its `iss`, `aud` and `exp` are right; read
access then needs the configured role in the configured claim (a dotted path such as
`realm_access.roles`, holding a list or a space-separated string such as `scope`).

The JWKS is fetched once and cached; a token signed with an unknown `kid` triggers one refetch (the
issuer rotated its keys), attempted at most every `jwks_min_refresh_s` whatever the outcome, so a
flood of forged `kid`s cannot turn the API into a load generator against the issuer, nor make
requests queue behind an issuer that hangs. Errors say what is wrong with the token, never what it
contains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from finops_dagster.api.settings import OidcSettings

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    """No valid token: 401 with a WWW-Authenticate challenge. `reason` is a fixed word for metrics
    (what kind of refusal), never anything taken from the token."""

    def __init__(self, description: str, reason: str = "invalid") -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason


class Forbidden(Exception):
    """A valid token without the role that grants read access: 403."""

    reason = "role"


class IssuerUnavailable(Exception):
    """The issuer's keys could not be fetched: 503, the token may well be valid."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject (for logs), or the demo's anonymous reader."""

    subject: str
    authenticated: bool


ANONYMOUS = Principal(subject="anonymous (authentication disabled)", authenticated=False)


class JwksCache:
    """The issuer's signing keys by `kid`, fetched over HTTP and refreshed on an unknown `kid`.

    A fetch is *attempted* at most every `jwks_min_refresh_s`, whether the last attempt succeeded,
    failed or timed out: while the issuer errs or hangs, a flood of unknown `kid`s costs it one
    request per interval, not one per token. One fetch runs at a time, bounded as a whole (discovery
    included) by `jwks_timeout_s`; requests that need it share it and wait no longer than that, and
    requests whose `kid` is known never wait at all."""

    def __init__(self, settings: OidcSettings, on_refresh: Callable[[bool], None] | None = None) -> None:
        self._settings = settings
        self._on_refresh = on_refresh or (lambda _succeeded: None)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._attempted_at = float("-inf")
        self._last_failed = False
        self._fetching: asyncio.Task[None] | None = None
        self._jwks_url = settings.jwks_url

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`; None when the issuer does not publish it (as of the last fetch).
        IssuerUnavailable when the keys cannot be known: the last fetch failed and none came before."""
        if kid in self._keys:
            return self._keys[kid]
        fetch = self._fetching
        if fetch is None and time.monotonic() - self._attempted_at >= self._settings.jwks_min_refresh_s:
            fetch = self._start_fetch()
        if fetch is not None:
            # shielded: a caller that gives up (client gone) does not cancel the fetch others share
            await asyncio.wait([asyncio.shield(fetch)], timeout=self._settings.jwks_timeout_s)
        if kid in self._keys:
            return self._keys[kid]
        if (fetch is not None and not fetch.done()) or (self._last_failed and not self._keys):
            raise IssuerUnavailable("the identity provider's signing keys could not be fetched")
        return None

    def _start_fetch(self) -> asyncio.Task[None]:
        self._attempted_at = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._refresh())
        self._fetching = task
        task.add_done_callback(self._fetch_done)
        return task

    def _fetch_done(self, _: asyncio.Task[None]) -> None:
        self._fetching = None

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(self._settings.jwks_timeout_s):
                document = await self._download()
        except (httpx.HTTPError, ValueError, TimeoutError) as error:
            log.warning("could not fetch the issuer's JWKS: %s", type(error).__name__)
            self._last_failed = True
            self._on_refresh(False)
            return
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type or algorithm this process cannot use
        self._keys = keys
        self._last_failed = False
        self._on_refresh(True)

    async def _download(self) -> Any:
        async with httpx.AsyncClient(timeout=self._settings.jwks_timeout_s) as client:
            if self._jwks_url is None:
                self._jwks_url = await self._discover(client)
            response = await client.get(self._jwks_url)
            response.raise_for_status()
            return response.json()

    async def _discover(self, client: httpx.AsyncClient) -> str:
        """The JWKS URL from the issuer's OpenID configuration (when FINOPS_API_OIDC_JWKS_URL is unset)."""
        response = await client.get(self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration")
        response.raise_for_status()
        jwks_uri = response.json().get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise ValueError("no jwks_uri in the OpenID configuration")
        return jwks_uri


VERIFIED_CACHE_SIZE = 4096


class TokenVerifier:
    """Verifies bearer tokens. A token that verified is remembered (by its exact text) until it
    expires, so a client sending the same access token on every call (Backstage's backend does) does
    not pay a signature check per request; expiry is still checked on every use."""

    def __init__(self, settings: OidcSettings, on_jwks_refresh: Callable[[bool], None] | None = None) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings, on_jwks_refresh)
        self._verified: dict[str, tuple[float, Principal]] = {}

    async def verify(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        remembered = self._verified.get(token)
        if remembered is not None:
            expires_at, principal = remembered
            if time.time() < expires_at + self.settings.leeway_s:
                return principal
            del self._verified[token]
        principal, expires_at = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (expires_at, principal)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a well-formed JWT", "malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.settings.algorithms:
            raise Unauthorized("the token's signing algorithm is not accepted", "algorithm")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token names no signing key (kid)", "no_kid")
        key = await self.jwks.key(kid)
        if key is None:
            raise Unauthorized("the token is signed with a key the issuer does not publish", "unknown_key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", "expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token is not meant for this API (audience)", "audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the token is not from the configured issuer", "issuer") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature does not verify", "signature") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"the token lacks the {error.claim!r} claim", "missing_claim") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is invalid", "invalid") from None
        if self.settings.required_role not in _claim_values(claims, self.settings.role_claim):
            raise Forbidden(
                f"the token does not grant read access: role {self.settings.required_role!r} "
                f"is missing from claim {self.settings.role_claim!r}"
            )
        return Principal(subject=str(claims.get("sub", "?")), authenticated=True), float(claims["exp"])


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)", "missing")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", "scheme")
    return token.strip()


def _claim_values(claims: dict[str, Any], path: str) -> set[str]:
    """The values of a (dotted) claim: a list of strings, or one space-separated string."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return set()
        value = value.get(part)
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()
