"""Fixtures of the open_legacy tests."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from finops_dagster_tests.support.open_legacy_fold import SESSIONS


@pytest.fixture
def fold_session(mart: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The test's mart lent to the hand-driven fold, which prices in PostgreSQL."""
    SESSIONS.append(mart)
    yield mart
    SESSIONS.remove(mart)
