"""What a month's published numbers were computed from, as fingerprints of its inputs.

Recorded with every publish of a month (finops.month_status.inputs) and with every restatement, so a
restatement can say which input changed: the source data (what each domain load read from its
sources: records, cost, quantities per unit), the rate cards valid for the month, the mapping rules,
or the allocation rules valid for the month. Each fingerprint is an md5 of the rows in a fixed order,
computed by PostgreSQL from what the mart holds inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt

import psycopg

SOURCE_DATA = "source_data"
RATE_CARD = "rate_card"
MAPPING = "mapping"
ALLOCATION_RULE = "allocation_rule"
INPUTS: tuple[str, ...] = (SOURCE_DATA, RATE_CARD, MAPPING, ALLOCATION_RULE)
DIRECT_INPUTS = frozenset({SOURCE_DATA, RATE_CARD, MAPPING})
"""The inputs of the direct view; the allocated view depends on them and on the allocation rules."""

# The published load of each domain: the latest published one (in the publish transaction, this
# run's loads, published now).
FINGERPRINTS = """
WITH loads AS (
    SELECT DISTINCT ON (domain_id) domain_id, source_record_count, source_costs, source_totals
    FROM finops.domain_load
    WHERE period_month = %(month)s AND published_at IS NOT NULL
    ORDER BY domain_id, published_at DESC
)
SELECT
    (SELECT md5(coalesce(string_agg(concat_ws('|', domain_id, source_record_count, source_costs::text,
                                              source_totals::text), ';' ORDER BY domain_id), ''))
     FROM loads) AS source_data,
    (SELECT md5(coalesce(string_agg(concat_ws('|', product_id, unit_cost, currency, version), ';'
                                    ORDER BY product_id, valid_from), ''))
     FROM finops.rate_card
     WHERE valid_from <= %(month)s AND (valid_to IS NULL OR %(month)s < valid_to)) AS rate_card,
    (SELECT md5(coalesce(string_agg(concat_ws('|', rule_id, domain_id, field, pattern, application_id,
                                              priority), ';' ORDER BY rule_id), ''))
     FROM finops.application_mapping_rule) AS mapping,
    (SELECT md5(coalesce(string_agg(concat_ws('|', rule_id, version, sequence, source_application,
                                              source_domain, source_family, source_product, target_kind,
                                              targets, method, basis_product), ';'
                                    ORDER BY rule_id, version), ''))
     FROM finops.allocation_rule
     WHERE valid_from <= %(month)s AND (valid_to IS NULL OR %(month)s < valid_to)) AS allocation_rule,
    (SELECT coalesce(string_agg(DISTINCT version, ',' ORDER BY version), '')
     FROM finops.rate_card
     WHERE valid_from <= %(month)s AND (valid_to IS NULL OR %(month)s < valid_to)) AS rate_card_versions,
    (SELECT coalesce(string_agg(rule_id || ' ' || version, ',' ORDER BY rule_id), '')
     FROM finops.allocation_rule
     WHERE valid_from <= %(month)s AND (valid_to IS NULL OR %(month)s < valid_to)) AS allocation_rule_versions
"""


def month_inputs(conn: psycopg.Connection, month: dt.date) -> dict[str, str]:
    """The fingerprints of the month's inputs (plus the rate card and rule versions, for people)."""
    cursor = conn.execute(FINGERPRINTS, {"month": month})
    row = cursor.fetchone()
    names = [column.name for column in cursor.description or ()]
    return dict(zip(names, row or (), strict=True))


def changed_inputs(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The inputs whose fingerprints differ (an input the earlier publish did not record counts as
    changed: a month published before fingerprints were kept)."""
    return [name for name in INPUTS if before.get(name) != after.get(name)]
