"""The open_legacy domain at scale: mapping and pricing of N CIs for one month, then the publish.

    python -m benchmarks.open_legacy [--cis 1000000] [--dumps 30] [--applications 5000]
        [--publish-rows 1000000] [--postgres-url URL] [--seed 42] [--profile-cis 0]

What is measured, and what is not:

- No MongoDB server can run on this machine, so `CmdbClient.ci_summaries` (MongoDB's $sort/$group
  aggregation and the cursor transfer) is NOT measured. The fold is fed what that aggregation
  yields, one `CiSummary` per CI (its distinct states with their dumps), from a lazy generator
  seeded with `random.Random(seed)`. The generator alone is timed over the same CIs and
  subtracted, so the mapping figure is the fold's own cost: application resolution, the staging
  of the measures (COPY) and the pricing in SQL (`finish`).
- Timed passes run without tracemalloc (it slows allocation-heavy code several times); the
  tracemalloc peaks come from separate, identical passes. Max RSS is the process high-water mark
  (`getrusage`), read after the untraced passes, which run first.
- Stage (`stage_domain_load`, COPY) and publish (`publish_run`) run against a fresh database
  `finops_bench_<pid>` (migrated, catalog loaded, the generated applications inserted), dropped at
  the end, also on failure. The baseline is `psql \\copy` of the same rows from a CSV file into
  an empty `LIKE finops.fact_releve INCLUDING ALL` table, timed around the psql process.
- N CIs aggregate into few relevés (applications × products), so `--publish-rows` also publishes
  a synthetic load of that many relevés (distinct applications × products, one month): that is
  the meaningful comparison with COPY.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import csv
import datetime as dt
import itertools
import pstats
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from benchmarks.harness import (
    DEFAULT_SERVER,
    MIB,
    bench_database,
    load_average,
    machine,
    max_rss_mib,
    mib,
    n,
    psql_copy,
    psql_startup_s,
    rate,
    s,
    table,
)
from finops_dagster.domains.open_legacy import DOMAIN_ID
from finops_dagster.domains.open_legacy.cmdb import CiSummary, CmdbLayout
from finops_dagster.domains.open_legacy.mapping import OpenLegacyFold, load_class_catalog
from finops_dagster.mart.migrations import apply_migrations
from finops_dagster.mart.publish import publish_run
from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.reference.catalog import Catalog, load_catalog
from finops_dagster.reference.loader import (
    ApplicationRecord,
    load_applications_into_mart,
    load_catalog_into_mart,
)
from finops_dagster.reference.snapshot import ReferenceSnapshot, read_snapshot
from finops_dagster.releve import RELEVE_COLUMNS, DomainLoad, Releve, quantize_money, quantize_quantity

MONTH = dt.date(2026, 3, 1)
"""The benchmarked month: 31 days (room for up to 31 dumps), priced by the shipped RC-2026.1."""
SYNTHETIC_MONTH = dt.date(2026, 4, 1)
"""The synthetic publish goes to its own month, so it lands in an empty partition like \\copy does."""
DUMP_HOUR = 2
DUPLICATE_DELAY = dt.timedelta(minutes=7)

# The estate's shape. Shares are of CIs.
CLASS_MIX: tuple[tuple[str, float], ...] = (
    ("cmdb_ci_vm_instance", 0.25),
    ("cmdb_ci_vmware_instance", 0.20),
    ("cmdb_ci_linux_server", 0.21),
    ("cmdb_ci_win_server", 0.12),
    ("cmdb_ci_unix_server", 0.04),
    ("cmdb_ci_disk", 0.10),
    ("cmdb_ci_storage_volume", 0.075),
    ("cmdb_ci_printer", 0.005),  # not in cmdb_classes.csv: an "unknown class" reject per CI
)
CLASSES = tuple(cls for cls, _ in CLASS_MIX)
CLASS_CUM_WEIGHTS = tuple(accumulate(share for _, share in CLASS_MIX))
NAME_PREFIX = {
    "cmdb_ci_vm_instance": "vm", "cmdb_ci_vmware_instance": "vmw", "cmdb_ci_linux_server": "lnx",
    "cmdb_ci_win_server": "win", "cmdb_ci_unix_server": "aix", "cmdb_ci_disk": "dsk",
    "cmdb_ci_storage_volume": "vol", "cmdb_ci_printer": "prn",
}
# How a CI names its application (cumulative thresholds): u_application (Zipf over the apps),
# a cmdb_rel_ci relation to an application record, a mapping rule on the name, an unknown code
# (falls through to unallocated), nothing at all (unallocated). Unallocatable: 0.4% + 0.6% = 1%.
RESOLVED_BY_FIELD = 0.845
RESOLVED_BY_RELATION = RESOLVED_BY_FIELD + 0.080
RESOLVED_BY_RULE = RESOLVED_BY_RELATION + 0.065
UNKNOWN_CODE = RESOLVED_BY_RULE + 0.004
GHOST_CODES = tuple(f"GHOST-{n:02d}" for n in range(1, 10))
ZIPF_EXPONENT = 1.1
APPLICATION_GROUPS = 40

WRAPPED_SHARE = 0.10  # numbers exported as {"display_value": "4,096", "value": "4096"}
ODD_BYTES_SHARE = 0.10  # disks sized in exact bytes rather than whole GiB (distinct strings)
CREATED_SHARE = 0.04  # lifecycle: created mid-month
DECOMMISSIONED_SHARE = 0.04  # decommissioned mid-month
SHORT_LIVED_SHARE = 0.01  # both
RESIZE_SHARE = 0.03  # one value changes once during the month; all others are constant
MALFORMED_SHARE = 0.02  # one field (or the class) damaged over 1-7 nights
DUPLICATE_SHARE = 0.005  # exported twice on 1-2 nights (a retried export)
DAMAGES = ("n/a", "", "NaN", "1e30", "99999999999999999999", "negative", "missing", "missing class")
MISSING = object()


# --------------------------------------------------------------------------- the synthetic estate


@dataclass(frozen=True)
class Estate:
    """The applications CIs point at, Zipf-weighted, and how rules and relations reach them."""

    codes: tuple[str, ...]
    cum_weights: tuple[float, ...]
    sys_ids: dict[str, str]
    rule_names: tuple[tuple[str, str], ...]
    records: tuple[ApplicationRecord, ...]


def build_estate(applications: int, catalog: Catalog, seed: int) -> Estate:
    """`applications` application records: the mapping rules' targets plus APPnnnnn codes."""
    rng = random.Random(f"{seed}/applications")
    rule_names = tuple(
        (rule.pattern[1:], rule.application_id)
        for rule in sorted(catalog.rules, key=lambda rule: rule.priority)
        if rule.domain_id == DOMAIN_ID and rule.field == "name" and re.fullmatch(r"\^[\w-]+", rule.pattern)
    )
    rule_codes = sorted({code for _, code in rule_names})
    codes = tuple(f"APP{n:05d}" for n in range(1, max(1, applications - len(rule_codes)) + 1))
    records = tuple(
        ApplicationRecord(code, f"Application {code}", f"GRP{n % APPLICATION_GROUPS:03d}",
                          f"Group {n % APPLICATION_GROUPS:03d}")
        for n, code in enumerate([*codes, *rule_codes])
    )
    return Estate(
        codes=codes,
        cum_weights=tuple(accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, len(codes) + 1))),
        sys_ids={record.application_id: f"{rng.getrandbits(128):032x}" for record in records},
        rule_names=rule_names,
        records=records,
    )


