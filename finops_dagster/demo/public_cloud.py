"""Synthetic FOCUS cost exports of two public-cloud providers, written by DuckDB.

The ``public_cloud`` domain reads FOCUS exports (CSV, gzipped CSV or Parquet) the way providers
drop them in a bucket: ``<provider>/<YYYY-MM>/part-NNN.<ext>``, one set of files per billing
period. This generator writes such exports for the demo, the tests and the benchmarks, from the
demo :class:`~finops_dagster.demo.estate.Estate`, so the applications are the same as in every
other domain:

- the FOCUS 1.2 column set; a provider declared ``focus_version="1.3"`` writes 1.3's
  ``ServiceProviderName`` / ``HostProviderName`` instead of the deprecated ``ProviderName`` /
  ``PublisherName``, plus two ``x_`` extension columns per provider that a reader must ignore;
- one provider billed in USD (not the mart's reporting currency) and one in EUR;
- application tags whose key is spelled differently per provider (``app-id``, ``App-ID``,
  ``Application``, `` app-id ``) and whose values come in three cases; about a tenth of the cost
  untagged (``NULL``, ``{}`` or an ``environment`` tag only), part of it on sub-accounts following
  ``<application>-<environment>`` (:data:`SUB_ACCOUNT_NAME_PATTERN`, a mapping rule resolves them)
  and part on sandbox-like sub-accounts nobody owns;
- mostly ``Usage`` charges, some ``Purchase`` (one-time commitment fees: billed, no effective
  cost), usage covered by those commitments (effective cost, nothing billed), ``Credit``, ``Tax``
  and ``Adjustment`` rows; costs are exact decimals with 10 places.

Rows are never built in Python: each file is one ``COPY (SELECT ... FROM range(...))`` in which
every random choice is a ``hash`` of the row number and a salt derived from (seed, provider,
month), and every lookup (weighted applications, sub-accounts, SKUs, days) is an element of a
list bound as a DuckDB variable, so a query has no join and the rows come out in ``range`` order.
The same code writes 100 rows or 10 million (a benchmark's month) in bounded memory. Same
arguments, same files: CSV (plain or gzipped) byte for byte, Parquet row for row. The content
depends on DuckDB's ``hash`` function, stable within a DuckDB version.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import string
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from finops_dagster.demo.estate import Estate

FORMATS: dict[str, str] = {"csv": "csv", "csv.gz": "csv.gz", "parquet": "parquet"}
"""Export formats and the file extension each is written with."""

FOCUS_12_COLUMNS: tuple[str, ...] = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
"""The FOCUS 1.2 columns, in the order the exports write them (extension columns follow)."""

FOCUS_13_RENAMES: dict[str, str] = {
    "ProviderName": "ServiceProviderName",
    "PublisherName": "HostProviderName",
}
"""FOCUS 1.3 deprecates ProviderName and PublisherName for these two columns."""

DECIMAL_COLUMNS: frozenset[str] = frozenset(
    {
        "BilledCost",
        "CommitmentDiscountQuantity",
        "ConsumedQuantity",
        "ContractedCost",
        "ContractedUnitPrice",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost",
        "PricingCurrencyListUnitPrice",
        "PricingQuantity",
    }
)
"""Written as ``DECIMAL(38,10)``: plain decimal text in CSV, a decimal (never a double) in Parquet."""
DECIMAL_TYPE = "DECIMAL(38,10)"

CHARGE_CATEGORIES: tuple[tuple[str, int], ...] = (
    ("Usage", 930),
    ("Purchase", 20),
    ("Credit", 15),
    ("Tax", 20),
    ("Adjustment", 15),
)
"""(ChargeCategory, line items per thousand)."""
UNTAGGED_PER_MILLE = 80
"""Tax aside (never tagged), line items carrying no application tag, per thousand."""
ORPHAN_PERCENT = 45
"""Of the untagged line items, the share (%) on sub-accounts no application owns."""
COVERED_PER_MILLE = 300
"""Usage of a commitment-eligible SKU covered by a commitment, per thousand: billed 0, effective > 0."""
COMMITMENT_RATE = Decimal("0.72")
"""Effective cost of covered usage, as a share of its contracted cost."""
CONVENTION_SHARE = 0.6
"""Share of generated applications whose sub-accounts follow ``<application>-<environment>``
(the fixed applications always do)."""
ACCOUNT_SLOTS = 3
ENVIRONMENTS = ("prod", "preprod", "dev")
SUB_ACCOUNT_NAME_PATTERN = re.compile(
    r"^(?P<application>[a-z][a-z0-9]*(?:-[0-9]+)?)-(?P<environment>prod|preprod|staging|dev|test)$"
)
"""Naming convention of application sub-accounts (``payments-prod``, ``pay-012-dev``): the same
shape as the private cloud's tenants, so the same kind of mapping rule resolves untagged cost."""
ORPHAN_ACCOUNTS = ("sandbox-01", "sandbox-02", "poc-genai", "lab-network", "training-2025", "shared-tooling")
"""Sub-accounts nobody claims: their names never follow the convention."""
OPAQUE_WORDS = (
    "Atlas",
    "Nimbus",
    "Zenith",
    "Orion",
    "Apollo",
    "Vega",
    "Helios",
    "Cobalt",
    "Quartz",
    "Aurora",
)
RESOURCES_PER_SKU = 16
"""Distinct resources an owner can have per SKU."""

UNIT = 1_000_000
"""Resolution of the uniform draws taken from hash bits."""


@dataclass(frozen=True)
class FocusProvider:
    """One provider's exports: ``key`` names its directory, ``name`` fills ProviderName (or 1.3's
    ServiceProviderName) and ``currency`` BillingCurrency. ``catalogue`` picks the services, regions,
    identifiers and tag spellings (``"aws"`` or ``"azure"``)."""

    key: str
    name: str
    currency: str
    focus_version: str = "1.2"
    catalogue: str = "aws"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this provider's files carry, in order."""
        base = FOCUS_12_COLUMNS
        if self.focus_version != "1.2":
            base = tuple(FOCUS_13_RENAMES.get(name, name) for name in base)
        return base + _CATALOGUES[self.catalogue].extension_columns


@dataclass(frozen=True)
class FocusTotal:
    """What one provider's files of one month add up to, read straight from the files."""

    provider: str
    month: dt.date
    currency: str
    line_items: int
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal


