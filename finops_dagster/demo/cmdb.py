"""Synthetic ServiceNow CMDB, dumped nightly into MongoDB the way the CMDB team does it.

The ``open_legacy`` domain reads ``cmdb_ci`` and ``cmdb_rel_ci`` collections that another team
fills with a full export every night at 02:00 UTC. This module recreates those dumps for the demo
and the tests: realistic shapes (numbers as strings, references as plain ids, ``{value, link}`` or
``{display_value, value}``), a CI lifecycle, every way a CI can name its application, and the
malformed records a real export carries. Everything derives from a seeded ``random.Random`` and a
document counter, so two generations with the same arguments are byte-identical.
"""

from __future__ import annotations

import calendar
import datetime
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from finops_dagster.demo.estate import Estate

Document = dict[str, Any]

CI_COLLECTION = "cmdb_ci"
REL_COLLECTION = "cmdb_rel_ci"
APPLICATION_CLASS = "cmdb_ci_business_app"
RELATION_TYPE = "Depends on::Used by"
INSTANCE_URL = "https://example.service-now.com/api/now/table"
DUMP_HOUR_UTC = 2
BATCH_SIZE = 5000

NAME_RULES: tuple[tuple[str, str], ...] = (("^bkp-", "BACKUP"), ("^mon-", "MONITORING"), ("^dh-", "DATAHUB"))
"""Name patterns the shipped mapping rules resolve; generated rule-only CIs are named after them."""

VM_CLASSES = ("cmdb_ci_vm_instance", "cmdb_ci_vmware_instance")
SERVER_CLASSES = ("cmdb_ci_linux_server", "cmdb_ci_win_server", "cmdb_ci_unix_server")
DISK_CLASSES = ("cmdb_ci_disk", "cmdb_ci_storage_volume")
UNKNOWN_CLASSES = ("cmdb_ci_printer", "cmdb_ci_ups")

CLASS_MIX: tuple[tuple[str, float], ...] = (
    ("cmdb_ci_vm_instance", 0.22),
    ("cmdb_ci_vmware_instance", 0.18),
    ("cmdb_ci_linux_server", 0.17),
    ("cmdb_ci_win_server", 0.10),
    ("cmdb_ci_unix_server", 0.03),
    ("cmdb_ci_disk", 0.15),
    ("cmdb_ci_storage_volume", 0.13),
    ("cmdb_ci_printer", 0.01),
    ("cmdb_ci_ups", 0.01),
)
"""Share of each class among infrastructure CIs: 40% VMs, 30% servers, 28% storage, 2% unknown."""

NUMERIC_FIELDS: dict[str, tuple[str, ...]] = {
    **{cls: ("cpus", "memory", "disks_size") for cls in VM_CLASSES},
    **{cls: ("cpu_count", "ram", "disk_space") for cls in SERVER_CLASSES},
    **{cls: ("size_bytes",) for cls in DISK_CLASSES},
}

RESOLUTION_MIX: tuple[tuple[str, float], ...] = (
    ("field", 0.765),
    ("relation", 0.10),
    ("rule", 0.07),
    ("none", 0.055),
    ("ghost", 0.01),
)
"""How CIs name their application; "field" and "ghost" together are the u_application carriers."""

GHOST_CODES = tuple(f"GHOST-{n:02d}" for n in range(1, 10))
MESSY_CODE_SHARE = 0.01
WRAPPED_NUMBERS_SHARE = 0.10

LIFECYCLE_CREATED = 0.08
LIFECYCLE_DECOMMISSIONED = 0.07
LIFECYCLE_BOTH = 0.02

DEFECT_SHARE = 0.025
DEFECT_KINDS = (
    "non_numeric",
    "empty",
    "negative",
    "nan",
    "huge_float",
    "huge_int",
    "missing_numeric",
    "missing_class",
)
DAMAGED_VALUES = {
    "non_numeric": "n/a",
    "empty": "",
    "nan": "NaN",
    "huge_float": "1e30",
    "huge_int": "99999999999999999999",
}
"""Replacement values per defect kind; the nines exceed any class's plausible maximum, bytes included."""
MAX_DEFECT_NIGHTS = 7

DUPLICATE_SHARE = 0.005
DUPLICATE_NIGHTS = 4
"""Duplicates come from a few bad nights (a retried export), not from every night."""