def _sizes(cls: str, rng: random.Random) -> dict[str, str]:
    """The class's numeric CMDB fields as the export writes them: strings."""
    choices = rng.choices
    if cls in ("cmdb_ci_vm_instance", "cmdb_ci_vmware_instance"):
        cpus = choices((1, 2, 4, 8, 16, 32, 64), (8, 30, 28, 18, 9, 5, 2))[0]
        ram_gb = min(512, cpus * choices((1, 2, 4, 8), (5, 35, 45, 15))[0])
        disk = choices((20, 40, 50, 80, 100, 200, 500, 1000, 2000), (8, 20, 15, 12, 18, 12, 8, 5, 2))[0]
        return {"cpus": str(cpus), "memory": str(ram_gb * 1024), "disks_size": str(disk)}
    if cls in ("cmdb_ci_linux_server", "cmdb_ci_win_server", "cmdb_ci_unix_server"):
        cpus = choices((2, 4, 8, 12, 16, 24, 32, 48, 64), (5, 20, 25, 10, 15, 10, 8, 4, 3))[0]
        ram_gb = min(512, cpus * choices((2, 4, 8), (20, 50, 30))[0])
        disk = choices((100, 146, 300, 600, 900, 1200, 2000, 4000, 8000, 20000),
                       (10, 10, 20, 20, 12, 10, 8, 5, 3, 2))[0]
        return {"cpu_count": str(cpus), "ram": str(ram_gb * 1024), "disk_space": str(disk)}
    if cls in ("cmdb_ci_disk", "cmdb_ci_storage_volume"):
        median, low = (200, 20) if cls == "cmdb_ci_disk" else (1000, 100)
        size_gb = min(20480, max(low, round(rng.lognormvariate(0, 1.2) * median)))
        size = size_gb * 1024**3
        if rng.random() < ODD_BYTES_SHARE:
            size -= rng.randrange(1, 1024**3)
        return {"size_bytes": str(size)}
    return {}


