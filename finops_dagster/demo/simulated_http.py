"""A small simulated HTTP service for the demo and the tests: the plumbing the simulators share.

The demo's simulators (:mod:`~finops_dagster.demo.private_cloud`,
:mod:`~finops_dagster.demo.native_services`) answer over a real socket so that the pipeline's
clients run unmodified. What they have in common lives here, standard library only:

- the threaded server, a request handler that routes ``(method, path)`` to a function of
  ``(query, body)`` returning a :class:`Reply`, and :class:`BackgroundServer` (thread, ``.url``,
  ``.close()``, ``with``);
- bearer tokens issued with a real-clock expiry (:class:`TokenStore`) by an OIDC token endpoint
  (client-credentials grant, ``client_secret_post`` or ``client_secret_basic``), constant-time
  secret comparison, bearer and Basic header parsing;
- the generic usage report contract both simulators serve behind OIDC (the private cloud's
  ``usage_api.openapi.yaml``, the native services' ``usage_report.openapi.yaml``): ``YYYY-MM``
  periods, exact decimal strings, opaque page tokens bound to their period.

What each API says and how it refuses a request (bodies, error formats, routes) stays in its
simulator: the handler only asks it through :meth:`SimulatedHandler.route` and
:meth:`SimulatedHandler.error_body`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime as dt
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

PERIOD_PATTERN = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])$")
"""A usage report's period: a month written ``YYYY-MM``."""


class SimulatedApiError(ValueError):
    """A request the real API would refuse; ``status`` and ``code`` let the HTTP layer answer it."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Reply:
    """What a route answers: a JSON body (a ``str`` body is sent as plain text) and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[dict[str, str], bytes], Reply]
"""A route's function: (query, each parameter's last value; request body) → reply."""


# --- secrets and tokens ---------------------------------------------------------------------------


def same_secret(given: object, expected: str) -> bool:
    """Whether ``given`` is the expected secret, compared in constant time (False if not a str)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None for any other scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``client_secret_basic``: the client id and secret from an ``Authorization: Basic`` header."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


class TokenStore:
    """Issued tokens and their real-clock expiry; thread-safe, as the server is threaded."""

    def __init__(self, ttl_seconds: int) -> None:
        self._ttl = ttl_seconds
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, float]:
        """A new random token and its expiry (epoch seconds)."""
        token = secrets.token_hex(32)
        expires = time.time() + self._ttl
        with self._lock:
            self._tokens[token] = expires
        return token, expires

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and time.time() < expires

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()


class OidcClient(Protocol):
    """The one OIDC client a simulator accepts, and the lifetime of the tokens it gets."""

    @property
    def oidc_client_id(self) -> str: ...

    @property
    def oidc_client_secret(self) -> str: ...

    @property
    def token_ttl_seconds(self) -> int: ...


def oidc_token_reply(body: bytes, authorization: str | None, tokens: TokenStore, client: OidcClient) -> Reply:
    """``POST`` to an OIDC token endpoint: the client-credentials grant, credentials in the form
    (``client_secret_post``) or in a Basic header (``client_secret_basic``, which wins)."""
    form = {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    basic = basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if form.get("grant_type") != "client_credentials":
        return Reply(400, {"error": "unsupported_grant_type"}, headers)
    if not (
        same_secret(client_id, client.oidc_client_id)
        and same_secret(client_secret, client.oidc_client_secret)
    ):
        return Reply(
            401,
            {"error": "invalid_client", "error_description": "Invalid client credentials"},
            {**headers, "WWW-Authenticate": 'Basic realm="oidc"'},
        )
    token, _ = tokens.issue()
    answer = {"access_token": token, "expires_in": client.token_ttl_seconds, "token_type": "Bearer"}
    if form.get("scope"):
        answer["scope"] = form["scope"]
    return Reply(200, answer, headers)


def bearer_refusal(authorization: str | None, tokens: TokenStore, realm: str) -> Reply | None:
    """None when the header carries a valid bearer token of ``tokens``, else the usage report's 401."""
    if tokens.valid(bearer_token(authorization)):
        return None
    problem = ', error="invalid_token"' if authorization else ""
    return Reply(
        401,
        {"error": {"code": "unauthorized", "message": "a valid bearer token is required"}},
        {"WWW-Authenticate": f'Bearer realm="{realm}"{problem}'},
    )


# --- the generic usage report ---------------------------------------------------------------------


def month_period(period: str) -> tuple[dt.date, int]:
    """First day and length of a ``YYYY-MM`` period, or a 400."""
    match = PERIOD_PATTERN.match(period or "")
    if match is None:
        raise SimulatedApiError("invalid_period", "period must be a month written YYYY-MM")
    year, month = int(match["year"]), int(match["month"])
    return dt.date(year, month, 1), calendar.monthrange(year, month)[1]


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation without exponent or trailing zeros: ``123.5``, ``720``."""
    return format(value.normalize(), "f")


def totals_by_measure(quantities: Iterable[tuple[object, str, str, Decimal]]) -> dict[str, Decimal]:
    """Exact total per measure (metric, product) of (subject, measure, unit, quantity) rows: what a
    period's pages must add up to."""
    totals: dict[str, Decimal] = {}
    for _, measure, _, quantity in quantities:
        totals[measure] = totals.get(measure, Decimal(0)) + quantity
    return totals


