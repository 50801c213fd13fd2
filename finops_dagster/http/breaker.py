"""A circuit breaker per source, so a dead API fails fast instead of burning the night on retries.

After `threshold` consecutive failed requests (each already retried) it opens: calls fail at once
for `reset_s`; then one trial call is let through (half-open), and its outcome closes or re-opens it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset_s = reset_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether a call may go out now (closed, or half-open after the reset period)."""
        with self._lock:
            if self.opened_at is None:
                return True
            return self.clock() - self.opened_at >= self.reset_s

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()