def _shape(value: str, wrapped: bool) -> Any:
    return {"display_value": value, "value": value} if wrapped else value


def _application(
    index: int, prefix: str, rng: random.Random, estate: Estate
) -> tuple[str, Any, list[str]]:
    """The CI's name, its u_application value (None: absent) and its relation parents."""
    draw = rng.random()
    if draw < RESOLVED_BY_RELATION:
        code = rng.choices(estate.codes, cum_weights=estate.cum_weights)[0]
        name = f"{prefix}-{code.lower()}-{index:07d}"
        if draw >= RESOLVED_BY_FIELD:
            return name, None, [estate.sys_ids[code]]
        shape = rng.random()
        if shape < 0.01:
            return name, f" {code.lower()} ", []
        if shape < 0.60:
            return name, code, []
        if shape < 0.85:
            return name, {"value": code, "link": f"https://cmdb.example/cmdb_ci_business_app/{code}"}, []
        return name, {"display_value": f"Application {code}", "value": code}, []
    if draw < RESOLVED_BY_RULE and estate.rule_names:
        rule_prefix = estate.rule_names[rng.randrange(len(estate.rule_names))][0]
        return f"{rule_prefix}{prefix}{index:07d}", None, []
    if draw < UNKNOWN_CODE:
        return f"{prefix}-legacy-{index:07d}", GHOST_CODES[rng.randrange(len(GHOST_CODES))], []
    return f"tmp-{index:07d}", None, []


def generate_ci_summaries(
    count: int, *, dumps: int, month: dt.date, estate: Estate, seed: int
) -> Iterator[CiSummary]:
    """`count` CIs over `dumps` nightly dumps of `month` as MongoDB summarises them (one row per
    CI), lazily, identical for a given seed."""
    rng = random.Random(seed)
    nights = [dt.datetime(month.year, month.month, day, DUMP_HOUR) for day in range(1, dumps + 1)]
    last_night = dumps - 1
    for index in range(count):
        cls = rng.choices(CLASSES, cum_weights=CLASS_CUM_WEIGHTS)[0]
        sizes = _sizes(cls, rng)
        name, app, parents = _application(index, NAME_PREFIX[cls], rng, estate)
        wrapped = rng.random() < WRAPPED_SHARE
        base: dict[str, Any] = {"cls": cls, "name": name}
        if app is not None:
            base["app"] = app
        for field, value in sizes.items():
            base[f"f_{field}"] = _shape(value, wrapped)
        first, last = 0, last_night
        draw = rng.random()
        if last_night > 0:
            if draw < CREATED_SHARE:
                first = rng.randint(1, last_night)
            elif draw < CREATED_SHARE + DECOMMISSIONED_SHARE:
                last = rng.randint(0, last_night - 1)
            elif draw < CREATED_SHARE + DECOMMISSIONED_SHARE + SHORT_LIVED_SHARE:
                first = rng.randint(1, last_night)
                last = rng.randint(first, last_night)
        changes: list[tuple[int, int, str, Any]] = []  # (first night, last night, key, value or MISSING)
        if sizes and rng.random() < RESIZE_SHARE:
            field = rng.choice(sorted(sizes))
            changes.append((rng.randint(first, last), last, f"f_{field}",
                            _shape(str(int(sizes[field]) * 2), wrapped)))
        if sizes and rng.random() < MALFORMED_SHARE:
            damage = DAMAGES[rng.randrange(len(DAMAGES))]
            field = rng.choice(sorted(sizes))
            start = rng.randint(first, last)
            end = min(last, start + rng.randint(0, 6))
            if damage == "missing class":
                changes.append((start, end, "cls", MISSING))
            elif damage == "missing":
                changes.append((start, end, f"f_{field}", MISSING))
            else:
                value = f"-{sizes[field]}" if damage == "negative" else damage
                changes.append((start, end, f"f_{field}", _shape(value, wrapped)))
        duplicates: set[int] = set()
        if rng.random() < DUPLICATE_SHARE:
            duplicates = set(rng.sample(range(first, last + 1), min(last - first + 1, rng.randint(1, 2))))
        sys_id = f"{rng.getrandbits(128):032x}"
        yield _summary(sys_id, base, nights, first, last, changes, duplicates, parents)