CLASS_NAME_PREFIX = {
    "cmdb_ci_vm_instance": "vm",
    "cmdb_ci_vmware_instance": "vmw",
    "cmdb_ci_linux_server": "lnx",
    "cmdb_ci_win_server": "win",
    "cmdb_ci_unix_server": "aix",
    "cmdb_ci_disk": "dsk",
    "cmdb_ci_storage_volume": "vol",
    "cmdb_ci_printer": "prn",
    "cmdb_ci_ups": "ups",
}

SERVER_OS = {
    "cmdb_ci_linux_server": (("Linux Red Hat", ("7.9", "8.9", "9.4")), ("Linux SuSE", ("12.5", "15.5"))),
    "cmdb_ci_win_server": (("Windows 2016 Standard", ("10.0",)), ("Windows 2019 Standard", ("10.0",))),
    "cmdb_ci_unix_server": (("AIX", ("7.2", "7.3")), ("Solaris", ("11.4",))),
}
VIRTUAL_SHARE = {"cmdb_ci_linux_server": 0.6, "cmdb_ci_win_server": 0.5, "cmdb_ci_unix_server": 0.1}


@dataclass(frozen=True)
class CmdbSummary:
    """What a generation wrote; ``cmdb_ci`` holds ``ci_documents + application_documents``."""

    dumps: int
    ci_documents: int
    application_documents: int
    relation_documents: int
    first_dump: datetime.date
    last_dump: datetime.date


@dataclass(frozen=True)
class _AppRecord:
    """An application as the CMDB knows it: its estate data plus its record's sys_id."""

    code: str
    name: str
    group_code: str
    sys_id: str
    document: Document


@dataclass(frozen=True)
class _Defect:
    """One malformation of a CI, present in the dumps of nights ``first..last``."""

    kind: str
    field: str
    first: int
    last: int


@dataclass
class _CiPlan:
    """Everything about one infrastructure CI, decided once before any night is written."""

    document: Document
    first: int
    last: int
    relation: Document | None = None
    defect: _Defect | None = None
    duplicate_nights: frozenset[int] = field(default_factory=frozenset)

    def alive(self, night: int) -> bool:
        """Whether the CI exists (and so is exported) on that night."""
        return self.first <= night <= self.last

    def document_for(self, night: int) -> Document:
        """The CI as exported that night, damaged if a defect covers the night."""
        if self.defect is None or not self.defect.first <= night <= self.defect.last:
            return self.document
        return _damage(self.document, self.defect)


