"""A clock for HTTP source tests that only moves when told to, or when the source 'sleeps'."""

from __future__ import annotations


class FakeTime:
    """`clock` and `sleep` for HttpSource: each sleep is recorded and moves the clock, so retries and
    back-off are tested without waiting."""

    def __init__(self) -> None:
        self.now = 10_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
