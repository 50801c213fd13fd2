"""Bad input gets a 4xx with a message naming what is wrong; injection attempts in every filter, path,
sort and period parameter have no effect; a mart whose views were never populated answers 503."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from finops_dagster.api import listings as L
from finops_dagster.api.db import check_access
from finops_dagster.api.periods import PeriodRange
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for

INJECTIONS = [
    "x' OR '1'='1",
    "'; DROP TABLE finops.fact_releve; --",
    "GRP-A' --",
    "1); SELECT pg_sleep(3); --",
    'open_legacy" OR ""="',
    "%27%20OR%201=1",
    "EUR' UNION SELECT run_id FROM finops.etl_runs --",
]

# every filter of every listing endpoint
FILTERS: list[tuple[str, str]] = [
    ("/api/v1/costs/domains", "domain"),
    ("/api/v1/costs/domains", "currency"),
    ("/api/v1/costs/families", "domain"),
    ("/api/v1/costs/families", "family"),
    ("/api/v1/costs/groups", "group"),
    ("/api/v1/costs/applications", "application"),
    ("/api/v1/costs/applications", "group"),
    ("/api/v1/costs/products", "product"),
    ("/api/v1/costs/products", "family"),
    ("/api/v1/history/domains", "domain"),
    ("/api/v1/rankings/applications", "application"),
    ("/api/v1/anomalies", "application"),
    ("/api/v1/anomalies", "domain"),
    ("/api/v1/anomalies", "kind"),
    ("/api/v1/applications/CRM/breakdown", "domain"),
    ("/api/v1/backstage/groups/GRP-A/cost", "currency"),
    ("/api/v1/backstage/products/OL_COMPUTE/insights", "group"),
    ("/api/v1/backstage/products/OL_COMPUTE/insights", "project"),
]
PATHS = [
    "/api/v1/applications/{}/breakdown",
    "/api/v1/backstage/groups/{}/projects",
    "/api/v1/backstage/groups/{}/cost?intervals=R2/P1M/2025-05-01",
    "/api/v1/backstage/projects/{}/cost?intervals=R2/P1M/2025-05-01",
    "/api/v1/backstage/products/{}/insights?intervals=R2/P1M/2025-05-01",
    "/api/v1/backstage/groups/{}/alerts",
]


def _state(published: Published) -> tuple[Any, ...]:
    return published.rows(
        "SELECT (SELECT count(*) FROM finops.fact_releve), (SELECT sum(total_cost) FROM finops.fact_releve), "
        "(SELECT count(*) FROM finops.etl_runs), "
        "(SELECT count(*) FROM pg_class WHERE relname LIKE 'fact_releve%')"
    )[0]


def _problem(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "error", "detail"} and body["status"] == status
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("2025-13", "from: expected a month as YYYY-MM"),
        ("2025-1", "from: expected a month as YYYY-MM"),
        ("25-01", "from: expected a month as YYYY-MM"),
        ("2025-01-01", "from: expected a month as YYYY-MM"),
        ("january", "from: expected a month as YYYY-MM"),
        ("", None),
    ],
)
def test_a_malformed_period_is_400(api: LiveApi, raw: str, fragment: str | None) -> None:
    response = api.get("/api/v1/costs/domains", params={"from": raw})
    if fragment is None:  # empty means "no bound"
        assert response.status_code == 200
    else:
        _problem(response, 400, fragment, repr(raw))


def test_period_ranges_and_intervals_are_checked(api: LiveApi) -> None:
    _problem(
        api.get("/api/v1/costs/domains", params={"from": "2025-04", "to": "2025-01"}),
        400,
        "from (2025-04) is after to (2025-01)",
    )
    _problem(
        api.get("/api/v1/costs/domains", params={"from": "1990-01", "to": "2025-01"}),
        400,
        "more than 240 months",
    )
    for intervals in (
        "R2/P1W/2025-05-01",
        "2/P1M/2025-05-01",
        "R2/P1M/2025-13-01",
        "R0/P1M/2025-05-01",
        "R99/P12M/2025-05-01",
    ):
        _problem(
            api.get("/api/v1/backstage/groups/GRP-A/cost", params={"intervals": intervals}), 400, "intervals:"
        )
    _problem(api.get("/api/v1/backstage/groups/GRP-A/cost"), 400, "intervals: required")
    _problem(api.get("/api/v1/backstage/groups/GRP-A/alerts", params={"period": "2025"}), 400, "period:")


def test_an_unknown_dimension_value_is_400_naming_what_is_known(api: LiveApi) -> None:
    _problem(
        api.get("/api/v1/costs/domains", params={"domain": "mainframe"}),
        400,
        "unknown domain 'mainframe'",
        "(known: open_legacy)",
    )
    _problem(api.get("/api/v1/costs/families", params={"family": "GPU"}), 400, "unknown family 'GPU'")
    _problem(api.get("/api/v1/costs/applications", params={"group": "GRP-Z"}), 400, "unknown group 'GRP-Z'")
    _problem(
        api.get("/api/v1/costs/applications", params={"application": "crm"}), 400, "unknown application 'crm'"
    )  # codes are case-sensitive
    _problem(api.get("/api/v1/costs/products", params={"product": "X"}), 400, "unknown product 'X'")
    _problem(api.get("/api/v1/costs/domains", params={"currency": "USD"}), 400, "unknown currency 'USD'")
    _problem(
        api.get("/api/v1/anomalies", params={"kind": "spike"}), 400, "kind: expected one of SPIKE, DROP, NEW"
    )
    _problem(
        api.get("/api/v1/backstage/groups/GRP-Z/cost", params={"intervals": "R2/P1M/2025-05-01"}),
        404,
        "unknown group 'GRP-Z'",
    )
    _problem(
        api.get("/api/v1/backstage/products/GPU/insights", params={"intervals": "R2/P1M/2025-05-01"}),
        404,
        "unknown family 'GPU'",
    )


def test_paging_and_sorting_are_checked(api: LiveApi) -> None:
    _problem(
        api.get("/api/v1/costs/domains", params={"page_size": 100000}), 400, "page_size: expected 1 to 1000"
    )
    _problem(api.get("/api/v1/costs/domains", params={"page_size": 0}), 400, "page_size")
    _problem(api.get("/api/v1/costs/domains", params={"page": 0}), 400, "page: expected 1 to")
    _problem(api.get("/api/v1/costs/domains", params={"page": "two"}), 400, "page:")
    _problem(api.get("/api/v1/costs/domains", params={"sort": "cost"}), 400, "sort: expected one of period")
    _problem(api.get("/api/v1/costs/domains", params={"grain": "week"}), 400, "grain:")
    _problem(api.get("/api/v1/applications/CRM/breakdown", params={"by": "team"}), 400, "by:")


def test_unknown_or_repeated_parameters_are_400(api: LiveApi) -> None:
    _problem(
        api.get("/api/v1/costs/domains", params={"domian": "open_legacy"}),
        400,
        "unknown query parameter(s) domian",
        "domain",
    )
    _problem(api.get("/api/v1/costs/domains?domain=open_legacy&domain=x"), 400, "domain: give it once")


@pytest.mark.parametrize(("path", "name"), FILTERS, ids=[f"{p}:{n}" for p, n in FILTERS])
def test_injection_in_every_filter_has_no_effect(
    api: LiveApi, published: Published, path: str, name: str
) -> None:
    before = _state(published)
    for attempt in INJECTIONS:
        params = {name: attempt}
        if "backstage" in path:
            params["intervals"] = "R2/P1M/2025-05-01"
        response = api.get(path, params=params)
        assert response.status_code == 400, (attempt, response.text)
        detail = response.json()["detail"]
        assert detail.startswith((f"unknown {name if name != 'project' else 'application'} ", f"{name}: "))
    assert _state(published) == before


def test_injection_in_paths_sort_and_periods_has_no_effect(api: LiveApi, published: Published) -> None:
    before = _state(published)
    for attempt in INJECTIONS:
        for template in PATHS:
            path, _, query = template.partition("?")
            url = path.format(attempt.replace("/", "%2F").replace("?", "%3F").replace("#", "%23")) + (
                f"?{query}" if query else ""
            )
            assert api.get(url).status_code in (400, 404), url
        for parameter in ("sort", "from", "to", "grain", "page_size"):
            assert api.get("/api/v1/costs/applications", params={parameter: attempt}).status_code == 400
    assert _state(published) == before


def test_values_travel_as_parameters_even_past_validation(published: Published) -> None:
    """Whatever a filter holds, the query builder sends it as a bind parameter: run its SQL directly
    as the reader with injection text in every filter and get no row, no error, no side effect."""
    before = _state(published)
    with psycopg.connect(published.url, autocommit=True) as conn:
        conn.execute("SET ROLE finops_reader")
        for listing in (
            L.DOMAIN_MONTH,
            L.FAMILY_QUARTER,
            L.APPLICATION_MONTH,
            L.PRODUCT_MONTH,
            L.RANKING,
            L.ANOMALIES,
            L.APP_BY_PRODUCT,
            L.HISTORY_DOMAIN,
        ):
            for attempt in INJECTIONS:
                filters = dict.fromkeys(listing.filters, attempt)
                query = L.build_query(listing, L.Request(PeriodRange(None, None), filters, None, 1, 10))
                assert conn.execute(query.page, query.page_params).fetchall() == []
                assert conn.execute(query.count, query.count_params).fetchone() == (0,)
    assert _state(published) == before


def test_a_mart_never_published_answers_empty(mart_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The aggregates are tables: before the first publish they are readable and empty."""
    settings = settings_for(monkeypatch, mart_url, None, FINOPS_API_ALLOW_PRIVILEGED_LOGIN="true")
    note = check_access(settings) or ""
    assert "PRIVILEGED DATABASE LOGIN" in note and "have not been populated yet" not in note
    with live_api(settings) as api:
        costs = api.get("/api/v1/costs/domains")
        assert costs.status_code == 200, costs.text
        assert costs.json()["items"] == [] and costs.json()["total"] == 0
        freshness = api.get("/api/v1/freshness")
        assert freshness.status_code == 200
        assert freshness.json()["last_published_at"] is None and freshness.json()["months"] == []