def _summary(
    sys_id: str,
    base: dict[str, Any],
    nights: list[dt.datetime],
    first: int,
    last: int,
    changes: list[tuple[int, int, str, Any]],
    duplicates: set[int],
    parents: list[str],
) -> CiSummary:
    """What MongoDB's aggregation yields for the CI (`CmdbClient.ci_summaries`): its nights cut
    where a change starts or ends, each stretch one state with its nights."""

    def document(night: int) -> dict[str, Any]:
        doc = {"at": nights[night], **base}
        for start, end, key, value in changes:
            if start <= night <= end:
                if value is MISSING:
                    doc.pop(key, None)
                else:
                    doc[key] = value
        return doc

    cuts = sorted({first, last + 1, *(n for start, end, _, _ in changes for n in (start, end + 1))})
    states: dict[str, list[Any]] = {}
    for begin, end in itertools.pairwise(cuts):
        if first <= begin <= last:
            state = {key: value for key, value in document(begin).items() if key not in ("at", "name", "app")}
            states.setdefault(repr(sorted(state.items(), key=str)), [state, 0])[1] += end - begin
    extras = [{**document(night), "at": nights[night] + DUPLICATE_DELAY} for night in sorted(duplicates)]
    counted = document(last)
    latest = extras[-1] if last in duplicates else counted
    return CiSummary(
        sys_id, [(state, dumps) for state, dumps in states.values()], counted, latest, extras, parents
    )


# --------------------------------------------------------------------------- measurements


@dataclass
class MappingRun:
    cis: int
    documents: int = 0
    generator_s: float = 0.0
    add_all_s: float = 0.0
    finish_s: float = 0.0
    releves: int = 0
    rejects: int = 0
    groups: int = 0
    parse_cache: int = 0
    total_cost: Decimal = Decimal(0)
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    traced_peak_mib: float = 0.0
    traced_retained_mib: float = 0.0
    traced_s: float = 0.0
    resolved: str = ""

    @property
    def mapping_s(self) -> float:
        """add_all minus the generator feeding it: the fold's own cost."""
        return max(self.add_all_s - self.generator_s, 1e-9)


