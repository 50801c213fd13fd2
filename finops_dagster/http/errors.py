"""The one error an HTTP source raises: it names the source, the URL path, the status and the attempts.

Never the query string, headers or body: those can carry tokens.
"""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source could not be read; the message is fit for a person, a log and etl_runs."""

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        attempts: int | None = None,
    ) -> None:
        self.source = source
        self.problem = problem
        self.path = path
        self.status = status
        self.attempts = attempts
        where = [part for part in (method, path) if part]
        details = [" ".join(where)] if where else []
        if status is not None:
            details.append(f"HTTP {status}")
        if attempts is not None:
            details.append(f"after {attempts} attempt{'s' if attempts != 1 else ''}")
        suffix = f" ({', '.join(details)})" if details else ""
        super().__init__(f"{source}: {problem}{suffix}")
