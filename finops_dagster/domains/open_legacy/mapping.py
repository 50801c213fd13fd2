"""From CMDB configuration items to relevés: application resolution, products, averaging, pricing.

Averaging rule: a month's quantity of a product for a CI is the sum of what each of the month's
nightly dumps says, divided by the number of dumps ingested in that month. A CI present in every
dump with 4 vCPUs gives 4 vCPU-months; one decommissioned mid-month gives about half. The result
depends only on the dumps stored for that month, so reprocessing a past month gives the same
relevés. For the current month it is the month-to-date average.

Application resolution, first match wins, on the CI's latest counted document of the month
(duplicates within a dump do not count):
1. the configured application field (`u_application` by default), if it names a known application;
2. a `cmdb_rel_ci` relation of the month whose parent is an application record (most frequent);
3. the domain's mapping rules (regular expressions on a CI field, by priority);
4. the explicit unallocated application.
An application reference that names no known application falls through to the next step and is
counted in the load's details (`unknown_application_refs`).

Rejects, each with its reason: documents without `sys_id`, of an unknown or missing class,
duplicate documents of one CI in one dump (the first by `_id` counts), documents whose
`_ingested_at` is no readable time (missing, null, a number, an array, unparseable text: rejected in
the month of their ObjectId `_id`), numeric fields that are missing, not numbers, NaN, negative or
implausibly large (per field maximum in `cmdb_classes.csv`), and quantities of a product with no
rate card for the month. A NUL byte a document carries is written `\\x00` in rejects.

Ledger: every document of the month is counted here as *readings*, one per product its class
measures (one when it measures none), and each reading ends in exactly one `source_record_count`:
the relevé it was averaged into, or the reject that says why it was not (a field-level reject
counts the documents whose field failed; a note that accounts for nothing counts 0). The
reconciliation compares their sum with the month's count made apart from this fold (`ledger.py`).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import psycopg

from finops_dagster.domains.open_legacy import DOMAIN_ID
from finops_dagster.domains.open_legacy.cmdb import CiMonth, CiSummary, summarize
from finops_dagster.domains.open_legacy.cmdb_payloads import (
    QuantityError,
    application_code,
    parse_quantity,
    text_value,
)
from finops_dagster.priced_usage import PricedUsageFold
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.reject_reasons import RejectReason
from finops_dagster.releve import UNALLOCATED_APPLICATION, DomainLoad

SOURCE = "cmdb"
CLASSES_FILE = Path(__file__).resolve().parent / "cmdb_classes.csv"
ARITHMETIC_PRECISION = 60


@dataclass(frozen=True)
class Measure:
    """A numeric CMDB field that becomes a product: quantity = value × factor."""

    field: str
    product_id: str
    factor: Decimal
    maximum: Decimal

    @property
    def key(self) -> str:
        """Where the client's aggregation puts the field in an observation."""
        return f"f_{self.field}"


