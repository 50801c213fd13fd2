"""Reference assets: the versioned catalog files and the application referential of the CMDB."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from finops_dagster.allocation.rules import check_against_catalog, load_rules_file, read_rows, rules_file
from finops_dagster.domains.open_legacy.cmdb import CmdbClient, layout_from_env
from finops_dagster.mart.allocation import store_rules
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.partitions import RUNS_WITH_MONTHS
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.reference.loader import load_applications_into_mart, load_catalog_into_mart
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource

REFERENCE_GROUP = "reference"


@asset(group_name=REFERENCE_GROUP, kinds={"postgres", "csv"}, backfill_policy=RUNS_WITH_MONTHS)
def reference_data(postgres: PostgresResource, run_ledger: RunLedger) -> MaterializeResult:
    """Domains, families, products, rate cards, mapping rules and allocation rules, from the
    versioned files of finops_dagster/reference/data (the allocation rules: FINOPS_ALLOCATION_RULES
    if set), loaded into the mart's reference tables. A malformed file fails the step naming the
    file and line, before anything is loaded."""
    catalog = load_catalog()
    rules_path = rules_file()
    rules = load_rules_file(rules_path)
    with postgres.connect() as conn:
        discovered = [row[0] for row in conn.execute("SELECT product_id FROM finops.dim_product")]
        check_against_catalog(rules, catalog, discovered)
        load_catalog_into_mart(conn, catalog)
        with conn.transaction():
            store_rules(conn, read_rows(rules_path))
    return MaterializeResult(
        metadata={
            "products": MetadataValue.int(len(catalog.products)),
            "rate_card_lines": MetadataValue.int(len(catalog.rates)),
            "rate_card_versions": MetadataValue.text(", ".join(sorted({r.version for r in catalog.rates}))),
            "mapping_rules": MetadataValue.int(len(catalog.rules)),
            "allocation_rules": MetadataValue.int(len(rules)),
        }
    )


@asset(group_name=REFERENCE_GROUP, kinds={"mongodb", "postgres"}, backfill_policy=RUNS_WITH_MONTHS)
def applications(
    context: AssetExecutionContext, postgres: PostgresResource, cmdb: MongoResource, run_ledger: RunLedger
) -> MaterializeResult:
    """The application referential (id, name, group) from the CMDB's application records of the
    latest dump. Applications are upserted, never deleted: past relevés still name them."""
    client = CmdbClient(cmdb.db(), layout_from_env())
    records = client.latest_applications()
    if not records:
        context.log.warning("%s holds no application records: every CI will be unallocated", cmdb.describe())
    with postgres.connect() as conn:
        count = load_applications_into_mart(conn, records, source="cmdb")
    return MaterializeResult(
        metadata={
            "applications": MetadataValue.int(count),
            "groups": MetadataValue.int(len({record.group_id for record in records})),
            "source": MetadataValue.text(cmdb.describe()),
        }
    )
