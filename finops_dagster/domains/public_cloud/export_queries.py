"""The SQL the export reader runs in DuckDB, in the order it runs it.

1. Each file is scanned once into `charges`: its month's line items summed by every field a relevé
   depends on, as written (trimming and checks happen here, once per group, not per line item).
   With an allocation, a Parquet file's distinct tag sets are resolved first (reading one
   column is cheap there) and its charges are summed per application already; a CSV file's are
   summed by tag set (a second parse would double its cost) and placed after.
2. With an allocation: `tag_values` (the application tag of each distinct tag set) and `known`
   (the mart's applications) place what the scan did not (CHARGES_WITH_TAGS); `rule_inputs`
   gives Python what the mapping rules read of the charges still unplaced, and `ruled` holds
   what the rules said of those; `insert_allocated` hands every charge, allocated and summed by
   what makes a relevé, to the fold's table.
3. Without one: `DETAILED_GROUPS` keeps every group with its tags, for a caller that wants them.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from finops_dagster.domains.public_cloud.charges import RULE_FIELDS
from finops_dagster.domains.public_cloud.duckdb_columns import DECIMAL, identifier
from finops_dagster.releve import UNALLOCATED_APPLICATION

CREATE_CHARGES = f"""
    CREATE OR REPLACE TEMP TABLE charges (
        file_index INTEGER, problem VARCHAR, in_month BOOLEAN, other_month DATE, application VARCHAR,
        provider VARCHAR, service_name VARCHAR, service_category VARCHAR, charge_category VARCHAR,
        sku_id VARCHAR, sub_account_id VARCHAR, sub_account_name VARCHAR, resource_group VARCHAR,
        tags VARCHAR, currency VARCHAR, pricing_unit VARCHAR,
        cost {DECIMAL}, line_items BIGINT, quantified BIGINT, pricing_quantity {DECIMAL},
        currency_ok BOOLEAN
    )
"""
"""`currency_ok`: whether the billing currency is an ISO 4217 code, checked once per group as the
scan inserts it (a regular expression per charge in every later query would cost more than the
queries themselves)."""

CREATE_FILE_MONTHS = f"""
    CREATE OR REPLACE TEMP TABLE file_months (
        file_index INTEGER, month DATE, line_items BIGINT, cost {DECIMAL}
    )
"""
"""Each file's rows that belong to other months than the one read (by month): the ledger's third term."""

MOVE_OTHER_MONTHS = """
    INSERT INTO file_months
    SELECT file_index, other_month, sum(line_items), coalesce(sum(cost), 0) FROM charges
    WHERE other_month IS NOT NULL GROUP BY 1, 2
"""
DROP_OTHER_MONTHS = "DELETE FROM charges WHERE other_month IS NOT NULL"
"""The scan sums every row of its files, by month: the month read's rows stay in `charges`, the
others' leave it once counted."""

MOVE_UNPLACED = """
    INSERT INTO file_months
    SELECT file_index, $month, sum(line_items), coalesce(sum(cost), 0) FROM charges
    WHERE file_index = $index AND NOT in_month GROUP BY 1
"""
DROP_UNPLACED = "DELETE FROM charges WHERE file_index = $index AND NOT in_month"
RECORD_REFUSED = "INSERT INTO file_months SELECT $index, $month, $rows, 0 WHERE $rows > 0"
"""Rows without a plausible period, and lines DuckDB refused, of a file whose first month is
another: that month's rejects, counted here for the ledger."""


OTHER_MONTHS_BY_FILE = """
    SELECT file_index, month, sum(line_items)::BIGINT, sum(cost) FROM file_months GROUP BY 1, 2 ORDER BY 1, 2
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

READABLE = "problem IS NULL AND currency_ok"
PLACED_BY_FILE = (
    f"SELECT file_index, sum(line_items)::BIGINT, sum(cost) FROM charges WHERE {READABLE} GROUP BY 1"
)
"""Each file's rows of the month that become relevés: the ledger's first term."""
REJECT_COST_LIMIT = "10^18"
"""A reject's cost column (numeric(24, 6)) holds amounts below this; a larger one stays in the
reject's payload only."""

PROBLEM_FILES = f"SELECT DISTINCT file_index FROM charges WHERE NOT ({READABLE}) ORDER BY 1"

LINE_ITEMS = "SELECT sum(line_items)::BIGINT FROM charges"