def load_class_catalog(path: Path = CLASSES_FILE) -> dict[str, tuple[Measure, ...]]:
    """Which classes are billable and how their fields become products (data, not code)."""
    catalog: dict[str, list[Measure]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            catalog.setdefault(row["sys_class_name"], []).append(
                Measure(row["field"], row["product_id"], Decimal(row["factor"]), Decimal(row["max_value"]))
            )
    return {cls: tuple(measures) for cls, measures in catalog.items()}


def measured_fields(catalog: dict[str, tuple[Measure, ...]]) -> list[str]:
    return sorted({measure.field for measures in catalog.values() for measure in measures})


@dataclass(frozen=True)
class _StateReading:
    """What one distinct state of a document says: each product's quantity for one dump, the
    fields that could not be read (field, why) and, for a class not measured, the class."""

    quantities: tuple[tuple[str, Decimal], ...]
    field_errors: tuple[tuple[str, str], ...] = ()
    unknown_class: str | None = None


@dataclass
class _CiReading:
    """What one CI's documents said over the month, before allocation: per product the sum of its
    quantities over the dumps and how many readings made it; the problems, when there are any."""

    sums: dict[str, Decimal] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    problems: _Problems | None = None


@dataclass
class _Problems:
    field_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown_classes: Counter[str] = field(default_factory=Counter)


NO_PROBLEMS = _Problems()
"""(shared: never written to)"""


NOTHING_READ = _CiReading()
"""The reading of no documents (shared: never written to)."""


class OpenLegacyFold:
    """The month's CIs, one summary at a time (one row per CI from MongoDB's aggregation): each
    CI's application resolved and each distinct state of its documents read once, its quantities
    added to its application × product; those sums are staged in PostgreSQL and divided by the
    month's dumps, rounded and priced there (`priced_usage.py`). Memory grows with applications ×
    products and with rejects, never with CIs or documents."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        month: dt.date,
        run_id: str,
        classes: dict[str, tuple[Measure, ...]],
        snapshot: ReferenceSnapshot,
        application_sys_ids: dict[str, str],
        application_field: str,
        computed_at: dt.datetime,
    ) -> None:
        self.month = month
        self.run_id = run_id
        self.dump_days: set[dt.date] = set()
        self.classes = classes
        self.measured = measured_fields(classes)
        self.snapshot = snapshot
        self.priced = PricedUsageFold(
            conn, domain_id=DOMAIN_ID, month=month, run_id=run_id, snapshot=snapshot, computed_at=computed_at
        )
        self.units = {product_id: product.usage_unit for product_id, product in snapshot.products.items()}
        self.application_sys_ids = application_sys_ids
        self.application_field = application_field
        self.computed_at = computed_at
        self.quantity_rejects: list[tuple[str, RejectReason, str, dict[str, Any], str, Decimal, int]] = []
        self.groups: dict[tuple[str, str], list[Any]] = {}
        """(application, product) → [sum of the CIs' quantities over the dumps, readings]."""
        self.counters: Counter[str] = Counter()
        self.unknown_refs: Counter[str] = Counter()
        self._parsed: dict[tuple[str, Decimal], Decimal | str] = {}
        self.state_keys = [f"f_{name}" for name in self.measured]
        self._states: dict[Any, _StateReading] = {}

    def add_dump_days(self, days: Iterable[dt.date]) -> None:
        """The month's dumps counted apart from the summaries (`CmdbClient.dump_days`)."""
        self.dump_days.update(days)

    def add_all(self, cis: Iterable[CiSummary | CiMonth]) -> None:
        with localcontext() as ctx:
            ctx.prec = ARITHMETIC_PRECISION
            for ci in cis:
                self._add(ci if isinstance(ci, CiSummary) else summarize(ci, self.measured))

    def _add(self, ci: CiSummary) -> None:
        self.counters["documents_of_other_months"] += ci.other_months
        if not ci.states and not ci.extras and not ci.undated:
            return
        self.counters["cis"] += 1
        self.counters["documents"] += ci.documents
        self._reject_undated(ci)
        if ci.latest is None or (not ci.states and not ci.extras):
            return
        if ci.days is not None:
            self.dump_days.update(ci.days)
        reading = self._read(ci.states)
        extra_reading = (
            self._read(_distinct_documents(ci.extras, self.classes)) if ci.extras else NOTHING_READ
        )
        application, method = self._resolve(ci, ci.latest_counted or ci.latest)
        self.counters[f"resolved_by_{method}"] += 1
        if ci.sys_id is not None:
            groups, counts = self.groups, reading.counts
            for product_id, quantity in reading.sums.items():
                group = groups.get((application, product_id))
                if group is None:
                    groups[(application, product_id)] = [quantity, counts[product_id]]
                else:
                    group[0] += quantity
                    group[1] += counts[product_id]
        if not ci.extras and reading.problems is None:
            return
        ref = self._ref(ci)
        latest = ci.latest
        self._reject_extras(ci, ref, extra_reading)
        problems, extra_problems = reading.problems or NO_PROBLEMS, extra_reading.problems or NO_PROBLEMS
        self._reject_field_errors(ref, latest, problems.field_errors + extra_problems.field_errors)
        for cls, count in (problems.unknown_classes + extra_problems.unknown_classes).items():
            self._reject(
                ref,
                RejectReason.UNKNOWN_CI_CLASS,
                f"unknown CI class {cls!r} in {count} document(s): not billable "
                "(add it to cmdb_classes.csv if it should be)",
                latest,
                records=count,
            )

    def _readings(self, observation: dict[str, Any]) -> int:
        """How many readings a document is in the ledger: one per product its class measures,
        one when it measures none (see the module docstring)."""
        cls = text_value(observation.get("cls"))
        return max(1, len(self.classes.get(cls, ()))) if cls is not None else 1

    def _reject_undated(self, ci: CiSummary) -> None:
        """Documents whose dump time cannot be read: no dump to average them in, so rejects."""
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for observation, reason in ci.undated:
            by_reason.setdefault(reason, []).append(observation)
        for reason, observations in sorted(by_reason.items()):
            self._reject(
                self._ref(ci),
                RejectReason.UNDATED_DOCUMENT,
                f"{reason} in {len(observations)} document(s): no dump to count it in "
                "(its month is that of its ObjectId _id)",
                observations[0],
                records=sum(self._readings(observation) for observation in observations),
            )

    def _read(self, states: Iterable[tuple[dict[str, Any], int]]) -> _CiReading:
        """What the documents say, each distinct state read once per month and counted as often as
        dumps said it: a CI's dumps mostly repeat the same sizes night after night, and CIs of a
        size share it."""
        reading = _CiReading()
        sums, counts = reading.sums, reading.counts
        for state, times in states:
            said = self._state_reading(state)
            for product_id, quantity in said.quantities:
                sums[product_id] = sums.get(product_id, Decimal(0)) + quantity * times
                counts[product_id] = counts.get(product_id, 0) + times
            if said.field_errors or said.unknown_class is not None:
                problems = reading.problems = reading.problems or _Problems()
                for error in said.field_errors:
                    problems.field_errors[error] += times
                if said.unknown_class is not None:
                    problems.unknown_classes[said.unknown_class] += times
        return reading

    def _state_reading(self, state: dict[str, Any]) -> _StateReading:
        """A state's reading, cached by its raw class and measured values."""
        key: Any = (state.get("cls"), *map(state.get, self.state_keys))
        try:
            cached = self._states.get(key)
        except TypeError:  # references are dicts
            key = _frozen(list(key))
            cached = self._states.get(key)
        if cached is None:
            cached = self._states[key] = self._parse_state(state)
        return cached

    def _parse_state(self, state: dict[str, Any]) -> _StateReading:
        cls = text_value(state.get("cls"))
        if cls is None:
            return _StateReading((), (("sys_class_name", "missing"),))
        measures = self.classes.get(cls)
        if measures is None:
            return _StateReading((), (), cls)
        quantities: list[tuple[str, Decimal]] = []
        errors: list[tuple[str, str]] = []
        for measure in measures:
            value = self._quantity(state.get(measure.key), measure)
            if isinstance(value, str):
                errors.append((measure.field, value))
            else:
                quantities.append((measure.product_id, value))
        return _StateReading(tuple(quantities), tuple(errors))

    def _quantity(self, raw: Any, measure: Measure) -> Decimal | str:
        """The product quantity of a raw field, or the reason it has none (cached: dumps repeat)."""
        key = (raw, measure.maximum) if isinstance(raw, str) else None
        if key is not None and key in self._parsed:
            cached = self._parsed[key]
            return cached * measure.factor if isinstance(cached, Decimal) else cached
        try:
            parsed: Decimal | str = parse_quantity(raw, maximum=measure.maximum)
        except QuantityError as error:
            parsed = str(error)
        if key is not None:
            self._parsed[key] = parsed
        return parsed * measure.factor if isinstance(parsed, Decimal) else parsed

    def _resolve(self, ci: CiSummary, latest: dict[str, Any]) -> tuple[str, str]:
        code = application_code(latest.get("app"))
        if code and code in self.snapshot.applications:
            return code, "field"
        if code:
            self.unknown_refs[code] += 1
        related = Counter(
            self.application_sys_ids[parent]
            for parent in ci.relation_parents
            if parent in self.application_sys_ids
        )
        for related_code, _ in sorted(related.items(), key=lambda item: (-item[1], item[0])):
            if related_code in self.snapshot.applications:
                return related_code, "relation"
        by_rule = self.snapshot.application_by_rules(
            lambda field: text_value(latest.get(field, latest.get(f"f_{field}")))
        )
        if by_rule is not None:
            return by_rule, "rule"
        return UNALLOCATED_APPLICATION, "unallocated"

    def _ref(self, ci: CiSummary) -> str:
        latest = ci.latest or {}
        name = text_value(latest.get("name")) or "unnamed"
        return f"{ci.sys_id} ({name})" if ci.sys_id else f"no sys_id ({name})"

    def _reject_extras(self, ci: CiSummary, ref: str, reading: _CiReading) -> None:
        """Duplicates (and documents without sys_id) with their quantities; the quantity rejects
        are made at `finish`, once the month's dumps are known."""
        extras = ci.extras
        if not extras:
            return
        code = RejectReason.DUPLICATE_DOCUMENT if ci.sys_id else RejectReason.MISSING_CI_ID
        if ci.sys_id is None:
            reason = f"document without sys_id ({len(extras)} documents): cannot be tied to a CI"
        else:
            days = sorted({obs["at"].date().isoformat() for obs in extras})
            reason = (
                f"duplicate sys_id within a dump ({len(extras)} extra documents on {', '.join(days[:5])}"
                f"{'…' if len(days) > 5 else ''}): the first document of each dump counts"
            )
        if not reading.sums:
            self._reject(ref, code, reason, extras[0], records=0)
        for product_id, quantity in sorted(reading.sums.items()):
            unit = self.snapshot.products[product_id].usage_unit
            self.quantity_rejects.append(
                (ref, code, reason, extras[0], unit, quantity, reading.counts[product_id])
            )

    def _reject_field_errors(
        self, ref: str, latest: dict[str, Any] | None, errors: Counter[tuple[str, str]]
    ) -> None:
        for (field_name, problem), count in sorted(errors.items()):
            code = _field_error_code(field_name, problem)
            reason = f"{field_name}: {problem} in {count} document(s)"
            self._reject(ref, code, reason, latest or {}, records=count)

    def _reject(
        self,
        ref: str,
        code: RejectReason,
        reason: str,
        payload: dict[str, Any] | None,
        *,
        records: int,
        unit: str | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        """`records`: the readings the reject accounts for in the ledger (0 for a note on documents
        whose readings are accounted for elsewhere); `quantity`: the sum over the dumps."""
        self.priced.reject(
            SOURCE,
            _printable(ref),
            _printable(reason),
            _jsonable(payload),
            code=code,
            unit=unit,
            quantity=quantity,
            records=records,
        )

    @property
    def dumps(self) -> int:
        """How many nightly dumps the month holds (days seen in its documents)."""
        return len(self.dump_days)

    def finish(self) -> DomainLoad:
        """Stage the month's sums per application × product (COPY) and price them in SQL: divided
        by the month's dumps, rounded and priced there, as every metered domain is."""
        for (application, product_id), (quantity, readings) in self.groups.items():
            self.priced.add_measure(SOURCE, application, product_id, quantity, application, records=readings)
        self.priced.divisor = max(self.dumps, 1)
        for ref, code, reason, payload, unit, quantity, records in self.quantity_rejects:
            self._reject(ref, code, reason, payload, records=records, unit=unit, quantity=quantity)
        details: dict[str, Any] = dict(sorted(self.counters.items()))
        details["dumps"] = self.dumps
        details["unknown_application_refs"] = sum(self.unknown_refs.values())
        details["unknown_application_examples"] = [
            _printable(code) for code, _ in self.unknown_refs.most_common(5)
        ]
        load = self.priced.finish()
        return replace(load, source_record_count=self.counters["documents"], details=details)


def _field_error_code(field_name: str, problem: str) -> RejectReason:
    """A document without a class has no billable class; a quantity below zero is its own cause;
    any other unreadable number (parse_quantity's refusals) is an invalid quantity."""
    if field_name == "sys_class_name":
        return RejectReason.UNKNOWN_CI_CLASS
    if problem.startswith("negative"):
        return RejectReason.NEGATIVE_QUANTITY
    return RejectReason.INVALID_QUANTITY


def _distinct_documents(
    observations: list[dict[str, Any]], classes: dict[str, tuple[Measure, ...]]
) -> list[tuple[dict[str, Any], int]]:
    """(one such document, how many) per class and measured values: identical documents read once."""
    distinct: dict[tuple[str | None, tuple[Any, ...]], list[Any]] = {}
    for obs in observations:
        cls = text_value(obs.get("cls"))
        measures = classes.get(cls, ()) if cls is not None else ()
        key = (cls, tuple(_frozen(obs.get(measure.key)) for measure in measures))
        entry = distinct.get(key)
        if entry is None:
            distinct[key] = [obs, 1]
        else:
            entry[1] += 1
    return [(obs, times) for obs, times in distinct.values()]


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a raw value ({display_value, value} wrappers are dicts)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def _jsonable(value: Any) -> Any:
    """A raw document as JSON-ready data for releve_reject's jsonb: dates, ObjectIds and numbers JSON
    cannot write (NaN, infinities) as strings."""
    if isinstance(value, dict):
        return {_printable(str(key)): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _printable(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL: a NUL byte a document carries is written `\\x00`."""
    return text.replace("\x00", "\\x00")
