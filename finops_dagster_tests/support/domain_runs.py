"""Running a domain's pipeline in tests: the harness the domain end-to-end tests share.

The native and private_cloud end-to-end tests (domains/native/test_assets.py and
domains/private_cloud/test_assets.py) do the same things around their own simulators: give the CMDB
stand-in every application of the demo estate, serve a simulator on a real socket and point the
settings and the domain asset's clock (`utc_now`) at it, run the `finops_nightly` job in process over
a range of months, then read what the mart and the run left (relevés, etl_runs, domain_load, every
text a person could read) and check that no secret is in any of it. That part lives here once, so
both domains are held to the same harness; what each simulator says, and so what each domain's
relevés must be, stays in its test file.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from types import ModuleType
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
import psycopg
import pytest
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult, instance_for_test

from finops_dagster.demo.estate import Estate
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
from finops_dagster.pipeline import build_definitions
from finops_dagster_tests.support.cmdb_documents import application

Key = tuple[str, str, str]
"""A relevé's key as the tests compute it: (application, product, source)."""
UNALLOCATED = "UNALLOCATED"
SIX_DECIMALS = Decimal("0.000001")
"""The relevé contract's precision for quantities and costs."""
FACT_COLUMNS = (
    "period_month, application_id, product_id, family_id, domain_id, usage_quantity, usage_unit, unit_cost, "
    "total_cost, currency, source, rate_card_version, source_record_count"
)
"""fact_releve without run_id and computed_at: what must not change when a month is computed again."""
SHARED_SOURCE_SETTINGS = ("OIDC_", "HTTP_", "FINOPS_CA_BUNDLE", "FINOPS_VOLUME_")
"""Settings every HTTP source reads, cleared (with the domain's own) so the developer's environment
cannot leak into a test."""


class Served(Protocol):
    """A running simulator: the settings that point the domain's sources at it."""

    def environment(self) -> dict[str, str]: ...


ServedT = TypeVar("ServedT", bound=Served)
RunT = TypeVar("RunT", bound="DomainRun")


@dataclass
class DomainRun:
    """The nightly job against this test's mart, with one domain enabled and pointed at simulators.

    A domain's test file subclasses it with `start` (serve its simulator, see `serve`) and
    `domain_resources` (its resource, built from the settings as they are at run time, so a test
    can change them between runs).
    """

    resources: dict[str, Any]
    instance: DagsterInstance
    mart: psycopg.Connection
    monkeypatch: pytest.MonkeyPatch
    servers: ExitStack

    asset_nodes: ClassVar[tuple[str, ...]] = ("fact_releve",)
    """The nodes whose materialization metadata `run_texts` reads."""

    def domain_resources(self) -> dict[str, Any]:
        raise NotImplementedError

    def serve(
        self, served: AbstractContextManager[ServedT], clock_of: ModuleType, clock: Callable[[], dt.datetime]
    ) -> ServedT:
        """Serve a simulator until the test ends; point the sources at it and the asset's clock
        (`clock_of.utc_now`) at the simulator's, so "now" is the same on both sides of the socket."""
        server = self.servers.enter_context(served)
        self.setenv(**server.environment())
        self.monkeypatch.setattr(clock_of, "utc_now", clock)
        return server

    def setenv(self, **settings: str | None) -> None:
        """Set the settings; None unsets one."""
        for name, value in settings.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)

    def run(
        self, first: dt.date, last: dt.date | None = None, *, only: Iterable[str] = ()
    ) -> ExecuteInProcessResult:
        """The nightly job over the months first..last (the range tags a backfill sets), all its
        assets or `only` those; a failure is in the result, not raised."""
        resources = {**self.resources, **self.domain_resources()}
        job = build_definitions(resources).resolve_job_def("finops_nightly")
        selection = [AssetKey(name) for name in only]
        return job.execute_in_process(
            instance=self.instance, raise_on_error=False, asset_selection=selection or None,
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: (last or first).isoformat()},
        )

    def run_texts(self, result: ExecuteInProcessResult) -> dict[str, str]:
        """Everything a run left for people to read: event log, events' data (materialization metadata,
        check evaluations), the run record in Dagster and in etl_runs."""
        return {
            "event log": "\n".join(str(record) for record in self.instance.all_logs(result.run_id)),
            "events": "\n".join(
                f"{event.message} {event.event_specific_data}" for event in result.all_events),
            "metadata": "\n".join(
                str(materialization.metadata)
                for node in self.asset_nodes
                for materialization in result.asset_materializations_for_node(node)),
            "dagster run": str(self.instance.get_run_by_id(result.run_id)),
            "etl_runs": str(etl_run(self.mart, result.run_id)),
        }