SOURCE_COSTS = f"""
    SELECT upper(trim(currency)), sum(cost) FROM charges
    WHERE currency_ok AND cost IS NOT NULL AND (problem IS NULL OR abs(cost) < {REJECT_COST_LIMIT})
    GROUP BY 1 ORDER BY 1
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

CREATE_TAG_TABLES = (
    "CREATE OR REPLACE TEMP TABLE tag_values (tags VARCHAR, tag_value VARCHAR)",
    "CREATE OR REPLACE TEMP TABLE tag_applications (tags VARCHAR, application_id VARCHAR)",
)
CREATE_WANTED_KEYS = (
    "CREATE OR REPLACE TEMP TABLE wanted_keys AS SELECT unnest($keys) AS key, unnest($ranks) AS rank"
)
CREATE_KNOWN = "CREATE OR REPLACE TEMP TABLE known AS SELECT unnest($applications) AS application_id"
"""`tag_values`: the application tag's value (or NULL) of each distinct tag set resolved so far;
`tag_applications`: those that name a known application; `wanted_keys`: the configured tag keys,
normalised, in order; `known`: the mart's applications."""


def new_tags(source: str) -> str:
    """Distinct tag sets of `source` (a query with a `tags` column) not resolved yet."""
    return f"""
    CREATE OR REPLACE TEMP TABLE new_tags AS
    SELECT DISTINCT tags FROM ({source})
    WHERE tags IS NOT NULL AND tags NOT IN (SELECT tags FROM tag_values)
    """


NOT_PLAIN_JSON = r"[^\x20-\x7E]|\\|,\s*[}\]]"
"""What sends a tag set to Python rather than DuckDB: a character outside printable ASCII, an escape
or a trailing comma (which DuckDB accepts and Python does not). On the rest, DuckDB's JSON reading,
trim and lower give what Python's json, strip and lower give."""

RESOLVE_JSON_TAGS = f"""
    INSERT INTO tag_values
    WITH objects AS (
        SELECT tags,
               TRY_CAST(TRY_CAST(CASE WHEN starts_with(trim(tags), '{{') THEN trim(tags)
                                      ELSE '{{' || trim(tags) || '}}' END AS JSON)
                        AS MAP(VARCHAR, JSON)) AS entries
        FROM new_tags
        WHERE NOT regexp_matches(tags, '{NOT_PLAIN_JSON}')
    ), readable AS (
        SELECT tags, entries FROM objects WHERE entries IS NOT NULL
    ), pairs AS (
        SELECT tags, unnest(map_keys(entries)) AS key, unnest(map_values(entries)) AS value,
               generate_subscripts(map_keys(entries), 1) AS position
        FROM readable
    ), candidates AS (
        SELECT p.tags, w.rank, p.position, p.value
        FROM pairs AS p
        JOIN wanted_keys AS w ON w.key = replace(lower(trim(p.key)), '_', '-')
        WHERE p.value IS NOT NULL
    ), texts AS (
        SELECT tags FROM readable
        WHERE tags NOT IN (SELECT tags FROM candidates WHERE json_type(value) <> 'VARCHAR')
    ), chosen AS (
        SELECT tags, arg_min(trim(value ->> '$'), rank * 1000000 + position) AS value
        FROM candidates WHERE trim(value ->> '$') <> '' GROUP BY tags
    )
    SELECT x.tags, c.value FROM texts AS x LEFT JOIN chosen AS c USING (tags)
"""
"""The application tag of JSON tag sets (braces optional), as tags.parse_tags and tags.tag_value
read them: the first configured key present with a value, keys compared without case, spaces or
the `-`/`_` difference. Left to Python (`UNRESOLVED_TAGS`): sets that are not plain (NOT_PLAIN_JSON),
that DuckDB cannot read as one object (invalid JSON, a key written twice), or whose application
key holds something other than a string."""

UNRESOLVED_TAGS = "SELECT tags FROM new_tags WHERE tags NOT IN (SELECT tags FROM tag_values)"

INSERT_TAG_VALUES = "INSERT INTO tag_values SELECT unnest($tags), unnest($values)"

REFRESH_TAG_APPLICATIONS = """
    INSERT INTO tag_applications
    SELECT t.tags, k.application_id
    FROM new_tags AS n
    JOIN tag_values AS t USING (tags)
    JOIN known AS k ON k.application_id = upper(trim(t.tag_value))
"""

UNPLACED_TAGS = f"SELECT tags FROM charges WHERE application IS NULL AND {READABLE}"
"""Tag sets of the charges no file placed while scanning (CSV files are summed by raw tags)."""