def test_the_database_unreachable_fails_at_start_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finops_dagster.api.settings import SettingError

    settings = settings_for(monkeypatch, "postgresql://finops:s3cr3t-pw@127.0.0.1:9/finops", None)
    with pytest.raises(SettingError) as raised:
        check_access(settings)
    assert "127.0.0.1:9/finops is unreachable" in str(raised.value)
    assert "s3cr3t-pw" not in str(raised.value) and "s3cr3t-pw" not in repr(settings)


def test_what_used_to_be_a_500_is_a_400(api: LiveApi) -> None:
    _problem(
        api.get("/api/v1/costs/domains", params={"page": str(2**63)}), 400, "page: expected 1 to"
    )  # an OFFSET beyond PostgreSQL's bigint
    _problem(
        api.get("/api/v1/costs/domains", params={"page": str(10**30), "page_size": "1"}), 400, "page:"
    )
    for intervals in ("R1/P1M/0001-01-01", "R2/P3M/0001-02-01", "R12/P12M/1905-01-01", "R1/P1M/9999-12-31"):
        _problem(
            api.get("/api/v1/backstage/groups/GRP-A/cost", params={"intervals": intervals}), 400, "intervals:"
        )
    for absurd in ("Mon, 01 Jan 99999 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 -2359", "Mon, 1 Jan 0 0:0:0"):
        response = api.get("/api/v1/costs/domains", headers={"If-Modified-Since": absurd})
        assert response.status_code == 200, absurd  # an invalid date is ignored (RFC 9110 §13.1.3)