@dataclass(frozen=True)
class _Sku:
    """One priced SKU: PricingUnit and ConsumedUnit never vary for a SKU."""

    service_name: str
    service_category: str
    service_subcategory: str
    meter: str
    description: str
    consumed_unit: str
    pricing_unit: str
    pricing_block: int
    list_unit_price: str
    typical_quantity: float
    weight: int
    resource_type: str
    resource_path: str
    short: str
    extension: str
    committable: bool = False


@dataclass(frozen=True)
class _Catalogue:
    invoice_issuer: str
    publisher: str
    billing_account_name: str
    billing_account_type: str
    sub_account_type: str
    negotiated_discount: Decimal
    regions: tuple[tuple[str, str], ...]
    tag_keys: tuple[tuple[str, int], ...]
    """(application tag key as written, weight)."""
    extension_columns: tuple[str, str]
    skus: tuple[_Sku, ...]
    purchase: _Sku
    commitment_type: str
    tax_service_name: str | None
    timestamp_format: str
    quote_text: bool


# fmt: off
_AWS = _Catalogue(
    invoice_issuer="Amazon Web Services EMEA SARL",
    publisher="Amazon Web Services, Inc.",
    billing_account_name="Demo Bank Group",
    billing_account_type="Billing Account",
    sub_account_type="Account",
    negotiated_discount=Decimal("0.06"),
    regions=(
        ("eu-west-1", "Europe (Ireland)"),
        ("eu-west-3", "Europe (Paris)"),
        ("eu-central-1", "Europe (Frankfurt)"),
        ("us-east-1", "US East (N. Virginia)"),
    ),
    tag_keys=(("app-id", 8), ("App-ID", 2)),
    extension_columns=("x_UsageType", "x_Operation"),
    skus=(
        _Sku("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "Compute Instance",
             "$0.214 per On Demand Linux m6i.xlarge Instance Hour", "Hours", "Hours", 1, "0.214", 24.0,
             20, "Instance", "ec2:instance", "vm", "BoxUsage:m6i.xlarge|RunInstances", committable=True),
        _Sku("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "Compute Instance",
             "$0.4032 per On Demand Linux r6g.2xlarge Instance Hour", "Hours", "Hours", 1, "0.4032", 24.0,
             8, "Instance", "ec2:instance", "mem", "BoxUsage:r6g.2xlarge|RunInstances", committable=True),
        _Sku("Amazon Elastic Block Store", "Storage", "Block Storage", "Storage",
             "$0.088 per GB-month of General Purpose (gp3) provisioned storage", "GB-Mo", "GB-Mo", 1, "0.088",
             15.0, 12, "Volume", "ec2:volume", "vol", "EBS:VolumeUsage.gp3|CreateVolume-Gp3"),
        _Sku("Amazon Simple Storage Service", "Storage", "Object Storage", "Storage",
             "$0.024 per GB - first 50 TB / month of storage used", "GB-Mo", "GB-Mo", 1, "0.024", 40.0,
             12, "Bucket", "s3:::bucket", "bucket", "TimedStorage-ByteHrs|PutObject"),
        _Sku("Amazon Simple Storage Service", "Storage", "Object Storage", "API Request",
             "$0.0054 per 1,000 PUT, COPY, POST, or LIST requests", "Requests", "1000 Requests", 1000,
             "0.0054", 200000.0, 6, "Bucket", "s3:::bucket", "bucket", "Requests-Tier1|PutObject"),
        _Sku("Amazon Relational Database Service", "Databases", "Relational Databases", "Database Instance",
             "$0.285 per RDS db.r6g.large Single-AZ instance hour running PostgreSQL", "Hours", "Hours", 1,
             "0.285", 24.0, 8, "DBInstance", "rds:db", "db", "InstanceUsage:db.r6g.large|CreateDBInstance",
             committable=True),
        _Sku("Amazon DynamoDB", "Databases", "NoSQL Databases", "Request",
             "$0.283 per million read request units", "ReadRequestUnits", "1000000 ReadRequestUnits",
             1_000_000, "0.283", 5_000_000.0, 4, "Table", "dynamodb:table", "tbl",
             "ReadRequestUnits|GetItem"),
        _Sku("AWS Data Transfer", "Networking", "Network Connectivity", "Data Transfer",
             "$0.09 per GB - first 10 TB / month data transfer out to the internet", "GB", "GB", 1,
             "0.09", 30.0, 6, "Instance", "ec2:instance", "vm", "DataTransfer-Out-Bytes|RunInstances"),
        _Sku("Elastic Load Balancing", "Networking", "Network Infrastructure", "Load Balancer",
             "$0.008 per used Application load balancer capacity unit-hour (or partial hour)", "LCU-Hrs",
             "LCU-Hrs", 1, "0.008", 40.0, 4, "LoadBalancer", "elasticloadbalancing:loadbalancer/app", "alb",
             "LCUUsage|LoadBalancing:Application"),
        _Sku("Amazon Athena", "Analytics", "Data Processing", "Data Scanned",
             "$5.00 per Terabyte scanned", "Terabytes", "Terabytes", 1, "5", 0.05, 3, "WorkGroup",
             "athena:workgroup", "wg", "DataScannedInTB|RunQuery"),
        _Sku("Amazon SageMaker", "AI and Machine Learning", "Machine Learning", "ML Instance",
             "$1.408 per Hour for ml.g5.xlarge on Hosting", "Hours", "Hours", 1, "1.408", 10.0, 2, "Endpoint",
             "sagemaker:endpoint", "ml", "Host:ml.g5.xlarge|RunInstance"),
        _Sku("Amazon Bedrock", "AI and Machine Learning", "Generative AI", "Tokens",
             "$0.003 per 1,000 input tokens", "Tokens", "1000 Tokens", 1000, "0.003", 2_000_000.0, 2,
             "Model", "bedrock:foundation-model", "llm", "InputTokenCount|InvokeModel"),
        _Sku("AmazonCloudWatch", "Management and Governance", "Observability", "Log Ingestion",
             "$0.57 per GB custom log data ingested", "GB", "GB", 1, "0.57", 3.0, 4, "LogGroup",
             "logs:log-group", "logs", "DataProcessing-Bytes|PutLogEvents"),
    ),
    purchase=_Sku("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "Reservation",
                  "Upfront fee for a one-year m6i.xlarge Linux Reserved Instance", "Units", "Units", 1, "12",
                  1.0, 0, "ReservedInstance", "ec2:reserved-instances", "ri",
                  "HeavyUsage:m6i.xlarge|RunInstances"),
    commitment_type="Reserved Instance",
    tax_service_name="Tax",
    timestamp_format="%Y-%m-%d %H:%M:%S",
    quote_text=True,
)