DETAILED_GROUPS = f"""
    SELECT NULLIF(trim(provider), ''), NULLIF(trim(service_name), ''), NULLIF(trim(service_category), ''),
           NULLIF(trim(charge_category), ''), NULLIF(trim(sku_id), ''), NULLIF(trim(sub_account_id), ''),
           NULLIF(trim(sub_account_name), ''), NULLIF(trim(resource_group), ''), tags,
           upper(trim(currency)), NULLIF(trim(pricing_unit), ''),
           sum(cost), sum(line_items)::BIGINT,
           CASE WHEN sum(quantified) = sum(line_items) THEN sum(pricing_quantity) END
    FROM charges WHERE {READABLE}
    GROUP BY ALL
    ORDER BY ALL
"""


RULE_COLUMNS = {"tag": "NULLIF(trim(t.tag_value), '')"} | {
    name: f"NULLIF(trim(c.{name}), '')" for name in RULE_FIELDS
}
"""What a mapping rule may read → how a charge of CHARGES_WITH_TAGS gives it, trimmed as the
rules see it."""

CHARGES_WITH_TAGS = """
    FROM charges AS c
    LEFT JOIN tag_values AS t ON t.tags = c.tags
    LEFT JOIN known AS k ON k.application_id = upper(trim(t.tag_value))
"""
"""Every charge with the application tag of its tag set (`t`) and the known application it names
(`k`): the scan already placed a Parquet file's tagged charges (`c.application`, no tags kept);
the tags of the others were resolved after it."""

UNPLACED = "c.application IS NULL AND k.application_id IS NULL"
"""A charge no tag placed: the mapping rules decide."""


def _rule_value(field: str, reads: AbstractSet[str]) -> str:
    """A field the rules read, or NULL where none reads it: combinations differing only there are one."""
    return RULE_COLUMNS[field] if field in reads else "NULL::VARCHAR"


def rule_inputs(reads: AbstractSet[str]) -> str:
    """What the mapping rules read of the charges no tag placed (in RULE_COLUMNS order), then their
    application tag's value and line items: once per distinct combination, never per charge. The
    tag's value is there for the report of unknown tag values even where no rule reads it, so a
    combination of what the rules read may come more than once."""
    values = ", ".join(_rule_value(field, reads) for field in RULE_COLUMNS)
    return f"""
    SELECT {values}, {RULE_COLUMNS["tag"]}, sum(c.line_items)::BIGINT
    {CHARGES_WITH_TAGS}
    WHERE {UNPLACED} AND {READABLE}
    GROUP BY ALL
    """


CREATE_RULED = """
    CREATE TEMP TABLE ruled AS
    SELECT unnest($tag_value) AS tag_value, unnest($sub_account_id) AS sub_account_id,
           unnest($sub_account_name) AS sub_account_name, unnest($resource_group) AS resource_group,
           unnest($provider) AS provider, unnest($service_name) AS service_name,
           unnest($application) AS application
"""
"""What the rules said of each distinct combination they read (application NULL: none matched)."""
RULED_COLUMNS = ("tag_value", *RULE_FIELDS)
"""`ruled`'s columns for what the rules read, in RULE_COLUMNS order."""


def insert_allocated(table: str, reads: AbstractSet[str]) -> str:
    """Every readable charge with its application (its tag's, else the rules', else the
    unallocated one) into the fold's `table`, summed by what makes a relevé and trimmed (once per
    group, never per line item). A charge's unit and quantity go with it; the fold keeps a
    quantity only where a relevé's charges share one unit. Returns how many rows it inserted."""
    matches = " AND ".join(
        f"r.{name} IS NOT DISTINCT FROM {_rule_value(field, reads)}"
        for field, name in zip(RULE_COLUMNS, RULED_COLUMNS, strict=True)
    )
    return f"""
    INSERT INTO {identifier(table)} (source, application, provider, service_name, service_category,
                         charge_category, sku_id, currency, pricing_unit, cost, line_items,
                         quantified, pricing_quantity)
    SELECT $source, coalesce(c.application, k.application_id, r.application, '{UNALLOCATED_APPLICATION}'),
           coalesce(NULLIF(trim(c.provider), ''), $unknown_provider),
           NULLIF(trim(c.service_name), ''),
           NULLIF(trim(c.service_category), ''),
           CASE WHEN NULLIF(trim(c.service_name), '') IS NULL THEN NULLIF(trim(c.charge_category), '') END,
           NULLIF(trim(c.sku_id), ''),
           upper(trim(c.currency)),
           NULLIF(trim(c.pricing_unit), ''),
           sum(c.cost), sum(c.line_items)::BIGINT, sum(c.quantified)::BIGINT, sum(c.pricing_quantity)
    {CHARGES_WITH_TAGS}
    LEFT JOIN ruled AS r ON {UNPLACED} AND {matches}
    WHERE {READABLE}
    GROUP BY ALL
    """
