"""The jobs the pipeline offers by name: what the schedule runs, and what a person runs from the UI.

Both select every asset and check except the freshness check, which judges the night as of the
morning's deadline and so runs on its own (checks/freshness.py). `fact_releve` publishes what the
domain assets of the same run loaded, so publishing from the UI means running the domains, the
publish and the views together: `publish_months` is that selection under a name the Jobs page shows.
"""

from __future__ import annotations

from dagster import AssetCheckKey, AssetSelection, define_asset_job

from finops_dagster.checks.freshness import CHECK_NAME as FRESHNESS_CHECK
from finops_dagster.mart.assets import FACT_RELEVE
from finops_dagster.mart.publish import CLOSED_MONTHS_TAG, RESTATE

PIPELINE = AssetSelection.all() - AssetSelection.checks(
    AssetCheckKey(FACT_RELEVE, FRESHNESS_CHECK)
)
"""Reference data, every enabled domain, the publish, the views and their checks."""

nightly_job = define_asset_job(
    "finops_nightly",
    selection=PIPELINE,
    description="Every domain, the publish, the views and all checks, over the run's months.",
)

publish_months_job = define_asset_job(
    "publish_months",
    selection=PIPELINE,
    description=(
        "Publish months from the UI: pick the months (Materialize → partitions, one run for a range), "
        "and every enabled domain, the publish and the views run together with their checks."
    ),
)

restate_months_job = define_asset_job(
    "restate_months",
    selection=PIPELINE,
    tags={CLOSED_MONTHS_TAG: RESTATE},
    description=(
        "Run months again, closed ones included: an open month is published as usual, a closed one gets "
        "a restatement (its new version and what changes, by input), published only once approved "
        "(the job approve_restatement)."
    ),
)