@pytest.mark.parametrize("raw", ["٢٠٢٥-٠١", "２０２５-０１", "2025-٠١", "𝟐𝟎𝟐𝟓-𝟎𝟏"])
def test_months_are_ascii_digits_only(api: LiveApi, raw: str) -> None:
    _problem(api.get("/api/v1/costs/domains", params={"from": raw}), 400, "from: expected a month as YYYY-MM")
    intervals = {"intervals": f"R2/P1M/{raw}-01"}
    _problem(api.get("/api/v1/backstage/groups/GRP-A/cost", params=intervals), 400, "intervals:")


def test_an_open_range_covers_at_most_240_months_from_its_given_end(
    api: LiveApi, published: Published
) -> None:
    def count(first: str, last: str) -> int:
        query = "SELECT count(*) FROM finops.mv_cost_domain_month WHERE period_month BETWEEN %s AND %s"
        return int(published.rows(query, (first, last))[0][0])

    def total(**bound: str) -> int:
        return int(api.get("/api/v1/costs/domains", params=bound).json()["total"])

    assert total(to="2025-04") == count("2005-05-01", "2025-04-01") > 0
    assert total(**{"from": "2005-04"}) == count("2005-04-01", "2025-03-01")  # April is past the cap
    assert total(to="2045-01") == count("2025-02-01", "2045-01-01")  # January is before it
    assert total(**{"from": "9999-01"}) == 0  # the far end held to 9999-12, not an overflow
