"""Authentication of HTTP sources: none, a static technical token, or OIDC client credentials.

Tokens obtained from an identity provider are cached until shortly before they expire and fetched
again once when the API answers 401 (it may have been revoked or rotated). Secrets live only in
these objects: they are never part of a message, a log line or metadata.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from finops_dagster.http.errors import SourceError
from finops_dagster.settings import SettingError

EXPIRY_MARGIN_S = 30.0


class Auth:
    """No authentication; the base of the others."""

    can_refresh = False

    def headers(self, http: httpx.Client) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        """Forget a cached credential so the next call fetches a new one."""


class StaticToken(Auth):
    """A technical token from a vault/secret, sent as `Authorization: Bearer …` or in a named header."""

    def __init__(self, token: str, header: str = "Authorization") -> None:
        self._token = token
        self._header = header

    def headers(self, http: httpx.Client) -> dict[str, str]:
        value = f"Bearer {self._token}" if self._header.lower() == "authorization" else self._token
        return {self._header: value}


class CachedToken(Auth):
    """A token fetched from an identity endpoint, cached until `expires_in` minus a safety margin."""

    can_refresh = True
    header = "Authorization"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._token: str | None = None
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def fetch(self, http: httpx.Client) -> tuple[str, float]:
        """(token, lifetime in seconds) from the identity endpoint."""
        raise NotImplementedError

    def token(self, http: httpx.Client) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._valid_until:
                token, lifetime = self.fetch(http)
                self._token = token
                self._valid_until = self._clock() + max(lifetime - EXPIRY_MARGIN_S, 0.0)
            return self._token

    def headers(self, http: httpx.Client) -> dict[str, str]:
        token = self.token(http)
        return {self.header: f"Bearer {token}" if self.header == "Authorization" else token}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class OidcClientCredentials(CachedToken):
    """OAuth2 client-credentials grant against the organisation's OIDC provider (Keycloak…)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope

    def fetch(self, http: httpx.Client) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        if self._scope:
            form["scope"] = self._scope
        path = httpx.URL(self.token_url).path
        try:
            response = http.post(self.token_url, data=form)
        except httpx.HTTPError as error:
            raise SourceError(
                "OIDC token endpoint", f"unreachable ({type(error).__name__})", method="POST", path=path
            ) from None
        if response.status_code != 200:
            raise SourceError(
                "OIDC token endpoint",
                "token request refused; check OIDC_CLIENT_ID/SECRET",
                method="POST",
                path=path,
                status=response.status_code,
            )
        body = _json_object(response)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceError("OIDC token endpoint", "answer has no access_token", method="POST", path=path)
        return token, float(body.get("expires_in") or 300)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def oidc_from_env(prefix: str) -> OidcClientCredentials:
    """OIDC_TOKEN_URL / OIDC_CLIENT_ID / OIDC_CLIENT_SECRET (/ OIDC_SCOPE), each overridable per source."""
    values = {}
    for key in ("TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET"):
        value = _env(f"{prefix}_OIDC_{key}") or _env(f"OIDC_{key}")
        if not value:
            raise SettingError(
                f"OIDC_{key} (or {prefix}_OIDC_{key}) is not set: {prefix} uses OIDC authentication"
            )
        values[key] = value
    scope = _env(f"{prefix}_OIDC_SCOPE") or _env("OIDC_SCOPE") or None
    return OidcClientCredentials(values["TOKEN_URL"], values["CLIENT_ID"], values["CLIENT_SECRET"], scope)


def auth_from_env(prefix: str, default: str = "oidc") -> Auth:
    """`<PREFIX>_AUTH` = none | token | oidc; token → `<PREFIX>_TOKEN` (and `<PREFIX>_TOKEN_HEADER`)."""
    kind = (_env(f"{prefix}_AUTH") or default).lower()
    if kind == "none":
        return Auth()
    if kind == "token":
        token = _env(f"{prefix}_TOKEN")
        if not token:
            raise SettingError(f"{prefix}_TOKEN is not set: {prefix}_AUTH=token needs the technical token")
        return StaticToken(token, _env(f"{prefix}_TOKEN_HEADER") or "Authorization")
    if kind == "oidc":
        return oidc_from_env(prefix)
    raise SettingError(f"{prefix}_AUTH must be none, token or oidc, got {kind!r}")