_AZURE = _Catalogue(
    invoice_issuer="Microsoft Ireland Operations Limited",
    publisher="Microsoft",
    billing_account_name="Demo Bank Group EA",
    billing_account_type="Billing Profile",
    sub_account_type="Subscription",
    negotiated_discount=Decimal("0.04"),
    regions=(
        ("francecentral", "France Central"),
        ("westeurope", "West Europe"),
        ("northeurope", "North Europe"),
        ("germanywestcentral", "Germany West Central"),
    ),
    tag_keys=(("Application", 6), (" app-id ", 4)),
    extension_columns=("x_ResourceGroupName", "x_SkuMeterCategory"),
    skus=(
        _Sku("Virtual Machines", "Compute", "Virtual Machines", "D4s v5",
             "D4s v5 compute hours", "Hours", "1 Hour", 1, "0.2016", 24.0, 18, "Virtual machine",
             "Microsoft.Compute/virtualMachines", "vm", "Virtual Machines", committable=True),
        _Sku("Virtual Machines", "Compute", "Virtual Machines", "E8s v5",
             "E8s v5 compute hours", "Hours", "1 Hour", 1, "0.5440", 24.0, 8, "Virtual machine",
             "Microsoft.Compute/virtualMachines", "mem", "Virtual Machines", committable=True),
        _Sku("Azure Kubernetes Service", "Compute", "Containers", "Standard Uptime SLA",
             "AKS Standard tier cluster hours", "Hours", "1 Hour", 1, "0.0920", 24.0, 5,
             "Kubernetes service", "Microsoft.ContainerService/managedClusters", "aks",
             "Azure Kubernetes Service"),
        _Sku("Storage Accounts", "Storage", "Object Storage", "Hot LRS Data Stored",
             "Blob storage, Hot LRS data stored", "GB/Month", "1 GB/Month", 1, "0.0184", 40.0, 12,
             "Storage account", "Microsoft.Storage/storageAccounts", "st", "Storage"),
        _Sku("Managed Disks", "Storage", "Block Storage", "P30 LRS Disk",
             "Premium SSD managed disk P30 LRS", "Disk/Month", "1/Month", 1, "122.88", 0.0333, 10, "Disk",
             "Microsoft.Compute/disks", "disk", "Storage"),
        _Sku("Azure SQL Database", "Databases", "Relational Databases", "vCore",
             "SQL Database General Purpose Gen5 vCore hours", "Hours", "1 Hour", 1, "0.4870", 24.0, 8,
             "SQL database", "Microsoft.Sql/servers", "sql", "SQL Database", committable=True),
        _Sku("Azure Cosmos DB", "Databases", "NoSQL Databases", "Request Units",
             "Cosmos DB serverless request units", "Request Units", "1000000 Request Units", 1_000_000,
             "0.2370", 3_000_000.0, 4, "Azure Cosmos DB account", "Microsoft.DocumentDB/databaseAccounts",
             "cosmos", "Azure Cosmos DB"),
        _Sku("Bandwidth", "Networking", "Network Connectivity", "Standard Data Transfer Out",
             "Internet egress, zone 1", "GB", "1 GB", 1, "0.0783", 30.0, 6, "Virtual machine",
             "Microsoft.Compute/virtualMachines", "vm", "Bandwidth"),
        _Sku("Load Balancer", "Networking", "Network Infrastructure", "Standard Included LB Rules",
             "Standard load balancer rule hours", "Hours", "1 Hour", 1, "0.0232", 24.0, 4, "Load balancer",
             "Microsoft.Network/loadBalancers", "lb", "Load Balancer"),
        _Sku("Azure Databricks", "Analytics", "Data Processing", "Premium Jobs Compute DBU",
             "Databricks premium jobs compute DBU hours", "DBU Hours", "1 DBU Hour", 1, "0.2780", 40.0, 3,
             "Azure Databricks Service", "Microsoft.Databricks/workspaces", "dbw", "Azure Databricks"),
        _Sku("Azure OpenAI Service", "AI and Machine Learning", "Generative AI", "gpt-4o Input Tokens",
             "Azure OpenAI gpt-4o input tokens", "Tokens", "1000 Tokens", 1000, "0.0024", 3_000_000.0, 2,
             "Cognitive Services account", "Microsoft.CognitiveServices/accounts", "oai",
             "Cognitive Services"),
        _Sku("Azure Monitor", "Management and Governance", "Observability", "Analytics Logs Data Ingestion",
             "Log Analytics data ingestion", "GB", "1 GB", 1, "2.30", 2.0, 4, "Log Analytics workspace",
             "Microsoft.OperationalInsights/workspaces", "log", "Log Analytics"),
    ),
    purchase=_Sku("Virtual Machines", "Compute", "Virtual Machines", "Reservation",
                  "Reservation purchase, D4s v5, one year, upfront", "Units", "1 Unit", 1, "11", 1.0, 0,
                  "Reservation", "Microsoft.Capacity/reservationOrders", "ri", "Virtual Machines"),
    commitment_type="Reservation",
    tax_service_name=None,
    timestamp_format="%Y-%m-%dT%H:%M:%SZ",
    quote_text=False,
)

# fmt: on

_CATALOGUES: dict[str, _Catalogue] = {"aws": _AWS, "azure": _AZURE}

DEMO_PROVIDERS: tuple[FocusProvider, ...] = (
    FocusProvider("aws", "AWS", "USD", focus_version="1.2", catalogue="aws"),
    FocusProvider("azure", "Microsoft", "EUR", focus_version="1.3", catalogue="azure"),
)
"""AWS billed in USD (the mart reports in EUR) with 1.2 column names; Azure billed in EUR with 1.3's."""


