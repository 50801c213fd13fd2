"""THE monthly partitions definition, shared by every domain asset and fact_releve.

`end_offset=1` makes the current, still incomplete month a partition, so the nightly run
can publish month-to-date figures. The first month is a setting (`FINOPS_FIRST_MONTH`, YYYY-MM,
default 2020-01) so a deployment can backfill as far back as its sources go; keys are the months'
first days whatever the start, so moving it earlier only adds partitions and never re-keys history.
"""

import datetime as dt

from dagster import BackfillPolicy, MonthlyPartitionsDefinition

from finops_dagster.settings import first_month

FIRST_MONTH: dt.date = first_month()

monthly_partitions = MonthlyPartitionsDefinition(start_date=FIRST_MONTH.isoformat(), end_offset=1)

RUNS_WITH_MONTHS = BackfillPolicy.single_run()
"""The backfill policy of the unpartitioned assets a monthly run also selects (reference data,
applications, native snapshots, views). They run once per run whatever its months, which is what
single-run means for them; `dagster asset materialize --partition-range` refuses a selection
holding any asset without a single-run policy."""
