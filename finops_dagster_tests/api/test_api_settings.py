"""The API's settings and command line: where it reads, which values it refuses, naming the variable."""

from __future__ import annotations

import datetime as dt

import pytest
from psycopg.conninfo import conninfo_to_dict

from finops_dagster.api.periods import BadPeriod, month_label, parse_intervals
from finops_dagster.api.settings import SettingError, api_settings
from finops_dagster.cli import build_parser

API_VARIABLES = (
    "FINOPS_API_POSTGRES_URL",
    "POSTGRES_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "FINOPS_API_DB_ROLE",
    "FINOPS_API_MAX_PAGE_SIZE",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in API_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINOPS_API_AUTH", "none")


def test_the_pipeline_mart_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgresql://finops@db.example/finops")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss")
    params = conninfo_to_dict(api_settings().postgres_url)
    assert (params["host"], params["dbname"], params["user"], params["password"]) == (
        "db.example",
        "finops",
        "finops",
        "p@ss",
    )
    monkeypatch.delenv("POSTGRES_URL")
    monkeypatch.setenv("POSTGRES_HOST", "db2.example")
    params = conninfo_to_dict(api_settings().postgres_url)
    assert (params["host"], params["port"], params["dbname"]) == ("db2.example", "5432", "finops")
    # its own URL wins, untouched by the pipeline's credentials
    monkeypatch.setenv("FINOPS_API_POSTGRES_URL", "postgresql://finops_api@db3.example/finops")
    params = conninfo_to_dict(api_settings().postgres_url)
    assert (params["host"], params["user"], params.get("password")) == ("db3.example", "finops_api", None)
    assert "p@ss" not in repr(api_settings())


def test_missing_or_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingError, match="FINOPS_API_POSTGRES_URL or POSTGRES_URL"):
        api_settings()
    monkeypatch.setenv("POSTGRES_URL", "postgresql://u:p@h:notaport/x?%%%")
    with pytest.raises(SettingError, match="POSTGRES_URL is not a valid libpq URL"):
        api_settings()
    monkeypatch.setenv("POSTGRES_URL", "postgresql://finops@db/finops")
    monkeypatch.setenv("FINOPS_API_DB_ROLE", "reader; DROP ROLE x")
    with pytest.raises(SettingError, match="FINOPS_API_DB_ROLE must be a plain role name"):
        api_settings()
    monkeypatch.setenv("FINOPS_API_DB_ROLE", "none")
    assert api_settings().db_role is None
    monkeypatch.setenv("FINOPS_API_MAX_PAGE_SIZE", "10")
    with pytest.raises(
        SettingError, match="FINOPS_API_DEFAULT_PAGE_SIZE must be <= FINOPS_API_MAX_PAGE_SIZE"
    ):
        api_settings()
    monkeypatch.delenv("FINOPS_API_MAX_PAGE_SIZE")
    monkeypatch.setenv("FINOPS_API_AUTH", "oidc")
    monkeypatch.setenv("FINOPS_API_OIDC_ISSUER", "https://issuer")
    monkeypatch.setenv("FINOPS_API_OIDC_AUDIENCE", "finops-api")
    monkeypatch.setenv("FINOPS_API_OIDC_ALGORITHMS", "RS256,HS256")
    with pytest.raises(SettingError, match="FINOPS_API_OIDC_ALGORITHMS: only asymmetric"):
        api_settings()


def test_the_api_command() -> None:
    args = build_parser().parse_args(
        ["api", "--host", "0.0.0.0", "--port", "9000", "--demo", "--workers", "2"]
    )
    assert (args.host, args.port, args.demo, args.workers, args.no_access_log) == (
        "0.0.0.0",
        9000,
        True,
        2,
        False,
    )
    defaults = build_parser().parse_args(["api"])
    assert (defaults.host, defaults.port, defaults.demo, defaults.workers) == ("127.0.0.1", 8000, False, 1)


@pytest.mark.parametrize(
    ("raw", "months", "previous", "current"),
    [
        ("R2/P1M/2026-07-01", ["2026-05", "2026-06"], ["2026-05"], ["2026-06"]),
        (
            "R2/P3M/2026-07-01",
            ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"],
            ["2026-01", "2026-02", "2026-03"],
            ["2026-04", "2026-05", "2026-06"],
        ),
        ("R2/P30D/2026-03-01", ["2026-01", "2026-02"], ["2026-01"], ["2026-02"]),
        # days: the months whose 15th is in the 180 days before the end, split where the plugin splits
        # (end - 1 day - 90 days: 2026-09-01 here; 2026-05-02 below, so February to May are previous)
        (
            "R2/P90D/2026-12-01",
            ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"],
            ["2026-06", "2026-07", "2026-08"],
            ["2026-09", "2026-10", "2026-11"],
        ),
        (
            "R2/P90D/2026-08-01",
            ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07"],
            ["2026-02", "2026-03", "2026-04", "2026-05"],
            ["2026-06", "2026-07"],
        ),
    ],
)
def test_backstage_intervals_on_the_monthly_grain(
    raw: str, months: list[str], previous: list[str], current: list[str]
) -> None:
    parsed = parse_intervals(raw)

    def labels(values: list[dt.date]) -> list[str]:
        return [month_label(m) for m in values]

    assert labels(parsed.months) == months
    assert labels(parsed.previous_period) == previous
    assert labels(parsed.current_period) == current


def test_bad_intervals_say_what_is_expected() -> None:
    with pytest.raises(BadPeriod, match="expected an ISO 8601 repeating interval"):
        parse_intervals("R2/P1Y/2026-01-01")