def write_focus_exports(
    estate: Estate,
    directory: Path,
    months: Sequence[dt.date],
    *,
    line_items_per_month: int,
    providers: Sequence[FocusProvider] = DEMO_PROVIDERS,
    fmt: str = "csv",
    files_per_month: int = 1,
    seed: int = 7,
    today: dt.date | None = None,
) -> list[Path]:
    """Write ``line_items_per_month`` FOCUS line items per provider and month, return the files.

    Files are ``directory/<provider.key>/<YYYY-MM>/part-NNN.<ext>``; a month's rows are split into
    ``files_per_month`` consecutive parts (the rows do not depend on the split). With ``today``,
    the export is the one taken at midnight UTC starting ``today``: the current month only has
    the days before ``today`` (still ``line_items_per_month`` rows), and a month with no day yet
    (``today`` its first, or a later month) has no files.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}")
    if line_items_per_month < 0 or files_per_month < 1:
        raise ValueError("line_items_per_month must be >= 0 and files_per_month >= 1")
    written: list[Path] = []
    con = duckdb.connect()
    try:
        for provider in providers:
            catalogue = _CATALOGUES[provider.catalogue]
            world = _provider_world(estate, provider, catalogue, seed)
            for month in sorted({date.replace(day=1) for date in months}):
                days = _charge_days(month, today)
                if not days:
                    continue
                _bind(con, world, month, days, catalogue, today)
                salt = zlib.crc32(f"{seed}:{provider.key}:{month:%Y-%m}".encode())
                query = _select(provider, catalogue, len(estate.applications), salt, len(days))
                month_dir = directory / provider.key / f"{month:%Y-%m}"
                month_dir.mkdir(parents=True, exist_ok=True)
                for part in range(files_per_month):
                    low = line_items_per_month * part // files_per_month
                    high = line_items_per_month * (part + 1) // files_per_month
                    path = month_dir / f"part-{part:03d}.{FORMATS[fmt]}"
                    rows = query.replace("{low}", str(low)).replace("{high}", str(high))
                    if fmt == "parquet":
                        rows = _typed_periods(rows)
                    con.execute(f"COPY ({rows}) TO '{path}' ({_copy_options(fmt, provider, catalogue)})")
                    written.append(path)
    finally:
        con.close()
    return written


def focus_totals(files: Sequence[Path]) -> list[FocusTotal]:
    """Totals per provider, month and currency of written export files, by a plain DuckDB ``SUM``.

    The provider and month come from the layout (``<provider>/<YYYY-MM>/part-NNN.<ext>``); this
    reads the costs as exact decimals and nothing else, so it is what any correct reader of the
    files must find, whatever it does with tags, categories or currencies.
    """
    sums: dict[tuple[str, dt.date, str], list[Any]] = {}
    con = duckdb.connect()
    try:
        for path in files:
            provider, month = path.parent.parent.name, dt.date.fromisoformat(f"{path.parent.name}-01")
            rows = con.execute(
                f"SELECT BillingCurrency, count(*), sum(CAST(BilledCost AS {DECIMAL_TYPE})),"
                f" sum(CAST(EffectiveCost AS {DECIMAL_TYPE})), sum(CAST(ListCost AS {DECIMAL_TYPE}))"
                f" FROM {_reader(path)} GROUP BY ALL ORDER BY 1"
            ).fetchall()
            for currency, count, billed, effective, listed in rows:
                total = sums.setdefault((provider, month, currency), [0, Decimal(0), Decimal(0), Decimal(0)])
                for index, value in enumerate((count, billed, effective, listed)):
                    total[index] += value if value is not None else 0
    finally:
        con.close()
    return [
        FocusTotal(provider, month, currency, count, billed, effective, listed)
        for (provider, month, currency), (count, billed, effective, listed) in sorted(sums.items())
    ]


# --- the provider's world: lookups bound once per provider and month ------------------------------


@dataclass(frozen=True)
class _World:
    app_probability: list[float]
    app_alias: list[int]
    app_values: list[list[str]]
    """Per application: tag value upper, lower, capitalised; and its lowercase slug."""
    accounts: list[tuple[str, str, str]]
    """(SubAccountId, SubAccountName, environment): the application slots, then the orphans."""
    orphans: int
    billing_account_id: str
    sku_ids: list[str]
    sku_price_ids: list[str]
    commitment_ids: list[str]


def _provider_world(estate: Estate, provider: FocusProvider, catalogue: _Catalogue, seed: int) -> _World:
    """Sub-accounts, SKU identifiers and the weighted application draw of one provider."""
    rng = random.Random(f"{seed}:{provider.key}")
    apps = estate.applications
    app_probability, app_alias = _alias_table([app.weight for app in apps])
    fixed = {app.code for app in apps[:5]}
    used_names: set[str] = set()
    accounts: list[tuple[str, str, str]] = []
    app_values: list[list[str]] = []
    for app in apps:
        slug = app.code.lower()
        app_values.append([app.code, slug, app.code.capitalize(), slug])
        envs = ["prod"] + [env for env in ENVIRONMENTS[1:] if rng.random() < 0.5]
        conventional = app.code in fixed or rng.random() < CONVENTION_SHARE
        owned = []
        for env in envs:
            name = f"{slug}-{env}" if conventional else _opaque_name(rng, used_names)
            used_names.add(name)
            owned.append((_account_id(rng, catalogue), name, env))
        accounts.extend(owned[slot % len(owned)] for slot in range(ACCOUNT_SLOTS))
    accounts.extend((_account_id(rng, catalogue), name, "sandbox") for name in ORPHAN_ACCOUNTS)
    skus = (*catalogue.skus, catalogue.purchase)
    sku_ids = [_sku_id(rng, catalogue) for _ in skus]
    sku_price_ids = [_sku_price_id(rng, catalogue, sku_id) for sku_id in sku_ids]
    commitment_ids = [_commitment_id(rng, catalogue) for _ in range(3)]
    return _World(
        app_probability=app_probability,
        app_alias=app_alias,
        app_values=app_values,
        accounts=accounts,
        orphans=len(ORPHAN_ACCOUNTS),
        billing_account_id=_account_id(rng, catalogue)
        if catalogue is _AWS
        else str(rng.randint(10**7, 10**8)),
        sku_ids=sku_ids,
        sku_price_ids=sku_price_ids,
        commitment_ids=commitment_ids,
    )


def _alias_table(weights: Sequence[float]) -> tuple[list[float], list[int]]:
    """Walker's alias table of the weights (Vose's construction): draw a column k uniformly and a
    uniform coin, keep k when the coin is below ``probability[k]``, else take ``alias[k]``. A weighted
    draw in constant time from lists as long as the weights, the way the SQL does it."""
    count = len(weights)
    scaled = [weight * count / sum(weights) for weight in weights]
    probability, alias = [1.0] * count, list(range(count))
    small = [k for k, value in enumerate(scaled) if value < 1.0]
    large = [k for k, value in enumerate(scaled) if value >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        probability[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return probability, alias


def _tickets(weights: Sequence[float], total: int) -> list[int]:
    """``total`` tickets, each holding an index, in proportion to the weights (largest
    remainders, at least one ticket each): a uniform ticket number is a weighted draw."""
    scale = total - len(weights)
    raw = [weight / sum(weights) * scale for weight in weights]
    counts = [1 + int(value) for value in raw]
    by_remainder = sorted(range(len(raw)), key=lambda k: (-(raw[k] - int(raw[k])), k))
    for k in by_remainder[: total - sum(counts)]:
        counts[k] += 1
    return [k for k, count in enumerate(counts) for _ in range(count)]


def _opaque_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(OPAQUE_WORDS)} {rng.choice(OPAQUE_WORDS)} {rng.randint(1, 99):02d}"
        if name not in used:
            return name


def _account_id(rng: random.Random, catalogue: _Catalogue) -> str:
    if catalogue is _AWS:
        return str(rng.randint(10**11, 10**12 - 1))
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _sku_id(rng: random.Random, catalogue: _Catalogue) -> str:
    alphabet = string.ascii_uppercase + string.digits
    code = "".join(rng.choice(alphabet) for _ in range(16 if catalogue is _AWS else 12))
    return code if catalogue is _AWS else f"{code}/{rng.randint(1, 99):04d}"


def _sku_price_id(rng: random.Random, catalogue: _Catalogue, sku_id: str) -> str:
    if catalogue is _AWS:
        alphabet = string.ascii_uppercase + string.digits
        return f"{sku_id}.JRTCKXETXF.{''.join(rng.choice(alphabet) for _ in range(10))}"
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _commitment_id(rng: random.Random, catalogue: _Catalogue) -> str:
    guid = uuid.UUID(int=rng.getrandbits(128), version=4)
    if catalogue is _AWS:
        return f"arn:aws:ec2:eu-west-1:{rng.randint(10**11, 10**12 - 1)}:reserved-instances/{guid}"
    reservation = uuid.UUID(int=rng.getrandbits(128), version=4)
    return f"/providers/Microsoft.Capacity/reservationOrders/{guid}/reservations/{reservation}"


def _charge_days(month: dt.date, today: dt.date | None) -> list[dt.date]:
    """Days of ``month`` whose charges an export taken at midnight starting ``today`` holds."""
    following = (month + dt.timedelta(days=32)).replace(day=1)
    end = following if today is None else min(following, max(today, month))
    return [month + dt.timedelta(days=k) for k in range((end - month).days)]


def _bind(
    con: duckdb.DuckDBPyConnection,
    world: _World,
    month: dt.date,
    days: list[dt.date],
    catalogue: _Catalogue,
    today: dt.date | None,
) -> None:
    """Bind the month's lookup lists as DuckDB variables (constants of the generating query)."""
    fmt = catalogue.timestamp_format
    following = (month + dt.timedelta(days=32)).replace(day=1)
    skus = (*catalogue.skus, catalogue.purchase)
    sku_probability, sku_alias = _alias_table([sku.weight for sku in catalogue.skus])
    key_tickets = _tickets([weight for _, weight in catalogue.tag_keys], 100)
    invoice = (
        None
        if today is not None and following > today
        else f"INV-{month:%Y%m}-{world.billing_account_id[-4:]}"
    )
    values: dict[str, Any] = {
        "app_probability": world.app_probability,
        "app_alias": world.app_alias,
        "sku_probability": sku_probability,
        "sku_alias": sku_alias,
        "app_upper": [values[0] for values in world.app_values],
        "app_lower": [values[1] for values in world.app_values],
        "app_capital": [values[2] for values in world.app_values],
        "account_id": [account[0] for account in world.accounts],
        "account_name": [account[1] for account in world.accounts],
        "account_env": [account[2] for account in world.accounts],
        "day_start": [datetime_text(day, fmt) for day in days],
        "day_end": [datetime_text(day + dt.timedelta(days=1), fmt) for day in days],
        "period_start": datetime_text(month, fmt),
        "period_end": datetime_text(following, fmt),
        "invoice_id": invoice,
        "billing_account_id": world.billing_account_id,
        "region_id": [region for region, _ in catalogue.regions],
        "region_name": [name for _, name in catalogue.regions],
        "tag_key": [catalogue.tag_keys[k][0] for k in key_tickets],
        "sku_id": world.sku_ids,
        "sku_price_id": world.sku_price_ids,
        "commitment_id": world.commitment_ids,
    }
    for name, value in values.items():
        con.execute(f"SET VARIABLE {name} = ?", [value])
    for name, value in _sku_lists(skus, catalogue).items():
        con.execute(f"SET VARIABLE {name} = ?", [value])


