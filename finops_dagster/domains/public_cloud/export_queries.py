"""The SQL the export reader runs in DuckDB, in the order it runs it.

1. Each file is scanned once into `charges`: its month's line items summed by every field a relevé
   depends on, as written (trimming and checks happen here, once per group, not per line item).
2. With an allocation: `tag_values` (the application tag of each distinct tag set) and `known`
   (the mart's applications) place what they can; `tagged` holds the charges summed per known
   application, or with what the mapping rules read where the tag names none; `ruled` holds what
   the rules said of those; `RELEVE_GROUPS` sums everything per application × product × currency.
3. Without one: `DETAILED_GROUPS` keeps every group with its tags, for a caller that wants them.
"""

from __future__ import annotations

from finops_dagster.domains.public_cloud.duckdb_columns import DECIMAL
from finops_dagster.releve import UNALLOCATED_APPLICATION

CREATE_CHARGES = f"""
    CREATE OR REPLACE TEMP TABLE charges (
        file_index INTEGER, problem VARCHAR, in_month BOOLEAN,
        provider VARCHAR, service_name VARCHAR, service_category VARCHAR, charge_category VARCHAR,
        sku_id VARCHAR, sub_account_id VARCHAR, sub_account_name VARCHAR, resource_group VARCHAR,
        tags VARCHAR, currency VARCHAR, pricing_unit VARCHAR,
        cost {DECIMAL}, line_items BIGINT, pricing_quantity {DECIMAL}
    )
"""

DROP_FILES_OUTSIDE_MONTH = """
    DELETE FROM charges WHERE file_index NOT IN (SELECT file_index FROM charges WHERE in_month)
"""
"""A file whose only rows of the month are unreadable-period rows holds nothing for the month."""

FILES_WITH_UNPLACED_ROWS = "SELECT DISTINCT file_index FROM charges WHERE NOT in_month ORDER BY 1"
"""Files with rows whose period cannot be read: placed in their file's first readable month."""

HOLDS_UNPLACED_ROWS = "SELECT count(*) > 0 FROM charges WHERE file_index = $index AND NOT in_month"

VALID_CURRENCY = "coalesce(regexp_full_match(upper(trim(currency)), '[A-Z]{3}'), false)"

CURRENCY_PROBLEM = (
    f"CASE WHEN NOT {VALID_CURRENCY} "
    "THEN 'billing currency ' || coalesce(trim(currency), '(empty)') || ' is not an ISO 4217 code' END"
)
"""Checked once per group on the first read; per row only when reading a file's unreadable rows."""

READABLE = f"problem IS NULL AND {VALID_CURRENCY}"

PROBLEM_FILES = f"SELECT DISTINCT file_index FROM charges WHERE NOT ({READABLE}) ORDER BY 1"

LINE_ITEMS = "SELECT sum(line_items)::BIGINT FROM charges"

SOURCE_COSTS = f"""
    SELECT upper(trim(currency)), sum(cost) FROM charges
    WHERE {VALID_CURRENCY} AND cost IS NOT NULL GROUP BY 1 ORDER BY 1
"""
"""What the month's rows cost per billing currency, readable or not, straight from the scan: the
independent side of the reconciliation (relevés and rejects must add back up to it)."""

DETAILED_PROBLEMS = """
    SELECT row_number, problem, cost, currency, payload
    FROM unreadable WHERE rank <= $limit ORDER BY row_number
"""

SUMMARISED_PROBLEMS = """
    SELECT problem, currency, count(*), sum(cost), min(row_number), max(row_number)
    FROM unreadable WHERE rank > $limit GROUP BY problem, currency ORDER BY problem, currency
"""

CATEGORY_COUNTS = f"""
    SELECT coalesce(NULLIF(trim(charge_category), ''), '(none)'), sum(line_items)::BIGINT
    FROM charges WHERE {READABLE} GROUP BY 1 ORDER BY 1
"""

DISTINCT_TAGS = f"SELECT DISTINCT tags FROM charges WHERE {READABLE} AND tags IS NOT NULL"

DETAILED_GROUPS = f"""
    SELECT NULLIF(trim(provider), ''), NULLIF(trim(service_name), ''), NULLIF(trim(service_category), ''),
           NULLIF(trim(charge_category), ''), NULLIF(trim(sku_id), ''), NULLIF(trim(sub_account_id), ''),
           NULLIF(trim(sub_account_name), ''), NULLIF(trim(resource_group), ''), tags,
           upper(trim(currency)), NULLIF(trim(pricing_unit), ''),
           sum(cost), sum(line_items)::BIGINT, sum(pricing_quantity)
    FROM charges WHERE {READABLE}
    GROUP BY ALL
    ORDER BY ALL
"""