@contextmanager
def open_domain_run(
    run_class: type[RunT], *, domain: str, source_settings: tuple[str, ...], estate: Estate, day: dt.date,
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection,
) -> Iterator[RunT]:
    """A run harness with only `domain` enabled, none of the sources' settings from the outside
    environment, and the CMDB stand-in holding every application of the estate in the dump of the
    night before `day` (the application referential the relevés are checked against). Servers
    started through it stop when the test ends."""
    for name in list(os.environ):
        if name.startswith(source_settings):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", domain)
    resources["cmdb"].db()["cmdb_ci"].insert_many(
        [application(app.code, day=day - dt.timedelta(days=1), name=app.name, group=app.group_code)
         for app in estate.applications])
    with ExitStack() as servers, instance_for_test() as instance:
        yield run_class(resources, instance, mart, monkeypatch, servers)


# --------------------------------------------------------------------------------------------
# Expected relevés
# --------------------------------------------------------------------------------------------


def priced(
    quantities: Mapping[Key, Decimal], rates: Mapping[str, Decimal]
) -> dict[Key, tuple[Decimal, Decimal, Decimal]]:
    """Key → (quantity, unit cost, total cost) with the relevé contract's six decimals, half even,
    at the product's rate (each test file writes its rate card out independently)."""
    result = {}
    for key, quantity in quantities.items():
        rounded = quantity.quantize(SIX_DECIMALS, rounding=ROUND_HALF_EVEN)
        rate = rates[key[1]]
        result[key] = (rounded, rate, (rounded * rate).quantize(SIX_DECIMALS, rounding=ROUND_HALF_EVEN))
    return result


# --------------------------------------------------------------------------------------------
# What the mart and the run hold
# --------------------------------------------------------------------------------------------


def releves(mart: psycopg.Connection, month: dt.date, source: str | None = None) -> dict[Key, Any]:
    """The month's published relevés (of one source, or all): key → (quantity, unit cost, total)."""
    rows = mart.execute(
        "SELECT application_id, product_id, source, usage_quantity, unit_cost, total_cost "
        "FROM finops.fact_releve WHERE period_month = %s AND (%s::text IS NULL OR source = %s)",
        (month, source, source)).fetchall()
    return {(app, product, src): (quantity, unit, total) for app, product, src, quantity, unit, total in rows}


def fact_rows(mart: psycopg.Connection, month: dt.date, source: str | None = None) -> list[tuple[Any, ...]]:
    """fact_releve of a month (of one source, or all) without run_id and computed_at, in key order."""
    return mart.execute(
        f"SELECT {FACT_COLUMNS} FROM finops.fact_releve WHERE period_month = %s "
        "AND (%s::text IS NULL OR source = %s) ORDER BY application_id, product_id, source",
        (month, source, source)).fetchall()


def fact_run_ids(mart: psycopg.Connection) -> list[tuple[Any, ...]]:
    """The runs fact_releve's rows come from (a month computed again is wholly replaced)."""
    return mart.execute("SELECT DISTINCT run_id FROM finops.fact_releve").fetchall()


def domain_loads(mart: psycopg.Connection, run_id: str) -> list[tuple[Any, ...]]:
    """What a run recorded of each month it loaded, without the run's id and times."""
    return mart.execute(
        "SELECT period_month, releve_count, reject_count, total_cost, source_record_count, "
        "source_totals, details FROM finops.domain_load WHERE run_id = %s", (run_id,)).fetchall()


def etl_run(mart: psycopg.Connection, run_id: str) -> dict[str, Any]:
    """The run's etl_runs row, which must exist."""
    with mart.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM finops.etl_runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None, f"no etl_runs row for {run_id}"
    return row


def failures(result: ExecuteInProcessResult) -> str:
    """The run's failure messages, for an assertion's message."""
    return "; ".join(str(event.message) for event in result.all_events if event.is_failure)


def check_evaluations(result: ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    """(asset, check) → the run's evaluation of that asset check."""
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def record_issued_tokens(monkeypatch: pytest.MonkeyPatch, *token_sources: type[Any]) -> list[str]:
    """The tokens the sources obtain during the test (each class's `fetch(http)` returns
    (token, lifetime)), so the tests can look for them too: a token is as secret as a password."""
    tokens: list[str] = []
    for cls in token_sources:
        def recording_fetch(self: Any, http: httpx.Client, _original: Any = cls.fetch) -> Any:
            token, lifetime = _original(self, http)
            tokens.append(token)
            return token, lifetime
        monkeypatch.setattr(cls, "fetch", recording_fetch)
    return tokens


def assert_no_secret(texts: Mapping[str, str], secrets: Iterable[str], after: str = "") -> None:
    """None of the secrets in any of the texts (a failure names where: "a secret in the logs`after`")."""
    secrets = list(secrets)
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret in the {where}{after}"