def _sku_lists(skus: Sequence[_Sku], catalogue: _Catalogue) -> dict[str, list[Any]]:
    discount = 1 - catalogue.negotiated_discount
    return {
        "sku_service": [sku.service_name for sku in skus],
        "sku_category": [sku.service_category for sku in skus],
        "sku_subcategory": [sku.service_subcategory for sku in skus],
        "sku_meter": [sku.meter for sku in skus],
        "sku_description": [sku.description for sku in skus],
        "sku_consumed_unit": [sku.consumed_unit for sku in skus],
        "sku_pricing_unit": [sku.pricing_unit for sku in skus],
        "sku_block": [sku.pricing_block for sku in skus],
        "sku_list_price": [Decimal(sku.list_unit_price) for sku in skus],
        "sku_list_value": [float(sku.list_unit_price) for sku in skus],
        "sku_contracted_price": [
            (Decimal(sku.list_unit_price) * discount).quantize(Decimal("1e-10")) for sku in skus
        ],
        "sku_contracted_value": [float(Decimal(sku.list_unit_price) * discount) for sku in skus],
        "sku_quantity": [sku.typical_quantity for sku in skus],
        "sku_resource_type": [sku.resource_type for sku in skus],
        "sku_resource_path": [sku.resource_path for sku in skus],
        "sku_short": [sku.short for sku in skus],
        "sku_extension": [sku.extension for sku in skus],
        "sku_committable": [sku.committable for sku in skus],
    }