class Bench:
    def __init__(
        self, args: argparse.Namespace, snapshot: ReferenceSnapshot, estate: Estate, url: str
    ) -> None:
        self.args = args
        self.snapshot = snapshot
        self.estate = estate
        self.url = url
        self.classes = load_class_catalog()
        self.application_sys_ids = {sys_id: code for code, sys_id in estate.sys_ids.items()}

    def cis(self, count: int) -> Iterator[CiSummary]:
        return generate_ci_summaries(count, dumps=self.args.dumps, month=MONTH, estate=self.estate,
                                     seed=self.args.seed)

    def fold(self, conn: psycopg.Connection, run_id: str) -> OpenLegacyFold:
        """The fold, pricing in `conn`'s session; the month's dumps are known apart (as
        `CmdbClient.dump_days` tells the asset)."""
        fold = OpenLegacyFold(
            conn, month=MONTH, run_id=run_id, classes=self.classes, snapshot=self.snapshot,
            application_sys_ids=self.application_sys_ids, application_field=CmdbLayout().application_field,
            computed_at=dt.datetime.now(dt.UTC),
        )
        fold.add_dump_days(MONTH + dt.timedelta(days=night) for night in range(self.args.dumps))
        return fold

    def time_generator(self, run: MappingRun) -> None:
        start = time.perf_counter()
        collections.deque(self.cis(run.cis), maxlen=0)
        run.generator_s = time.perf_counter() - start

    def map_and_price(self, run: MappingRun, run_id: str) -> DomainLoad:
        """The timed pass: add_all over the generator, then finish (pricing)."""
        run.rss_before_mib = max_rss_mib()
        with psycopg.connect(self.url) as conn:
            fold = self.fold(conn, run_id)
            start = time.perf_counter()
            fold.add_all(self.cis(run.cis))
            run.add_all_s = time.perf_counter() - start
            start = time.perf_counter()
            load = fold.finish()
            run.finish_s = time.perf_counter() - start
        run.rss_after_mib = max_rss_mib()
        run.documents = load.details["documents"]
        run.releves, run.rejects, run.groups = len(load.releves), len(load.rejects), len(load.releves)
        run.parse_cache = len(fold._parsed)
        run.total_cost = load.total_cost
        run.resolved = ", ".join(f"{key.removeprefix('resolved_by_')} {value:,}"
                                 for key, value in load.details.items() if key.startswith("resolved_by_"))
        return load

    def traced(self, run: MappingRun) -> None:
        """An identical pass under tracemalloc: the step's peak of Python allocations."""
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            start = time.perf_counter()
            with psycopg.connect(self.url) as conn:
                fold = self.fold(conn, "bench-traced")
                fold.add_all(self.cis(run.cis))
                load = fold.finish()
            run.traced_s = time.perf_counter() - start
            retained, peak = tracemalloc.get_traced_memory()
            run.traced_peak_mib, run.traced_retained_mib = peak / MIB, retained / MIB
            del load, fold
        finally:
            tracemalloc.stop()

    def profile(self, count: int) -> str:
        with psycopg.connect(self.url) as conn:
            fold = self.fold(conn, "bench-profile")
            profiler = cProfile.Profile()
            profiler.enable()
            fold.add_all(self.cis(count))
            fold.finish()
            profiler.disable()
        out = _StringSink()
        stats = pstats.Stats(profiler, stream=out)  # type: ignore[arg-type]
        stats.strip_dirs().sort_stats("tottime").print_stats(22)
        return out.text()


class _StringSink:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class PublishRun:
    label: str
    releves: int
    rejects: int
    build_s: float = 0.0
    stage_s: float = 0.0
    publish_s: float = 0.0
    published: int = 0
    export_s: float = 0.0
    copy_s: float = 0.0
    copied: int = 0


def stage_and_publish(url: str, load: DomainLoad, run_id: str, result: PublishRun) -> None:
    """stage_domain_load then publish_run, each in its own committed transaction(s), timed."""
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        stage_domain_load(conn, load, run_id)
        result.stage_s = time.perf_counter() - start
        start = time.perf_counter()
        published = publish_run(conn, run_id, [load.period_month])
        result.publish_s = time.perf_counter() - start
    result.published = sum(month.releves for month in published)


def copy_baseline(url: str, releves: Sequence[Releve], workdir: Path, psql: str, result: PublishRun) -> None:
    """The same relevé rows as CSV, loaded by `psql \\copy` into an empty copy of fact_releve."""
    path = workdir / "releves.csv"
    start = time.perf_counter()
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(releve.as_row() for releve in releves)
    result.export_s = time.perf_counter() - start
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS finops.fact_releve_copy")
        conn.execute("CREATE TABLE finops.fact_releve_copy (LIKE finops.fact_releve INCLUDING ALL)")
    result.copy_s, result.copied = psql_copy(url, path, "finops.fact_releve_copy", RELEVE_COLUMNS, psql)
    path.unlink()


