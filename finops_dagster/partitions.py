"""THE monthly partitions definition, shared by every domain asset and fact_releve.

`end_offset=1` makes the current, still incomplete month a partition, so the nightly run
can publish month-to-date figures. The start is fixed: moving it would re-key history.
"""

from dagster import MonthlyPartitionsDefinition

FIRST_MONTH = "2024-01-01"

monthly_partitions = MonthlyPartitionsDefinition(start_date=FIRST_MONTH, end_offset=1)
