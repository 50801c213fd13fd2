"""The allocation of one month at scale: the engine alone, then the publish's allocation step.

    python -m benchmarks.allocation [--applications 3000] [--lines 100000] [--postgres-url URL] [--seed 42]

A month of `--lines` direct relevés (applications × products of the reference catalog, every domain,
with an UNALLOCATED share per product) and rules shaped like the demo's: each domain's UNALLOCATED
cost in proportion to its applications' own cost, a platform split evenly over a group, then by fixed
shares, then by the quantity of a product. Measured:

- the engine (`allocation.engine.allocate_month`) on the month's lines in memory;
- `mart.allocation.allocate_published_month` on a fresh database `finops_bench_<pid>` (migrated,
  catalog, applications, the month's fact_releve rows COPYed in): reading the month, the engine,
  COPY of the moves and of the allocated lines — what the publish transaction adds for a month;
- the baseline, on the same database: PostgreSQL's own `GROUP BY` of the month (the read the
  allocation starts from) and a `CREATE TABLE … AS` of it (a write of as many rows as the allocated
  table), so the ratio says what the allocation costs beyond moving the month's rows once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
from decimal import Decimal

import psycopg

from benchmarks.harness import DEFAULT_SERVER, bench_database, load_average, machine, n, s, table
from finops_dagster.allocation.engine import CostLine, allocate_month
from finops_dagster.allocation.rules import COLUMNS, rules_of_month
from finops_dagster.mart.allocation import DIRECT_LINES, allocate_published_month, read_rules, store_rules
from finops_dagster.mart.migrations import apply_migrations
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.reference.loader import (
    ApplicationRecord,
    load_applications_into_mart,
    load_catalog_into_mart,
)

MONTH = dt.date(2026, 10, 1)
GROUPS = 20
PLATFORM = "PLATFORM"


def rules_rows(domains: list[str], basis_product: str) -> list[tuple[int, dict[str, str]]]:
    texts = [
        *(
            f"UNALLOCATED-{domain.upper()},v1,10,2020-01-01,,UNALLOCATED,{domain},,,domain,{domain},proportional,"
            for domain in domains
        ),
        f"PLATFORM-EVEN,v1,20,2020-01-01,,{PLATFORM},,,,group,GRP-00,even,",
        "APP-00001-FIXED,v1,30,2020-01-01,,APP-00001,,,,applications,"
        "APP-00002=50;APP-00003=30;APP-00004=20,fixed,",
        f"APP-00005-QUANTITY,v1,40,2020-01-01,,APP-00005,,,,group,GRP-01,quantity,{basis_product}",
    ]
    return [(line, dict(zip(COLUMNS, text.split(","), strict=True))) for line, text in enumerate(texts, 2)]


def month_lines(
    applications: list[str], products: list[tuple[str, str, str, str]], count: int, seed: int
) -> list[tuple]:
    """(application, product, family, domain, unit, cost, quantity), distinct by application × product."""
    rng = random.Random(seed)
    pairs: set[tuple[str, int]] = set()
    while len(pairs) < count:
        pairs.add((rng.choice(applications), rng.randrange(len(products))))
    rows = []
    for application, index in sorted(pairs):
        product, family, domain, unit = products[index]
        quantity = Decimal(rng.randrange(1, 100_000)) / 100
        rows.append((application, product, family, domain, unit, quantity * Decimal("1.7"), quantity))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=3000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    catalog = load_catalog()
    families = {family.family_id: family.domain_id for family in catalog.families}
    products = [(p.product_id, p.family_id, families[p.family_id], p.usage_unit) for p in catalog.products]
    applications = [f"APP-{i:05d}" for i in range(1, args.applications + 1)] + [PLATFORM, "UNALLOCATED"]
    records = [
        ApplicationRecord(app, app, f"GRP-{i % GROUPS:02d}", f"Group {i % GROUPS}")
        for i, app in enumerate(applications[:-1])
    ]
    rows = month_lines(applications, products, min(args.lines, len(applications) * len(products)), args.seed)
    domains = sorted({domain for _, _, domain, _ in products})
    rule_rows = rules_rows(domains, products[0][0])

    with bench_database(args.postgres_url) as (_, url), psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        load_catalog_into_mart(conn, catalog)
        load_applications_into_mart(conn, records, source="benchmark")
        with conn.transaction():
            store_rules(conn, rule_rows)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS finops.fact_releve_2026_10 PARTITION OF finops.fact_releve "
            "FOR VALUES FROM ('2026-10-01') TO ('2026-11-01')"
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY finops.fact_releve (period_month, application_id, product_id, family_id, domain_id, "
                "usage_unit, total_cost, usage_quantity, unit_cost, currency, source, run_id, "
                "source_record_count, computed_at) "
                "FROM STDIN"
            ) as copy,
        ):
            for app, product, family, domain, unit, cost, quantity in rows:
                copy.write_row(
                    (
                        MONTH,
                        app,
                        product,
                        family,
                        domain,
                        unit,
                        cost,
                        quantity,
                        Decimal("1.7"),
                        "EUR",
                        "bench",
                        "bench",
                        1,
                        dt.datetime.now(dt.UTC),
                    )
                )
        conn.execute("ANALYZE finops.fact_releve")
        server = conn.execute("SHOW server_version").fetchone()

        groups: dict[str, str] = dict(
            conn.execute("SELECT application_id, group_id FROM finops.dim_application").fetchall()
        )
        lines = [
            CostLine(app, product, family, domain, currency, cost, quantity)
            for app, product, family, domain, currency, _, cost, quantity in conn.execute(
                DIRECT_LINES, (MONTH,)
            )
        ]
        rules = rules_of_month(read_rules(conn), MONTH)
        start = time.perf_counter()
        result = allocate_month(lines, rules, groups)
        engine_s = time.perf_counter() - start

        with conn.transaction():
            start = time.perf_counter()
            allocated = allocate_published_month(conn, MONTH, "bench")
            step_s = time.perf_counter() - start
        allocated_rows = conn.execute(
            "SELECT count(*) FROM finops.fact_releve_allocated WHERE period_month = %s", (MONTH,)
        ).fetchone()

        with conn.transaction():
            start = time.perf_counter()
            conn.execute(DIRECT_LINES, (MONTH,)).fetchall()
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            conn.execute(
                "CREATE TEMP TABLE baseline AS "
                "SELECT application_id, product_id, currency, sum(total_cost) AS cost "
                "FROM finops.fact_releve WHERE period_month = %s GROUP BY 1, 2, 3",
                (MONTH,),
            )
            write_s = time.perf_counter() - start
            conn.execute("DROP TABLE baseline")

    print(machine(server[0] if server else "?"))
    print(f"load average: {load_average()}")
    print(
        f"month: {n(len(rows))} direct relevés, {n(len(applications))} applications, {len(rules)} rules; "
        f"{n(len(result.moves))} moves, {n(allocated_rows[0] if allocated_rows else 0)} allocated lines\n"
    )
    print(
        table(
            ["step", "seconds", "vs baseline"],
            [
                ["engine (in memory)", s(engine_s), f"{engine_s / (read_s + write_s):.1f} x"],
                ["allocation step of the publish", s(step_s), f"{step_s / (read_s + write_s):.1f} x"],
                ["baseline: GROUP BY read + CREATE TABLE AS", s(read_s + write_s), "1.0 x"],
            ],
        )
    )
    print(
        f"\nmoved {allocated.moved_cost} EUR by {len(allocated.rules)} rules; "
        f"skipped: {len(allocated.skipped)}"
    )


if __name__ == "__main__":
    main()