def synthetic_load(rows: int, snapshot: ReferenceSnapshot, run_id: str, seed: int) -> DomainLoad:
    """`rows` priced relevés: distinct applications × the domain's products, one month."""
    rng = random.Random(f"{seed}/synthetic")
    products = sorted((p for p in snapshot.products.values() if snapshot.domain_of(p) == DOMAIN_ID),
                      key=lambda product: product.product_id)
    rates = {product.product_id: snapshot.rate_for(product.product_id, SYNTHETIC_MONTH)
             for product in products}
    computed_at = dt.datetime.now(dt.UTC)
    releves: list[Releve] = []
    totals: dict[str, Decimal] = {}
    for index in range(rows):
        application, slot = divmod(index, len(products))
        product = products[slot]
        rate = rates[product.product_id]
        if rate is None:
            raise SystemExit(f"no rate card for {product.product_id} in {SYNTHETIC_MONTH:%Y-%m}")
        quantity = quantize_quantity(Decimal(rng.randrange(1, 10**9)).scaleb(-3))
        totals[product.usage_unit] = totals.get(product.usage_unit, Decimal(0)) + quantity
        releves.append(Releve(
            period_month=SYNTHETIC_MONTH, application_id=f"SYN{application:07d}",
            product_id=product.product_id, family_id=product.family_id, domain_id=DOMAIN_ID,
            usage_quantity=quantity, usage_unit=product.usage_unit, unit_cost=rate.unit_cost,
            total_cost=quantize_money(quantity * rate.unit_cost), currency=rate.currency, source="cmdb",
            run_id=run_id, rate_card_version=rate.version, source_record_count=rng.randint(1, 3000),
            computed_at=computed_at,
        ))
    return DomainLoad(domain_id=DOMAIN_ID, period_month=SYNTHETIC_MONTH, releves=releves, rejects=[],
                      source_totals=totals, source_record_count=rows)


# --------------------------------------------------------------------------- the database


def prepare(url: str, catalog: Catalog, estate: Estate) -> tuple[ReferenceSnapshot, str, dict[str, float]]:
    timings: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        apply_migrations(conn)
        timings["migrations"] = time.perf_counter() - start
        start = time.perf_counter()
        load_catalog_into_mart(conn, catalog)
        timings["catalog"] = time.perf_counter() - start
        start = time.perf_counter()
        load_applications_into_mart(conn, estate.records, source="benchmark")
        timings["applications"] = time.perf_counter() - start
        start = time.perf_counter()
        snapshot = read_snapshot(conn, DOMAIN_ID)
        timings["snapshot"] = time.perf_counter() - start
        row = conn.execute("SHOW server_version").fetchone()
    return snapshot, str(row[0]) if row else "?", timings


# --------------------------------------------------------------------------- output


def traced(text: str, run: MappingRun) -> str:
    return text if run.traced_s else "not run"


def print_mapping(runs: Sequence[MappingRun], dumps: int) -> None:
    headers = ["1. mapping + pricing", *(f"{run.cis:,} CIs" for run in runs)]
    rows: list[list[str]] = [
        ["CIs", *(n(run.cis) for run in runs)],
        [f"observations (documents, {dumps} dumps)", *(n(run.documents) for run in runs)],
        ["generator alone, s", *(s(run.generator_s) for run in runs)],
        ["add_all incl. generator, s", *(s(run.add_all_s) for run in runs)],
        ["mapping (add_all − generator), s", *(s(run.mapping_s) for run in runs)],
        ["pricing (finish), s", *(s(run.finish_s) for run in runs)],
        ["mapping + pricing wall, s", *(s(run.mapping_s + run.finish_s) for run in runs)],
        ["CIs/s (mapping + pricing)", *(rate(run.cis, run.mapping_s + run.finish_s) for run in runs)],
        ["documents/s (mapping + pricing)",
         *(rate(run.documents, run.mapping_s + run.finish_s) for run in runs)],
        ["relevés out", *(n(run.releves) for run in runs)],
        ["rejects out", *(n(run.rejects) for run in runs)],
        ["fold: groups / parse-cache entries", *(f"{run.groups:,} / {run.parse_cache:,}" for run in runs)],
        ["total cost (EUR)", *(f"{run.total_cost:,.2f}" for run in runs)],
        ["tracemalloc peak of the step, MiB", *(traced(mib(run.traced_peak_mib), run) for run in runs)],
        ["  retained after finish (fold + load), MiB",
         *(traced(mib(run.traced_retained_mib), run) for run in runs)],
        ["  (traced pass wall, s — not a speed figure)", *(traced(s(run.traced_s), run) for run in runs)],
        ["process max RSS before → after, MiB",
         *(f"{mib(run.rss_before_mib)} → {mib(run.rss_after_mib)}" for run in runs)],
    ]
    print(table(headers, rows))
    for run in runs:
        print(f"  resolved by ({run.cis:,} CIs): {run.resolved}")
    if len(runs) == 2 and runs[0].traced_peak_mib > 0:
        small, large = runs
        peaks = large.traced_peak_mib / small.traced_peak_mib
        rejects = large.rejects / max(small.rejects, 1)
        cache = large.parse_cache / max(small.parse_cache, 1)
        print(f"  memory: {large.cis / small.cis:.0f}× the CIs → {peaks:.2f}× the tracemalloc peak; "
              f"{rejects:.1f}× the rejects (kept with their raw\n"
              f"  payloads until finish), {cache:.1f}× the parse-cache entries, "
              f"{large.groups / max(small.groups, 1):.1f}× the groups")