def dump_nights(today: datetime.date, months: int) -> list[datetime.date]:
    """Every night with a dump: from the first day of ``months - 1`` months before today's month."""
    if months < 1:
        raise ValueError("months must be at least 1")
    index = today.year * 12 + today.month - 1 - (months - 1)
    day = datetime.date(index // 12, index % 12 + 1, 1)
    return [day + datetime.timedelta(days=n) for n in range((today - day).days + 1)]


def generate_cmdb(
    db: Database[Any],
    estate: Estate,
    *,
    today: datetime.date,
    months: int = 3,
    cis: int = 3000,
    seed: int = 42,
) -> CmdbSummary:
    """Write the nightly CMDB dumps of the period ending ``today`` into ``db``.

    ``_id`` values come from a counter, so generating twice into the same database fails with a
    duplicate key error instead of silently doubling the estate: give it a fresh database.
    """
    if cis < 0:
        raise ValueError("cis must not be negative")
    nights = dump_nights(today, months)
    rng = random.Random(seed)
    _create_indexes(db)
    apps = _application_records(estate, nights[0], rng)
    plans = _Planner(estate, apps, nights, rng).plan(cis)
    writer = _BatchWriter(db)
    for index, night in enumerate(nights):
        _write_night(writer, index, night, apps, plans, rng)
    writer.flush()
    return CmdbSummary(
        dumps=len(nights),
        ci_documents=writer.counts["ci"],
        application_documents=writer.counts["application"],
        relation_documents=writer.counts["relation"],
        first_dump=nights[0],
        last_dump=nights[-1],
    )


def _create_indexes(db: Database[Any]) -> None:
    """Create the indexes the CMDB team maintains, which the pipeline's queries rely on."""
    db[CI_COLLECTION].create_index("_ingested_at")
    db[CI_COLLECTION].create_index([("sys_id", 1), ("_ingested_at", 1)])
    db[REL_COLLECTION].create_index("child")
    db[REL_COLLECTION].create_index("_ingested_at")


def _sys_id(rng: random.Random) -> str:
    """A ServiceNow sys_id: 32 lower-case hex digits."""
    return f"{rng.getrandbits(128):032x}"


def _link(table: str, sys_id: str) -> str:
    """The Table API link ServiceNow puts next to a reference's value."""
    return f"{INSTANCE_URL}/{table}/{sys_id}"


def _timestamp(moment: datetime.datetime) -> str:
    """ServiceNow's ``sys_updated_on`` format."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _updated_before(day: datetime.date, max_days: int, rng: random.Random) -> str:
    """A plausible last-update time, during office hours, up to ``max_days`` before ``day``."""
    moment = datetime.datetime.combine(day, datetime.time()) - datetime.timedelta(
        days=rng.randint(1, max_days), seconds=-rng.randint(8 * 3600, 19 * 3600)
    )
    return _timestamp(moment)


def _application_records(estate: Estate, first_night: datetime.date, rng: random.Random) -> list[_AppRecord]:
    """One ``cmdb_ci_business_app`` record per estate application, exported every night."""
    records = []
    for app in estate.applications:
        sys_id = _sys_id(rng)
        document: Document = {
            "sys_id": sys_id,
            "sys_class_name": APPLICATION_CLASS,
            "u_code": app.code,
            "name": app.name,
            "u_application_group": {"display_value": app.group_name, "value": app.group_code},
            "operational_status": "1",
            "sys_updated_on": _updated_before(first_night, 900, rng),
        }
        records.append(_AppRecord(app.code, app.name, app.group_code, sys_id, document))
    return records


def _quota(mix: Sequence[tuple[str, float]], count: int, rng: random.Random) -> list[str]:
    """Exactly apportioned labels (largest remainder), shuffled, so shares hold even for small counts."""
    exact = [(label, share * count) for label, share in mix]
    sizes = {label: int(value) for label, value in exact}
    by_remainder = sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)
    for label, _ in by_remainder[: count - sum(sizes.values())]:
        sizes[label] += 1
    labels = [label for label, _ in mix for _ in range(sizes[label])]
    rng.shuffle(labels)
    return labels


class _Planner:
    """Decides every CI's identity, sizes, application, lifecycle and defects up front."""

    def __init__(
        self, estate: Estate, apps: list[_AppRecord], nights: list[datetime.date], rng: random.Random
    ) -> None:
        self._apps = apps
        self._by_code = {app.code: app for app in apps}
        self._cum_weights = list(accumulate(estate.weights))
        self._first_dump = nights[0]
        self._nights = len(nights)
        self._rng = rng
        self._sequence: dict[str, int] = {}
        groups = sorted({app.group_code for app in apps})
        self._cost_centers = {group: _sys_id(rng) for group in groups}
        self._groups = groups

    def plan(self, count: int) -> list[_CiPlan]:
        """Plan ``count`` CIs, then sprinkle the defects and duplicates over them."""
        classes = _quota(CLASS_MIX, count, self._rng)
        resolutions = _quota(RESOLUTION_MIX, count, self._rng)
        plans = [self._plan_ci(cls, how) for cls, how in zip(classes, resolutions, strict=True)]
        self._assign_defects(plans)
        self._assign_duplicates(plans)
        return plans

    def _plan_ci(self, cls: str, how: str) -> _CiPlan:
        """One CI: its base document, lifecycle and, for relation-resolved CIs, its relation."""
        rng = self._rng
        app = self._pick_app(how)
        name = self._name(cls, how, app)
        sys_id = _sys_id(rng)
        first, last = self._lifecycle()
        group = app.group_code if app else self._groups[rng.randrange(len(self._groups))]
        document: Document = {
            "sys_id": sys_id,
            "sys_class_name": cls,
            "name": name,
            "fqdn": f"{name}.corp.example",
        }
        document.update(_class_attributes(cls, rng))
        document.update(_wrap_numbers(_numbers(cls, rng), rng.random() < WRAPPED_NUMBERS_SHARE))
        cost_center = self._cost_centers[group]
        document["cost_center"] = {"link": _link("cmn_cost_center", cost_center), "value": cost_center}
        document["operational_status"] = "1"
        document["install_status"] = "1"
        document["sys_updated_on"] = self._updated_on(first)
        reference = self._application_reference(how, app)
        if reference is not None:
            document["u_application"] = reference
        relation = self._relation(sys_id, app) if how == "relation" and app else None
        return _CiPlan(document=document, first=first, last=last, relation=relation)

    def _pick_app(self, how: str) -> _AppRecord | None:
        """The CI's real application: weighted for field/relation, the rule's one for rule CIs."""
        if how in ("field", "relation"):
            return self._rng.choices(self._apps, cum_weights=self._cum_weights)[0]
        if how == "rule":
            return self._by_code[NAME_RULES[self._rng.randrange(len(NAME_RULES))][1]]
        return None

    def _name(self, cls: str, how: str, app: _AppRecord | None) -> str:
        """Host-style names; only rule CIs may start with a mapping-rule prefix."""
        if how == "rule" and app is not None:
            prefix = next(rule[1:] for rule, code in NAME_RULES if code == app.code)
            return f"{prefix}{self._next(prefix):03d}"
        if how == "none":
            return f"tmp-{self._next('tmp-'):03d}"
        slug = app.code.lower().replace("-", "") if app else "legacy"
        stem = f"{CLASS_NAME_PREFIX[cls]}-{slug}-"
        return f"{stem}{self._next(stem):02d}"

    def _next(self, stem: str) -> int:
        """Per-stem sequence number, as host naming conventions do."""
        self._sequence[stem] = self._sequence.get(stem, 0) + 1
        return self._sequence[stem]

    def _lifecycle(self) -> tuple[int, int]:
        """First and last night of the CI; most CIs live the whole period."""
        rng, last_night = self._rng, self._nights - 1
        if last_night == 0:
            return 0, 0
        draw = rng.random()
        if draw < LIFECYCLE_CREATED:
            return rng.randint(1, last_night), last_night
        if draw < LIFECYCLE_CREATED + LIFECYCLE_DECOMMISSIONED:
            return 0, rng.randint(0, last_night - 1)
        if draw < LIFECYCLE_CREATED + LIFECYCLE_DECOMMISSIONED + LIFECYCLE_BOTH:
            first = rng.randint(1, last_night)
            return first, rng.randint(first, last_night)
        return 0, last_night

    def _updated_on(self, first: int) -> str:
        """Last update: long ago for existing CIs, the day before their first dump for new ones."""
        day = self._first_dump + datetime.timedelta(days=first)
        return _updated_before(day, 1 if first else 700, self._rng)

    def _application_reference(self, how: str, app: _AppRecord | None) -> Any:
        """The ``u_application`` value in one of the shapes exports carry, or None when absent."""
        rng = self._rng
        if how == "ghost":
            return GHOST_CODES[rng.randrange(len(GHOST_CODES))]
        if how != "field" or app is None:
            return None
        code = app.code
        if rng.random() < MESSY_CODE_SHARE:
            code = (f" {code.lower()} ", code.lower(), f"{code} ")[rng.randrange(3)]
        draw = rng.random()
        if draw < 0.5:
            return code
        if draw < 0.75:
            return {"value": code, "link": _link(APPLICATION_CLASS, app.sys_id)}
        return {"display_value": app.name, "value": code}

    def _relation(self, child: str, app: _AppRecord) -> Document:
        """The ``cmdb_rel_ci`` record tying a CI to its application, exported every night."""
        parent: Any = app.sys_id
        if self._rng.random() < 0.5:
            parent = {"value": app.sys_id, "link": _link(APPLICATION_CLASS, app.sys_id)}
        return {"sys_id": _sys_id(self._rng), "parent": parent, "child": child, "type": RELATION_TYPE}

    def _assign_defects(self, plans: list[_CiPlan]) -> None:
        """Damage a few CIs for a few nights, every kind in turn so each one shows up."""
        rng = self._rng
        candidates = [plan for plan in plans if plan.document["sys_class_name"] in NUMERIC_FIELDS]
        chosen = rng.sample(candidates, min(len(candidates), round(len(plans) * DEFECT_SHARE)))
        for number, plan in enumerate(chosen):
            kind = DEFECT_KINDS[number % len(DEFECT_KINDS)]
            fields = NUMERIC_FIELDS[plan.document["sys_class_name"]]
            target = "sys_class_name" if kind == "missing_class" else fields[rng.randrange(len(fields))]
            first = rng.randint(plan.first, plan.last)
            last = min(plan.last, first + rng.randint(0, MAX_DEFECT_NIGHTS - 1))
            plan.defect = _Defect(kind, target, first, last)

    def _assign_duplicates(self, plans: list[_CiPlan]) -> None:
        """Export a few CIs twice on a few bad nights, as a retried export does."""
        rng = self._rng
        bad_nights = rng.sample(range(self._nights), min(self._nights, DUPLICATE_NIGHTS))
        candidates = [plan for plan in plans if plan.first == 0 and plan.last == self._nights - 1]
        count = min(len(candidates), max(1, round(len(plans) * DUPLICATE_SHARE))) if plans else 0
        for plan in rng.sample(candidates, count):
            plan.duplicate_nights = frozenset(rng.sample(bad_nights, rng.randint(1, min(2, len(bad_nights)))))


def _class_attributes(cls: str, rng: random.Random) -> Document:
    """Non-numeric attributes specific to the CI class."""
    if cls in VM_CLASSES:
        object_id = f"vm-{rng.randint(100, 99999)}" if cls == "cmdb_ci_vmware_instance" else _sys_id(rng)[:18]
        return {"object_id": object_id, "state": "on"}
    if cls in SERVER_CLASSES:
        os_name, versions = SERVER_OS[cls][rng.randrange(len(SERVER_OS[cls]))]
        return {
            "ip_address": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "os": os_name,
            "os_version": versions[rng.randrange(len(versions))],
            "virtual": "true" if rng.random() < VIRTUAL_SHARE[cls] else "false",
        }
    if cls == "cmdb_ci_disk":
        return {"device_name": f"/dev/sd{'bcdefgh'[rng.randrange(7)]}"}
    if cls in UNKNOWN_CLASSES:
        return {"manufacturer": ("HP", "Xerox", "APC", "Eaton")[rng.randrange(4)]}
    return {}


def _weighted(values: Sequence[int], weights: Sequence[float], rng: random.Random) -> int:
    """One weighted draw from a small table."""
    return rng.choices(values, weights=weights)[0]


def _numbers(cls: str, rng: random.Random) -> dict[str, int]:
    """Realistic sizes: vCPU 1–64, RAM 1–512 GB (in MB), disks 20 GB–20 TB."""
    if cls in VM_CLASSES:
        cpus = _weighted((1, 2, 4, 8, 16, 32, 64), (8, 30, 28, 18, 9, 5, 2), rng)
        ram_gb = min(512, max(1, cpus * _weighted((1, 2, 4, 8), (5, 35, 45, 15), rng)))
        disks = _weighted((20, 40, 50, 80, 100, 200, 500, 1000, 2000), (8, 20, 15, 12, 18, 12, 8, 5, 2), rng)
        return {"cpus": cpus, "memory": ram_gb * 1024, "disks_size": disks}
    if cls in SERVER_CLASSES:
        cpus = _weighted((2, 4, 8, 12, 16, 24, 32, 48, 64), (5, 20, 25, 10, 15, 10, 8, 4, 3), rng)
        ram_gb = min(512, cpus * _weighted((2, 4, 8), (20, 50, 30), rng))
        disk = _weighted(
            (100, 146, 300, 600, 900, 1200, 2000, 4000, 8000, 20000),
            (10, 10, 20, 20, 12, 10, 8, 5, 3, 2),
            rng,
        )
        return {"cpu_count": cpus, "ram": ram_gb * 1024, "disk_space": disk}
    if cls in DISK_CLASSES:
        median, low = (200, 20) if cls == "cmdb_ci_disk" else (1000, 100)
        size_gb = min(20480, max(low, round(rng.lognormvariate(0, 1.2) * median)))
        return {"size_bytes": size_gb * 1024**3}
    return {}


def _wrap_numbers(numbers: dict[str, int], wrapped: bool) -> Document:
    """Numbers as strings, or as ``{display_value, value}`` when exported with display values."""
    if wrapped:
        return {key: {"display_value": f"{value:,}", "value": str(value)} for key, value in numbers.items()}
    return {key: str(value) for key, value in numbers.items()}


def _damage(document: Document, defect: _Defect) -> Document:
    """A copy of the document with the defect applied, keeping the field's wrapping."""
    damaged = dict(document)
    if defect.kind in ("missing_numeric", "missing_class"):
        del damaged[defect.field]
        return damaged
    current = damaged[defect.field]
    plain = current["value"] if isinstance(current, dict) else current
    value = f"-{plain}" if defect.kind == "negative" else DAMAGED_VALUES[defect.kind]
    damaged[defect.field] = {"display_value": value, "value": value} if isinstance(current, dict) else value
    return damaged


def _near_copy(document: Document, night: datetime.date, rng: random.Random) -> Document:
    """The second export of a CI edited during the dump: same data, a later ``sys_updated_on``."""
    copy = dict(document)
    edited = datetime.datetime.combine(night, datetime.time(DUMP_HOUR_UTC)) - datetime.timedelta(
        seconds=rng.randint(1, 600)
    )
    copy["sys_updated_on"] = _timestamp(edited)
    return copy


class _DumpClock:
    """Ingestion times of one export: 02:00 UTC then a millisecond or few per document."""

    def __init__(self, night: datetime.date, rng: random.Random) -> None:
        self._start = datetime.datetime.combine(night, datetime.time(DUMP_HOUR_UTC))
        self._rng = rng
        self._ms = 0

    def tick(self) -> datetime.datetime:
        """The next document's ``_ingested_at``, naive UTC at millisecond precision like BSON."""
        self._ms += 1 + int(self._rng.random() * 3)
        return self._start + datetime.timedelta(milliseconds=self._ms)


class _BatchWriter:
    """Buffers documents per collection and writes them with ``insert_many`` in bounded batches."""

    def __init__(self, db: Database[Any]) -> None:
        self._db = db
        self._buffers: dict[str, list[Document]] = {CI_COLLECTION: [], REL_COLLECTION: []}
        self._counter = 0
        self.counts = {"ci": 0, "application": 0, "relation": 0}

    def add(self, kind: str, document: Document, ingested_at: datetime.datetime) -> None:
        """Stamp ``_id`` and ``_ingested_at`` on a copy of the document and queue it."""
        self._counter += 1
        seconds = calendar.timegm(ingested_at.utctimetuple())
        object_id = ObjectId(seconds.to_bytes(4, "big") + self._counter.to_bytes(8, "big"))
        collection = REL_COLLECTION if kind == "relation" else CI_COLLECTION
        buffer = self._buffers[collection]
        buffer.append({"_id": object_id, **document, "_ingested_at": ingested_at})
        self.counts[kind] += 1
        if len(buffer) >= BATCH_SIZE:
            self._flush(collection)

    def flush(self) -> None:
        """Write whatever is still buffered."""
        for collection in self._buffers:
            self._flush(collection)

    def _flush(self, collection: str) -> None:
        buffer = self._buffers[collection]
        if buffer:
            self._db[collection].insert_many(buffer)
            self._buffers[collection] = []


def _write_night(
    writer: _BatchWriter,
    night_index: int,
    night: datetime.date,
    apps: list[_AppRecord],
    plans: list[_CiPlan],
    rng: random.Random,
) -> None:
    """One night's exports: applications, live CIs, the retried duplicates, then relations."""
    clock = _DumpClock(night, rng)
    for app in apps:
        writer.add("application", app.document, clock.tick())
    alive = [plan for plan in plans if plan.alive(night_index)]
    for plan in alive:
        writer.add("ci", plan.document_for(night_index), clock.tick())
    for plan in _duplicated(alive, night_index):
        writer.add("ci", _near_copy(plan.document, night, rng), clock.tick())
    relation_clock = _DumpClock(night, rng)
    for plan in alive:
        if plan.relation is not None:
            writer.add("relation", plan.relation, relation_clock.tick())


def _duplicated(plans: list[_CiPlan], night_index: int) -> Iterator[_CiPlan]:
    """The CIs exported a second time that night."""
    return (plan for plan in plans if night_index in plan.duplicate_nights)