def datetime_text(day: dt.date, fmt: str) -> str:
    """Midnight UTC of ``day`` written the provider's way."""
    return dt.datetime(day.year, day.month, day.day).strftime(fmt)


# --- the generating query --------------------------------------------------------------------------


def _select(provider: FocusProvider, catalogue: _Catalogue, applications: int, salt: int, days: int) -> str:
    """The SELECT writing rows ``{low}`` to ``{high}`` of one provider's month (format placeholders)."""
    usage_end, purchase_end, credit_end, tax_end = _category_bounds()
    regions = len(catalogue.regions)
    purchase = len(catalogue.skus) + 1
    v = "getvariable"
    draws = f"""
        SELECT i,
            hash(i, {salt}, 1) AS h1, hash(i, {salt}, 2) AS h2, hash(i, {salt}, 3) AS h3,
            hash(i, {salt}, 4) AS h4, hash(i, {salt}, 5) AS h5
        FROM range({{low}}, {{high}}) t(i)"""
    picks = f"""
        SELECT i,
            (h1 % {applications})::BIGINT AS app_column,
            (h4 % {UNIT})::DOUBLE / {UNIT} AS app_coin,
            (h5 % {len(catalogue.skus)})::BIGINT AS sku_column,
            ((h5 >> 32) % {UNIT})::DOUBLE / {UNIT} AS sku_coin,
            ((h1 >> 20) % {ACCOUNT_SLOTS})::BIGINT AS slot,
            ((h1 >> 24) % 1000)::BIGINT AS cat_draw,
            ((h1 >> 34) % {days})::BIGINT AS day,
            (h2 % 1000)::BIGINT AS tag_draw,
            ((h2 >> 10) % 100)::BIGINT AS key_draw,
            ((h2 >> 17) % 3)::BIGINT AS case_draw,
            ((h2 >> 19) % {UNIT})::DOUBLE / {UNIT} AS quantity_draw,
            ((h2 >> 40) % {regions})::BIGINT AS region,
            ((h2 >> 44) % {RESOURCES_PER_SKU})::BIGINT AS resource,
            (h3 % 1000)::BIGINT AS covered_draw,
            ((h3 >> 10) % 100)::BIGINT AS orphan_draw,
            ((h3 >> 17) % {len(ORPHAN_ACCOUNTS)})::BIGINT AS orphan,
            ((h3 >> 20) % 3)::BIGINT AS units_draw,
            ((h3 >> 22) % 3)::BIGINT AS commitment,
            ((h3 >> 24) % {UNIT})::DOUBLE / {UNIT} AS amount_draw
        FROM draws"""
    shaped = f"""
        SELECT *,
            CASE WHEN app_coin < {v}('app_probability')[1 + app_column] THEN app_column
                 ELSE {v}('app_alias')[1 + app_column] END AS app,
            CASE WHEN cat_draw < {usage_end} THEN 'Usage' WHEN cat_draw < {purchase_end} THEN 'Purchase'
                 WHEN cat_draw < {credit_end} THEN 'Credit' WHEN cat_draw < {tax_end} THEN 'Tax'
                 ELSE 'Adjustment' END AS category,
            CASE WHEN cat_draw >= {usage_end} AND cat_draw < {purchase_end} THEN {purchase}
                 WHEN sku_coin < {v}('sku_probability')[1 + sku_column] THEN 1 + sku_column
                 ELSE 1 + {v}('sku_alias')[1 + sku_column] END AS sku,
            tag_draw < {UNTAGGED_PER_MILLE} AS untagged,
            tag_draw < {UNTAGGED_PER_MILLE} AND orphan_draw < {ORPHAN_PERCENT}
                AND NOT (cat_draw >= {credit_end} AND cat_draw < {tax_end}) AS orphaned
        FROM picks"""
    accounted = f"""
        SELECT *,
            CASE WHEN orphaned THEN {applications * ACCOUNT_SLOTS + 1} + orphan
                 ELSE app * {ACCOUNT_SLOTS} + slot + 1 END AS account,
            {v}('sku_committable')[sku] AND category = 'Usage'
                AND covered_draw < {COVERED_PER_MILLE} AS covered,
            round({v}('sku_quantity')[sku] * (0.25 + 1.5 * quantity_draw * quantity_draw), 6)
                AS consumed_value
        FROM shaped"""
    # Arithmetic in DOUBLE rounded to 10 places, cast once to DECIMAL(38,10): 128-bit decimal
    # products would cost most of the query's time, and the written decimals are exact either way.
    priced = f"""
        SELECT *,
            round(consumed_value / {v}('sku_block')[sku], 10) AS quantity_value,
            round(round(consumed_value / {v}('sku_block')[sku], 10) * {v}('sku_list_value')[sku], 10)
                AS list_value,
            round(round(consumed_value / {v}('sku_block')[sku], 10) * {v}('sku_contracted_value')[sku], 10)
                AS contracted_value,
            1 + units_draw AS units_value
        FROM accounted"""
    costed = f"""
        SELECT *,
            CASE category
                WHEN 'Usage' THEN CASE WHEN covered THEN 0.0 ELSE contracted_value END
                WHEN 'Purchase' THEN round(units_value * {v}('sku_contracted_value')[sku], 10)
                WHEN 'Credit' THEN round(-contracted_value * (0.5 + amount_draw / 2), 10)
                WHEN 'Tax' THEN round(contracted_value * 0.2, 10)
                ELSE round(contracted_value * (amount_draw - 0.5), 10)
            END AS billed_value,
            CASE category
                WHEN 'Usage' THEN CASE WHEN covered THEN round(contracted_value * {COMMITMENT_RATE}, 10)
                                  ELSE contracted_value END
                WHEN 'Purchase' THEN 0.0
            END AS effective_value
        FROM priced"""
    money = f"""
        SELECT *,
            CAST(consumed_value AS {DECIMAL_TYPE}) AS consumed,
            CAST(quantity_value AS {DECIMAL_TYPE}) AS pricing_quantity,
            CAST(list_value AS {DECIMAL_TYPE}) AS list_cost,
            CAST(contracted_value AS {DECIMAL_TYPE}) AS contracted_cost,
            CAST(units_value AS {DECIMAL_TYPE}) AS units,
            CAST(round(units_value * {v}('sku_list_value')[sku], 10) AS {DECIMAL_TYPE}) AS purchase_list_cost,
            CAST(billed_value AS {DECIMAL_TYPE}) AS billed,
            CAST(effective_value AS {DECIMAL_TYPE}) AS effective_usage,
            {_resource_label()} AS resource_label
        FROM costed"""
    columns = _columns(provider, catalogue)
    body = ",\n            ".join(f'{expression} AS "{name}"' for name, expression in columns)
    return f"""
        WITH draws AS ({draws}), picks AS ({picks}), shaped AS ({shaped}), accounted AS ({accounted}),
             priced AS ({priced}), costed AS ({costed}), money AS ({money})
        SELECT
            {body}
        FROM money"""


