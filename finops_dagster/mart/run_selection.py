"""What fact_releve needs from the run it is part of: the domain assets it publishes.

`fact_releve` publishes the rows the domain assets of the same run staged, so a run that selects it
without any of them (the UI's *Materialize* on `fact_releve` alone) has nothing to publish. It is
refused at the start of the step, before the mart is touched, with what to run instead.
"""

from collections.abc import Collection

from dagster import AssetKey, Failure

PUBLISH_JOB = "publish_months"


def refuse_without_domains(selected: Collection[AssetKey] | None, domains: Collection[AssetKey]) -> None:
    """Raise when the run's asset selection holds no domain (none or empty: the whole job, which holds
    them)."""
    if not selected or any(key in selected for key in domains):
        return
    raise Failure(
        description=(
            "fact_releve publishes what the domain assets of the same run loaded, and this run selects "
            f"none of them ({', '.join(key.to_user_string() for key in domains)}); nothing was changed. "
            f"Publish months with the job {PUBLISH_JOB} (Jobs → {PUBLISH_JOB} → Materialize), or select "
            "fact_releve with its upstream assets ('*fact_releve')"
        ),
        allow_retries=False,
    )
