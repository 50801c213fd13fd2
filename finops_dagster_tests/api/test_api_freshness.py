"""Freshness and conditional requests: the last publish per month from the run ledger, the current
month, and ETag / Last-Modified / 304 tied to the last successful publish."""

from __future__ import annotations

import datetime as dt
import time
from email.utils import format_datetime, parsedate_to_datetime

import pytest

import finops_dagster.api.backstage as backstage
import finops_dagster.api.response_cache as response_cache
import finops_dagster.api.routes as routes
from finops_dagster.api.models import Freshness
from finops_dagster_tests.support.api_mart import APRIL, Published
from finops_dagster_tests.support.live_api import LiveApi

# straight from the base tables, as the superuser: what the reader's narrow view must reproduce
LAST_PUBLISH_PER_MONTH = """
SELECT to_char(l.period_month, 'YYYY-MM'), max(r.ended_at),
       (array_agg(r.run_id ORDER BY r.ended_at DESC))[1], count(DISTINCT r.run_id)
FROM finops.etl_runs AS r JOIN finops.domain_load AS l ON l.run_id = r.run_id AND l.published_at IS NOT NULL
WHERE r.status = 'SUCCESS'
GROUP BY l.period_month ORDER BY l.period_month
"""
LAST_PUBLISH = (
    "SELECT run_id, ended_at FROM finops.etl_runs WHERE status = 'SUCCESS' ORDER BY ended_at DESC LIMIT 1"
)


def test_freshness_is_the_last_successful_publish_of_each_month(api: LiveApi, published: Published) -> None:
    body = api.get("/api/v1/freshness").json()
    Freshness.model_validate(body)
    assert [
        (m["period"], dt.datetime.fromisoformat(m["last_published_at"]), m["last_run_id"], m["publish_count"])
        for m in body["months"]
    ] == published.rows(LAST_PUBLISH_PER_MONTH)
    run_id, ended_at = published.rows(LAST_PUBLISH)[0]
    assert body["last_run_id"] == run_id
    assert dt.datetime.fromisoformat(body["last_published_at"]) == ended_at
    # March was published by both runs; the months are over (the real clock is past 2025)
    assert [m["publish_count"] for m in body["months"]] == [1, 1, 2, 1]
    assert all(m["complete"] and not m["current_month"] for m in body["months"])
    assert body["last_complete_month"] == "2025-04"


def test_the_current_month_is_flagged_incomplete(api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    today = dt.datetime(2025, 4, 17, 9, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(routes, "utc_now", lambda: today)
    monkeypatch.setattr(backstage, "utc_now", lambda: today)
    monkeypatch.setattr(response_cache, "utc_now", lambda: today)  # answers kept per running month
    body = api.get("/api/v1/freshness").json()
    assert body["current_month"] == "2025-04"
    assert body["last_complete_month"] == "2025-03"
    april = body["months"][-1]
    assert april["period"] == "2025-04" and april["current_month"] and not april["complete"]
    billing = api.get("/api/v1/backstage/last-complete-billing-date").json()
    assert billing == {"date": "2025-03-31", "grain": "month"}


def test_responses_carry_validators_tied_to_the_last_publish(api: LiveApi, published: Published) -> None:
    _, ended_at = published.rows(LAST_PUBLISH)[0]
    for path in ("/api/v1/costs/domains", "/api/v1/freshness", "/api/v1/backstage/groups"):
        response = api.get(path)
        assert response.status_code == 200
        assert response.headers["ETag"].startswith('W/"')
        assert parsedate_to_datetime(response.headers["Last-Modified"]) == ended_at.replace(microsecond=0)
        assert response.headers["Cache-Control"] == "private, no-cache"
    one = api.get("/api/v1/costs/domains").headers["ETag"]
    assert api.get("/api/v1/costs/domains").headers["ETag"] == one  # stable between publishes
    assert api.get("/api/v1/costs/domains", params={"grain": "quarter"}).headers["ETag"] != one  # per URL


def test_matching_conditional_requests_get_304(api: LiveApi) -> None:
    first = api.get("/api/v1/costs/applications", params={"group": "GRP-A"})
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]

    again = api.get("/api/v1/costs/applications", params={"group": "GRP-A"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    listed = api.get(
        "/api/v1/costs/applications",
        params={"group": "GRP-A"},
        headers={"If-None-Match": f'"other", {etag.removeprefix("W/")}'},
    )
    assert listed.status_code == 304  # weak comparison, any of a list

    since = api.get(
        "/api/v1/costs/applications", params={"group": "GRP-A"}, headers={"If-Modified-Since": last_modified}
    )
    assert since.status_code == 304
    earlier = format_datetime(parsedate_to_datetime(last_modified) - dt.timedelta(seconds=1), usegmt=True)
    assert (
        api.get(
            "/api/v1/costs/applications", params={"group": "GRP-A"}, headers={"If-Modified-Since": earlier}
        ).status_code
        == 200
    )
    # If-None-Match wins over If-Modified-Since (RFC 9110): a stale tag means 200 even if not modified
    assert (
        api.get(
            "/api/v1/costs/applications",
            params={"group": "GRP-A"},
            headers={"If-None-Match": 'W/"stale"', "If-Modified-Since": last_modified},
        ).status_code
        == 200
    )
    # another URL's tag does not match
    assert (
        api.get(
            "/api/v1/costs/applications", params={"group": "GRP-B"}, headers={"If-None-Match": etag}
        ).status_code
        == 200
    )


def test_a_new_publish_changes_the_validators(api: LiveApi, published: Published) -> None:
    before = api.get("/api/v1/backstage/groups/GRP-B/cost", params={"intervals": "R2/P1M/2025-05-01"})
    costs_before = api.get("/api/v1/costs/domains").json()
    run_id = published.publish(APRIL, APRIL)
    time.sleep(api.settings.version_ttl_ms / 1000)  # the API re-reads the version at most this often

    after = api.get(
        "/api/v1/backstage/groups/GRP-B/cost",
        params={"intervals": "R2/P1M/2025-05-01"},
        headers={"If-None-Match": before.headers["ETag"]},
    )
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.json() == before.json()  # same sources, same relevés: only the publish is newer
    assert api.get("/api/v1/costs/domains").json() == costs_before
    freshness = api.get("/api/v1/freshness").json()
    assert freshness["last_run_id"] == run_id
    assert {m["period"]: m["last_run_id"] for m in freshness["months"]}["2025-04"] == run_id
    assert {m["period"]: m["last_run_id"] for m in freshness["months"]}["2025-03"] != run_id
