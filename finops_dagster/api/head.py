"""HEAD answered as GET without the body (RFC 9110 §9.3.2), on every route.

FastAPI routes declare GET only, and would answer HEAD with 405; monitors and caches use HEAD to see
whether a resource exists and what its validators are. The request runs as a GET (same
authentication, same ETag, same Content-Length), and the body is dropped on the way out.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            if "route" in as_get:  # the route template, for the metrics of the outer layers
                scope["route"] = as_get["route"]