def encode_page_token(period: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"v1|{period}|{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str, period: str) -> int:
    """The offset a token stands for; a token of another period or a forged one is a 400."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, token_period, offset = text.split("|")
        if version != "v1" or token_period != period or not offset.isdigit():
            raise ValueError(text)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SimulatedApiError("invalid_page_token", "page_token is not valid for this period") from None


def token_page(
    items: Callable[[str], list[dict[str, Any]]],
    period: str,
    *,
    page_token: str | None,
    page_size: int,
    max_page_size: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """(one page of the period's items, the next page's token or None); ``items(period)`` lists
    them all in page order and is only called once ``page_size`` is known to be acceptable."""
    if not 1 <= page_size <= max_page_size:
        raise SimulatedApiError("invalid_page_size", f"page_size must be between 1 and {max_page_size}")
    every = items(period)
    offset = decode_page_token(page_token, period) if page_token else 0
    if offset > len(every):
        raise SimulatedApiError("invalid_page_token", "page_token is not valid for this period")
    end = offset + page_size
    return every[offset:end], encode_page_token(period, end) if end < len(every) else None


class UsagePages(Protocol):
    """A simulator's usage report: one page of a period as a JSON body."""

    def __call__(
        self, period: str, *, page_token: str | None = ..., page_size: int = ...
    ) -> dict[str, Any]: ...


def usage_page_reply(query: dict[str, str], pages: UsagePages, default_page_size: int) -> Reply:
    """``GET`` of a usage report page (``period``, ``page_token``, ``page_size``); a refusal is
    ``{"error": {"code", "message"}}``."""
    try:
        size_text = query.get("page_size") or str(default_page_size)
        if not re.fullmatch(r"[0-9]+", size_text):
            raise SimulatedApiError("invalid_page_size", "page_size must be an integer")
        answer = pages(
            query.get("period", ""), page_token=query.get("page_token") or None, page_size=int(size_text)
        )
    except SimulatedApiError as error:
        return Reply(error.status, {"error": {"code": error.code, "message": error.message}})
    return Reply(200, answer)


# --- server, handler and background thread --------------------------------------------------------

SimulatorT = TypeVar("SimulatorT")


class SimulatedServer(ThreadingHTTPServer, Generic[SimulatorT]):
    """A threaded server holding the simulator its handler asks; subclasses add token stores."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[SimulatedHandler], simulator: SimulatorT
    ) -> None:
        super().__init__(address, handler)
        self.simulator = simulator


class SimulatedHandler(BaseHTTPRequestHandler):
    """Routes requests to functions of (query, body); every answer has a Content-Length (keep-alive).

    Subclasses say which function serves a path (:meth:`route`) and how their API words an error
    (:meth:`error_body`, and :meth:`not_found_body` where a 404 differs).
    """

    server: SimulatedServer[Any]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: avoid 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo do not want an access log on stderr."""

    def route(self, path: str) -> tuple[str, Route] | None:
        """(the method it accepts, the function) serving ``path`` (no trailing slash), or None."""
        raise NotImplementedError

    def error_body(self, status: int, code: str, message: str) -> Any:
        """The body of an error the handler itself answers (``code``: ``not_found``,
        ``method_not_allowed`` or ``internal``)."""
        raise NotImplementedError

    def not_found_body(self, path: str, requested: str) -> Any:
        """The 404 body for ``path`` (no trailing slash); ``requested`` is the path as sent."""
        return self.error_body(404, "not_found", f"no route {requested}")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path.rstrip("/") or "/"
        route = self.route(path)
        if route is None:
            reply = Reply(404, self.not_found_body(path, parts.path))
        elif route[0] != method:
            reply = Reply(
                405, self.error_body(405, "method_not_allowed", f"{method} not allowed"), {"Allow": route[0]}
            )
        else:
            try:
                reply = route[1](query, body)
            except Exception as error:  # a simulator bug must answer 500, not hang the client
                reply = Reply(500, self.error_body(500, "internal", f"{type(error).__name__}: {error}"))
        self.send_reply(reply)

    def send_reply(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain"
        else:
            payload, content_type = json.dumps(reply.body).encode(), "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def base_url(self) -> str:
        """``http://<host>``: as the client addressed the server (its ``Host``), for links."""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"


ServerT = TypeVar("ServerT", bound=SimulatedServer[Any])


def start_thread(server: SimulatedServer[Any], name: str) -> threading.Thread:
    """Serve on a daemon thread (standard library only, so the demo needs no test dependency)."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    return thread


class BackgroundServer(Generic[ServerT]):
    """A simulator served on a background thread; ``close()`` (or ``with``) stops it."""

    def __init__(self, server: ServerT, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
