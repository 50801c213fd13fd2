"""The public_cloud domain's fixtures: a demo estate and the nightly job against this test's mart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster_tests.support.domain_runs import open_domain_run
from finops_dagster_tests.support.public_cloud_run import SOURCE_SETTINGS, PublicCloudRun


@pytest.fixture
def estate() -> Estate:
    return build_estate(applications=40, seed=3)


@pytest.fixture
def domain(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection
) -> Iterator[PublicCloudRun]:
    with open_domain_run(
        PublicCloudRun,
        domain="public_cloud",
        source_settings=SOURCE_SETTINGS,
        estate=estate,
        day=dt.date(2026, 11, 20),
        monkeypatch=monkeypatch,
        resources=resources,
        mart=mart,
    ) as run:
        yield run