def _resource_label() -> str:
    """ResourceName: the owner (application, or orphan sub-account), the SKU's short name, a number."""
    v = "getvariable"
    owner = f"CASE WHEN orphaned THEN {v}('account_name')[account] ELSE {v}('app_lower')[1 + app] END"
    return f"{owner} || '-' || {v}('sku_short')[sku] || '-' || lpad(CAST(resource AS VARCHAR), 2, '0')"


def _category_bounds() -> tuple[int, int, int, int]:
    bounds = []
    running = 0
    for _, per_mille in CHARGE_CATEGORIES:
        running += per_mille
        bounds.append(running)
    if running != 1000:
        raise ValueError("charge category shares must add up to 1000 per mille")
    return bounds[0], bounds[1], bounds[2], bounds[3]


def _columns(provider: FocusProvider, catalogue: _Catalogue) -> list[tuple[str, str]]:
    """(column, SQL expression over ``money``) for every column of the provider's files."""
    v = "getvariable"
    text, dec = "VARCHAR", DECIMAL_TYPE
    null_text, null_dec = f"CAST(NULL AS {text})", f"CAST(NULL AS {dec})"
    usage_like = "category IN ('Usage', 'Credit', 'Adjustment')"
    priced_usage = "category = 'Usage'"
    not_tax = "category <> 'Tax'"
    priced = "category IN ('Usage', 'Purchase')"
    committed = "(covered OR category = 'Purchase')"
    owner = f"CASE WHEN orphaned THEN {v}('account_name')[account] ELSE {v}('app_lower')[1 + app] END"
    resource_name = "resource_label"
    region = f"{v}('region_id')[1 + region]"
    if catalogue is _AWS:
        resource_id = (
            f"'arn:aws:' || split_part({v}('sku_resource_path')[sku], ':', 1) || ':' || {region} || ':'"
            f" || {v}('account_id')[account] || ':' || split_part({v}('sku_resource_path')[sku], ':', 2)"
            f" || '/' || {resource_name}"
        )
        extension_values = (
            f"CASE WHEN {not_tax} THEN upper(left({region}, 2))"
            f" || upper(substr(split_part({region}, '-', 2), 1, 1))"
            f" || right({region}, 1) || '-' || split_part({v}('sku_extension')[sku], '|', 1) END",
            f"CASE WHEN {not_tax} THEN split_part({v}('sku_extension')[sku], '|', 2) END",
        )
    else:
        group = f"'rg-' || {owner}"
        resource_id = (
            f"'/subscriptions/' || {v}('account_id')[account] || '/resourceGroups/' || {group}"
            f" || '/providers/' || {v}('sku_resource_path')[sku] || '/' || {resource_name}"
        )
        extension_values = (
            f"CASE WHEN {not_tax} THEN {group} END",
            f"CASE WHEN {not_tax} THEN {v}('sku_extension')[sku] END",
        )
    tag_value = (
        f"CASE case_draw WHEN 0 THEN {v}('app_upper')[1 + app] WHEN 1 THEN {v}('app_lower')[1 + app]"
        f" ELSE {v}('app_capital')[1 + app] END"
    )
    environment = f"{v}('account_env')[account]"
    tags = (
        f"CASE WHEN category = 'Tax' THEN {null_text}"
        f" WHEN untagged THEN CASE case_draw WHEN 0 THEN {null_text} WHEN 1 THEN '{{}}'"
        f" ELSE '{{\"environment\": \"' || {environment} || '\"}}' END"
        f" ELSE '{{\"' || {v}('tag_key')[1 + key_draw] || '\": \"' || {tag_value}"
        f' || \'", "environment": "\' || {environment} || \'"}}\' END'
    )
    tax_service = _text(catalogue.tax_service_name) if catalogue.tax_service_name else null_text
    commitment_name = f"{_text(catalogue.commitment_type + ' ')} || {v}('sku_meter')[1]"
    list_cost = (
        f"CASE category WHEN 'Usage' THEN list_cost"
        " WHEN 'Purchase' THEN purchase_list_cost"
        f" WHEN 'Tax' THEN billed ELSE CAST(0 AS {dec}) END"
    )
    contracted_cost = (
        f"CASE category WHEN 'Usage' THEN contracted_cost WHEN 'Purchase' THEN billed WHEN 'Tax' THEN billed"
        f" ELSE CAST(0 AS {dec}) END"
    )
    expressions: dict[str, str] = {
        "AvailabilityZone": f"CASE WHEN {priced_usage} AND {v}('sku_category')[sku] = 'Compute'"
        f" THEN {region} || 'a' END"
        if catalogue is _AWS
        else null_text,
        "BilledCost": "billed",
        "BillingAccountId": f"{v}('billing_account_id')",
        "BillingAccountName": _text(catalogue.billing_account_name),
        "BillingAccountType": _text(catalogue.billing_account_type),
        "BillingCurrency": _text(provider.currency),
        "BillingPeriodEnd": f"{v}('period_end')",
        "BillingPeriodStart": f"{v}('period_start')",
        "CapacityReservationId": null_text,
        "CapacityReservationStatus": null_text,
        "ChargeCategory": "category",
        "ChargeClass": "CASE WHEN category = 'Adjustment' AND amount_draw < 0.5 THEN 'Correction' END",
        "ChargeDescription": f"CASE category WHEN 'Tax' THEN 'Tax for the billing period'"
        f" WHEN 'Credit' THEN 'Promotional credit applied to ' || {v}('sku_service')[sku]"
        f" WHEN 'Adjustment' THEN 'Billing adjustment for ' || {v}('sku_service')[sku]"
        f" ELSE {v}('sku_description')[sku] END",
        "ChargeFrequency": "CASE category WHEN 'Usage' THEN 'Usage-Based' WHEN 'Tax' THEN 'Recurring'"
        " ELSE 'One-Time' END",
        "ChargePeriodEnd": f"{v}('day_end')[1 + day]",
        "ChargePeriodStart": f"{v}('day_start')[1 + day]",
        "CommitmentDiscountCategory": f"CASE WHEN {committed} THEN 'Usage' END",
        "CommitmentDiscountId": f"CASE WHEN {committed} THEN {v}('commitment_id')[1 + commitment] END",
        "CommitmentDiscountName": f"CASE WHEN {committed} THEN {commitment_name} END",
        "CommitmentDiscountQuantity": f"CASE WHEN covered THEN pricing_quantity ELSE {null_dec} END",
        "CommitmentDiscountStatus": "CASE WHEN covered THEN 'Used' END",
        "CommitmentDiscountType": f"CASE WHEN {committed} THEN {_text(catalogue.commitment_type)} END",
        "CommitmentDiscountUnit": f"CASE WHEN covered THEN {v}('sku_pricing_unit')[sku] END",
        "ConsumedQuantity": f"CASE WHEN {priced_usage} THEN consumed ELSE {null_dec} END",
        "ConsumedUnit": f"CASE WHEN {priced_usage} THEN {v}('sku_consumed_unit')[sku] END",
        "ContractedCost": contracted_cost,
        "ContractedUnitPrice": f"CASE WHEN {priced} THEN {v}('sku_contracted_price')[sku]"
        f" ELSE {null_dec} END",
        "EffectiveCost": "coalesce(effective_usage, billed)",
        "InvoiceId": f"{v}('invoice_id')",
        "InvoiceIssuerName": _text(catalogue.invoice_issuer),
        "ListCost": list_cost,
        "ListUnitPrice": f"CASE WHEN {priced} THEN {v}('sku_list_price')[sku] ELSE {null_dec} END",
        "PricingCategory": "CASE WHEN covered THEN 'Committed' WHEN category IN ('Usage', 'Purchase')"
        " THEN 'Standard' END",
        "PricingCurrency": null_text,
        "PricingCurrencyContractedUnitPrice": null_dec,
        "PricingCurrencyEffectiveCost": null_dec,
        "PricingCurrencyListUnitPrice": null_dec,
        "PricingQuantity": f"CASE category WHEN 'Usage' THEN pricing_quantity WHEN 'Purchase' THEN units"
        f" ELSE {null_dec} END",
        "PricingUnit": f"CASE WHEN {priced} THEN {v}('sku_pricing_unit')[sku] END",
        "ProviderName": _text(provider.name),
        "PublisherName": _text(catalogue.publisher),
        "RegionId": f"CASE WHEN {usage_like} THEN {region} END",
        "RegionName": f"CASE WHEN {usage_like} THEN {v}('region_name')[1 + region] END",
        "ResourceId": f"CASE WHEN {usage_like} THEN {resource_id}"
        f" WHEN category = 'Purchase' THEN {v}('commitment_id')[1 + commitment] END",
        "ResourceName": f"CASE WHEN {usage_like} THEN {resource_name} END",
        "ResourceType": f"CASE WHEN {not_tax} THEN {v}('sku_resource_type')[sku] END",
        "ServiceCategory": f"CASE WHEN category = 'Tax' THEN 'Other' ELSE {v}('sku_category')[sku] END",
        "ServiceName": f"CASE WHEN category = 'Tax' THEN {tax_service} ELSE {v}('sku_service')[sku] END",
        "ServiceSubcategory": f"CASE WHEN category = 'Tax' THEN 'Other (Other)'"
        f" ELSE {v}('sku_subcategory')[sku] END",
        "SkuId": f"CASE WHEN {priced} THEN {v}('sku_id')[sku] END",
        "SkuMeter": f"CASE WHEN {priced} THEN {v}('sku_meter')[sku] END",
        "SkuPriceDetails": null_text,
        "SkuPriceId": f"CASE WHEN {priced} THEN {v}('sku_price_id')[sku] END",
        "SubAccountId": f"{v}('account_id')[account]",
        "SubAccountName": f"{v}('account_name')[account]",
        "SubAccountType": _text(catalogue.sub_account_type),
        "Tags": tags,
    }
    result = [
        (FOCUS_13_RENAMES.get(name, name) if provider.focus_version != "1.2" else name, expressions[name])
        for name in FOCUS_12_COLUMNS
    ]
    result.extend(zip(catalogue.extension_columns, extension_values, strict=True))
    return result