def print_publish(runs: Sequence[PublishRun], psql_start: float) -> None:
    headers = ["step", *(run.label for run in runs)]
    rows: list[list[str]] = [
        ["relevé rows", *(n(run.releves) for run in runs)],
        ["reject rows", *(n(run.rejects) for run in runs)],
        ["building the load (Releve objects), s", *(s(run.build_s) if run.build_s else "-" for run in runs)],
        ["2. stage (stage_domain_load, COPY), s", *(s(run.stage_s) for run in runs)],
        ["   stage rows/s (relevés + rejects)",
         *(rate(run.releves + run.rejects, run.stage_s) for run in runs)],
        ["3. publish (publish_run), s", *(s(run.publish_s) for run in runs)],
        ["   rows published", *(n(run.published) for run in runs)],
        ["   publish rows/s", *(rate(run.published, run.publish_s) for run in runs)],
        ["4. baseline: CSV export (not timed below), s", *(s(run.export_s) for run in runs)],
        ["   psql \\copy into fact_releve_copy, s", *(s(run.copy_s) for run in runs)],
        ["   rows copied", *(n(run.copied) for run in runs)],
        ["   \\copy rows/s", *(rate(run.copied, run.copy_s) for run in runs)],
        ["ratio publish / \\copy", *(f"{run.publish_s / run.copy_s:.2f}×" for run in runs)],
        ["ratio (stage + publish) / \\copy",
         *(f"{(run.stage_s + run.publish_s) / run.copy_s:.2f}×" for run in runs)],
    ]
    print(table(headers, rows))
    if len(runs) == 3:
        print("  The third column publishes the same rows again under a new run id: publish_run deletes the\n"
              "  month's previous rows and the superseded staged rows, as each nightly run does.")
    print(f"  \\copy time includes psql start-up and connection (`psql -c 'SELECT 1'`: {s(psql_start)} s);\n"
          "  fact_releve_copy is a plain table with fact_releve's primary key and indexes "
          "(LIKE … INCLUDING ALL).")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.open_legacy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cis", type=int, default=1_000_000, help="CIs in the month (default 1,000,000)")
    parser.add_argument("--dumps", type=int, default=30, help="nightly dumps in the month, 1-31 (default 30)")
    parser.add_argument("--applications", type=int, default=5000, help="applications (default 5,000)")
    parser.add_argument("--publish-rows", type=int, default=1_000_000,
                        help="relevé rows of the synthetic publish (default 1,000,000; 0 skips it)")
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER,
                        help=f"server on which finops_bench_<pid> is created (default {DEFAULT_SERVER})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tracemalloc", action=argparse.BooleanOptionalAction, default=True,
                        help="run the tracemalloc passes (about 10× slower than the timed ones)")
    parser.add_argument("--profile-cis", type=int, default=0,
                        help="also print a cProfile (by own time) of the fold over this many CIs")
    args = parser.parse_args(argv)
    if not 1 <= args.dumps <= 31:
        parser.error("--dumps must be between 1 and 31 (one month of nightly dumps)")
    if args.cis < 10 or args.applications < 1 or args.publish_rows < 0 or args.profile_cis < 0:
        parser.error("--cis must be at least 10, --applications at least 1, the others not negative")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    psql = shutil.which("psql")
    if psql is None:
        print("psql is not on PATH: it is the \\copy baseline", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    catalog = load_catalog()
    estate = build_estate(args.applications, catalog, args.seed)
    print(f"open_legacy benchmark — month {MONTH:%Y-%m}, {args.cis:,} CIs × {args.dumps} dumps, "
          f"{len(estate.records):,} applications, seed {args.seed}")
    print("MongoDB: no MongoDB server can run on this machine, so CmdbClient.ci_summaries (the\n"
          "         $sort/$group aggregation and cursor transfer) is NOT measured. The mapping is timed\n"
          "         on what it yields: one CiSummary per CI from a lazy seeded generator, timed alone\n"
          "         and subtracted; the pricing is SQL in the bench database.")
    with bench_database(args.postgres_url) as (name, url):
        snapshot, server_version, setup = prepare(url, catalog, estate)
        print(machine(server_version))
        print(f"database {name}: migrations {s(setup['migrations'])} s, catalog {s(setup['catalog'])} s, "
              f"{len(estate.records):,} applications {s(setup['applications'])} s, "
              f"snapshot {s(setup['snapshot'])} s")
        bench = Bench(args, snapshot, estate, url)
        run(bench, args, url, psql)
    return 0


def step(label: str) -> Callable[[], None]:
    """Progress on stderr, so stdout stays the report."""
    start = time.perf_counter()
    sys.stdout.flush()
    print(f"… {label}", file=sys.stderr, flush=True)
    return lambda: print(f"  done in {time.perf_counter() - start:,.1f} s", file=sys.stderr, flush=True)


def run(bench: Bench, args: argparse.Namespace, url: str, psql: str) -> None:
    small = MappingRun(cis=max(1, args.cis // 10))
    large = MappingRun(cis=args.cis)
    for mapping in (small, large):
        done = step(f"generator alone, {mapping.cis:,} CIs")
        bench.time_generator(mapping)
        done()
    done = step(f"mapping + pricing, {small.cis:,} CIs")
    bench.map_and_price(small, "bench-small")
    done()
    done = step(f"mapping + pricing, {large.cis:,} CIs")
    load = bench.map_and_price(large, "bench-mapping")
    done()
    for mapping in (small, large) if args.tracemalloc else ():
        done = step(f"tracemalloc pass, {mapping.cis:,} CIs")
        bench.traced(mapping)
        done()
    print()
    print_mapping([small, large], args.dumps)

    with tempfile.TemporaryDirectory(prefix="finops_bench_") as directory:
        workdir = Path(directory)
        mapped = PublishRun(f"{args.cis:,} CIs' load", len(load.releves), len(load.rejects))
        done = step("stage + publish + \\copy of the mapping's relevés")
        stage_and_publish(url, load, "bench-mapping", mapped)
        copy_baseline(url, load.releves, workdir, psql, mapped)
        done()
        runs = [mapped]
        del load
        # The synthetic load twice: first into an empty month, then again under a new run id, which
        # replaces the month's rows as every nightly run does for the current and previous months.
        for label, run_id in ((f"synthetic {args.publish_rows:,} rows", "bench-synthetic"),
                              ("same, replacing them", "bench-synthetic-rerun")) if args.publish_rows else ():
            synthetic = PublishRun(label, args.publish_rows, 0)
            done = step(f"{label}: build, stage, publish, \\copy")
            start = time.perf_counter()
            fake = synthetic_load(args.publish_rows, bench.snapshot, run_id, args.seed)
            synthetic.build_s = time.perf_counter() - start
            stage_and_publish(url, fake, run_id, synthetic)
            copy_baseline(url, fake.releves, workdir, psql, synthetic)
            del fake
            done()
            runs.append(synthetic)
        print()
        print_publish(runs, psql_startup_s(url, psql))
        print(f"  process max RSS at the end: {mib(max_rss_mib())} MiB; load average now {load_average()}")

    if args.profile_cis:
        done = step(f"cProfile of the fold over {args.profile_cis:,} CIs")
        report = bench.profile(args.profile_cis)
        done()
        print()
        print(f"cProfile of add_all + finish over {args.profile_cis:,} CIs (generator too), by own time:")
        print(report)


if __name__ == "__main__":
    raise SystemExit(main())
