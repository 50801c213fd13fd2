"""The access log without credentials: a token sent in the query string is replaced before any
handler (text or JSON) formats the line.

Clients should send tokens in `Authorization`, which uvicorn never logs; but some tools put them in
the URL (`?access_token=`), and the access log would then keep a usable credential. Values of
parameters named like a credential, and any value shaped like a JWT, become `REDACTED`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

ACCESS_LOGGER = "uvicorn.access"
CREDENTIAL_NAME = re.compile(r"token|secret|password|passwd|api[_-]?key|auth|code|session|jwt", re.IGNORECASE)
JWT_SHAPED = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
REDACTED = "REDACTED"


def redact_path(path_with_query: str) -> str:
    path, separator, query = path_with_query.partition("?")
    if not separator:
        return path_with_query
    pairs = [
        (name, REDACTED if CREDENTIAL_NAME.search(name) or JWT_SHAPED.search(value) else value)
        for name, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{path}?{urlencode(pairs, safe='/:,')}"


class RedactQueryCredentials(logging.Filter):
    """Rewrites the path argument of uvicorn's access record: (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            if isinstance(path, str):
                record.args = (client, method, redact_path(path), version, status)
        return True


def install() -> None:
    """Once per process (the filter lives on the logger, which uvicorn's log configuration keeps)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactQueryCredentials) for existing in logger.filters):
        logger.addFilter(RedactQueryCredentials())
