"""Writing the reference catalog and the application referential into the mart.

Domains, families, products and applications are upserted, never deleted: published relevés
of past months still name them. Rate cards, exchange rates and mapping rules are replaced as a whole, in one
transaction, so a run never prices with half of an edited rate file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from finops_dagster.reference.catalog import Catalog, Product
from finops_dagster.releve import UNALLOCATED_APPLICATION, UNALLOCATED_GROUP

UPSERT_DOMAIN = """
INSERT INTO finops.dim_domain (domain_id, label) VALUES (%s, %s)
ON CONFLICT (domain_id) DO UPDATE SET label = EXCLUDED.label
"""
UPSERT_FAMILY = """
INSERT INTO finops.dim_family (family_id, domain_id, label) VALUES (%s, %s, %s)
ON CONFLICT (family_id) DO UPDATE SET domain_id = EXCLUDED.domain_id, label = EXCLUDED.label
"""
UPSERT_PRODUCT = """
INSERT INTO finops.dim_product (product_id, family_id, label, usage_unit) VALUES (%s, %s, %s, %s)
ON CONFLICT (product_id) DO UPDATE
SET family_id = EXCLUDED.family_id, label = EXCLUDED.label, usage_unit = EXCLUDED.usage_unit
"""
INSERT_RATE = """
INSERT INTO finops.rate_card (product_id, valid_from, valid_to, unit_cost, currency, version)
VALUES (%s, %s, %s, %s, %s, %s)
"""
INSERT_RULE = """
INSERT INTO finops.application_mapping_rule
    (rule_id, domain_id, field, pattern, application_id, priority)
VALUES (%s, %s, %s, %s, %s, %s)
"""
INSERT_EXCHANGE_RATE = """
INSERT INTO finops.exchange_rate (period_month, from_currency, to_currency, rate, source)
VALUES (%s, %s, %s, %s, %s)
"""
UPSERT_VERSION = """
INSERT INTO finops.reference_version (kind, version, checksum) VALUES (%s, %s, %s)
ON CONFLICT (kind) DO UPDATE
SET version = EXCLUDED.version, checksum = EXCLUDED.checksum, loaded_at = now()
"""
UPSERT_GROUP = """
INSERT INTO finops.dim_application_group (group_id, label) VALUES (%s, %s)
ON CONFLICT (group_id) DO UPDATE SET label = EXCLUDED.label
"""
UPSERT_APPLICATION = """
INSERT INTO finops.dim_application (application_id, label, group_id, source) VALUES (%s, %s, %s, %s)
ON CONFLICT (application_id) DO UPDATE
SET label = EXCLUDED.label, group_id = EXCLUDED.group_id, source = EXCLUDED.source, updated_at = now()
"""


@dataclass(frozen=True)
class ApplicationRecord:
    application_id: str
    label: str
    group_id: str
    group_label: str


def load_catalog_into_mart(conn: psycopg.Connection, catalog: Catalog) -> None:
    """Replace the mart's reference tables with the catalog, atomically."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(UPSERT_DOMAIN, [(d.domain_id, d.label) for d in catalog.domains])
        cur.executemany(UPSERT_FAMILY, [(f.family_id, f.domain_id, f.label) for f in catalog.families])
        cur.executemany(
            UPSERT_PRODUCT, [(p.product_id, p.family_id, p.label, p.usage_unit) for p in catalog.products]
        )
        cur.execute("DELETE FROM finops.rate_card")
        cur.executemany(
            INSERT_RATE,
            [
                (r.product_id, r.valid_from, r.valid_to, r.unit_cost, r.currency, r.version)
                for r in catalog.rates
            ],
        )
        cur.execute("DELETE FROM finops.application_mapping_rule")
        cur.executemany(
            INSERT_RULE,
            [
                (r.rule_id, r.domain_id, r.field, r.pattern, r.application_id, r.priority)
                for r in catalog.rules
            ],
        )
        cur.execute("DELETE FROM finops.exchange_rate")
        cur.executemany(
            INSERT_EXCHANGE_RATE,
            [
                (r.period_month, r.from_currency, r.to_currency, r.rate, r.source)
                for r in catalog.exchange_rates
            ],
        )
        versions = sorted({rate.version for rate in catalog.rates})
        for filename, checksum in catalog.checksums.items():
            version = ",".join(versions) if filename == "rate_cards.csv" else checksum[:12]
            cur.execute(UPSERT_VERSION, (filename, version, checksum))
        _ensure_unallocated(cur)


def upsert_products(conn: psycopg.Connection, products: Iterable[Product]) -> None:
    """Products a source discovered (a provider's services): added, or relabelled, never deleted."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            UPSERT_PRODUCT, [(p.product_id, p.family_id, p.label, p.usage_unit) for p in products]
        )


def load_applications_into_mart(
    conn: psycopg.Connection, applications: Iterable[ApplicationRecord], *, source: str
) -> int:
    """Upsert the application referential; the unallocated bucket always exists."""
    count = 0
    with conn.transaction(), conn.cursor() as cur:
        _ensure_unallocated(cur)
        for app in applications:
            cur.execute(UPSERT_GROUP, (app.group_id, app.group_label))
            cur.execute(UPSERT_APPLICATION, (app.application_id, app.label, app.group_id, source))
            count += 1
    return count


def _ensure_unallocated(cur: psycopg.Cursor) -> None:
    cur.execute(UPSERT_GROUP, (UNALLOCATED_GROUP, "Unallocated"))
    cur.execute(
        UPSERT_APPLICATION,
        (
            UNALLOCATED_APPLICATION,
            "Unallocated costs (no application could be resolved)",
            UNALLOCATED_GROUP,
            "system",
        ),
    )