PERIOD_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")


def _typed_periods(rows: str) -> str:
    """Parquet exports type FOCUS date-times as timestamps (UTC), where CSV writes them as text."""
    casts = ", ".join(
        f'CAST(CAST("{name}" AS TIMESTAMPTZ) AS TIMESTAMP) AS "{name}"' for name in PERIOD_COLUMNS
    )
    return f"SELECT * REPLACE ({casts}) FROM ({rows})"


def _text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _copy_options(fmt: str, provider: FocusProvider, catalogue: _Catalogue) -> str:
    """COPY options: Parquet as is; CSV with the bare ``NULL`` token, text quoted only when needed or,
    for a catalogue that quotes all text (as the FOCUS sample data does), always."""
    if fmt == "parquet":
        return "FORMAT parquet, COMPRESSION zstd"
    options = "FORMAT csv, HEADER true, NULLSTR 'NULL', QUOTE '\"'"
    if catalogue.quote_text:
        text = [f'"{name}"' for name in provider.columns if name not in DECIMAL_COLUMNS]
        options += f", FORCE_QUOTE ({', '.join(text)})"
    return options + (", COMPRESSION gzip" if fmt == "csv.gz" else "")


def _reader(path: Path) -> str:
    if path.name.endswith(".parquet"):
        return f"read_parquet('{path}')"
    return f"read_csv('{path}', header = true, nullstr = 'NULL', all_varchar = true)"