def _unless_tagged(expression: str) -> str:
    """What only the mapping rules need: dropped where the tag already named the application, so
    those charges sum per application."""
    return f"CASE WHEN k.application_id IS NULL THEN {expression} END"


CREATE_TAGGED = f"""
    CREATE TEMP TABLE tagged AS
    SELECT k.application_id AS application,
           {_unless_tagged("NULLIF(trim(t.tag_value), '')")} AS tag_value,
           NULLIF(trim(c.provider), '') AS provider,
           NULLIF(trim(c.service_name), '') AS service_name,
           NULLIF(trim(c.service_category), '') AS service_category,
           CASE WHEN NULLIF(trim(c.service_name), '') IS NULL
                THEN NULLIF(trim(c.charge_category), '') END AS charge_category,
           NULLIF(trim(c.sku_id), '') AS sku_id,
           {_unless_tagged("NULLIF(trim(c.sub_account_id), '')")} AS sub_account_id,
           {_unless_tagged("NULLIF(trim(c.sub_account_name), '')")} AS sub_account_name,
           {_unless_tagged("NULLIF(trim(c.resource_group), '')")} AS resource_group,
           upper(trim(c.currency)) AS currency,
           NULLIF(trim(c.pricing_unit), '') AS pricing_unit,
           sum(c.cost) AS cost,
           sum(c.line_items)::BIGINT AS line_items,
           sum(c.pricing_quantity) AS pricing_quantity
    FROM charges AS c
    LEFT JOIN tag_values AS t ON t.tags = c.tags
    LEFT JOIN known AS k ON k.application_id = upper(trim(t.tag_value))
    WHERE c.problem IS NULL AND {VALID_CURRENCY.replace("currency", "c.currency")}
    GROUP BY ALL
"""

RULE_INPUTS = """
    SELECT DISTINCT tag_value, sub_account_id, sub_account_name, resource_group, provider, service_name
    FROM tagged WHERE application IS NULL
"""
"""What the mapping rules read, once per distinct combination (not per charge)."""

CREATE_RULED = """
    CREATE TEMP TABLE ruled AS
    SELECT unnest($tag_value) AS tag_value, unnest($sub_account_id) AS sub_account_id,
           unnest($sub_account_name) AS sub_account_name, unnest($resource_group) AS resource_group,
           unnest($provider) AS provider, unnest($service_name) AS service_name,
           unnest($application) AS application
"""

_PLACED = """
    FROM tagged AS g
    LEFT JOIN ruled AS r
      ON g.application IS NULL
     AND r.tag_value IS NOT DISTINCT FROM g.tag_value
     AND r.sub_account_id IS NOT DISTINCT FROM g.sub_account_id
     AND r.sub_account_name IS NOT DISTINCT FROM g.sub_account_name
     AND r.resource_group IS NOT DISTINCT FROM g.resource_group
     AND r.provider IS NOT DISTINCT FROM g.provider
     AND r.service_name IS NOT DISTINCT FROM g.service_name
"""

_ONE_UNIT = (
    "bool_and(g.pricing_quantity IS NOT NULL AND g.pricing_unit IS NOT NULL) "
    "AND count(DISTINCT g.pricing_unit) = 1"
)

RELEVE_GROUPS = f"""
    SELECT coalesce(g.application, r.application, '{UNALLOCATED_APPLICATION}') AS application,
           g.provider, g.service_name, min(g.service_category), g.charge_category, g.sku_id, g.currency,
           CASE WHEN {_ONE_UNIT} THEN min(g.pricing_unit) END,
           sum(g.cost), sum(g.line_items)::BIGINT,
           CASE WHEN {_ONE_UNIT} THEN sum(g.pricing_quantity) END
    {_PLACED}
    GROUP BY 1, g.provider, g.service_name, g.charge_category, g.sku_id, g.currency
    ORDER BY 1, 2, 3, 5, 6, 7
"""
"""One row per application × product × billing currency: the quantity where its charges share one
pricing unit (the relevé's unit), else none (the relevé then counts line items)."""

UNKNOWN_TAGS = f"""
    SELECT g.tag_value, sum(g.line_items)::BIGINT
    {_PLACED}
    WHERE g.application IS NULL AND r.application IS NULL AND g.tag_value IS NOT NULL
    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20
"""
"""Application-tag values that name no known application and that no rule placed: a tagging or
referential problem for the FinOps team to fix."""
