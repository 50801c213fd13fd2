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
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from finops_dagster.domains.open_legacy import DOMAIN_ID
from finops_dagster.domains.open_legacy.cmdb import CiMonth
from finops_dagster.domains.open_legacy.cmdb_payloads import (
    QuantityError,
    application_code,
    parse_quantity,
    text_value,
)
from finops_dagster.pricing import PricingRun, price
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import (
    UNALLOCATED_APPLICATION,
    DomainLoad,
    Reject,
    Releve,
    quantize_quantity,
)

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


@dataclass
class _Group:
    quantity_sum: Decimal
    observations: int


@dataclass
class _CiReading:
    """What one CI's documents said over the month, before allocation."""

    sums: dict[str, Decimal]
    counts: Counter[str]
    field_errors: Counter[tuple[str, str]]
    unknown_classes: Counter[str]


class OpenLegacyFold:
    """A streaming fold over the month's CIs: memory grows with applications × products and
    with rejects, never with the number of CIs or documents."""

    def __init__(
        self,
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
        self.snapshot = snapshot
        self.pricing = PricingRun(snapshot, DOMAIN_ID, month, run_id, computed_at)
        self.units = {product_id: product.usage_unit for product_id, product in snapshot.products.items()}
        self.application_sys_ids = application_sys_ids
        self.application_field = application_field
        self.computed_at = computed_at
        self.groups: dict[tuple[str, str], _Group] = {}
        self.source_sums: dict[str, Decimal] = {}
        self.rejects: list[Reject] = []
        self.quantity_rejects: list[tuple[Reject, Decimal]] = []
        self.counters: Counter[str] = Counter()
        self.unknown_refs: Counter[str] = Counter()
        self._parsed: dict[tuple[str, Decimal], Decimal | str] = {}

    def add_all(self, cis: Iterable[CiMonth]) -> None:
        with localcontext() as ctx:
            ctx.prec = ARITHMETIC_PRECISION
            for ci in cis:
                self._add(ci)

    def _add(self, ci: CiMonth) -> None:
        self.counters["documents_of_other_months"] += ci.other_months
        if not ci.observations and not ci.undated:
            return
        self.counters["cis"] += 1
        self.counters["documents"] += len(ci.observations) + len(ci.undated)
        self._reject_undated(ci)
        if not ci.observations:
            return
        self.dump_days.update(obs["at"].date() for obs in ci.observations)
        kept, extras = self._split_duplicates(ci)
        reading = self._read(kept)
        extra_reading = self._read(extras)
        application, method = self._resolve(ci, kept[-1] if kept else ci.observations[-1])
        self.counters[f"resolved_by_{method}"] += 1
        for product_id, quantity in reading.sums.items():
            group = self.groups.setdefault((application, product_id), _Group(Decimal(0), 0))
            group.quantity_sum += quantity
            group.observations += reading.counts[product_id]
        ref = self._ref(ci)
        latest = ci.observations[-1]
        self._reject_extras(ci, ref, extras, extra_reading)
        self._reject_field_errors(ref, latest, reading.field_errors + extra_reading.field_errors)
        for cls, count in (reading.unknown_classes + extra_reading.unknown_classes).items():
            self._reject(
                ref,
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

    def _reject_undated(self, ci: CiMonth) -> None:
        """Documents whose dump time cannot be read: no dump to average them in, so rejects."""
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for observation, reason in ci.undated:
            by_reason.setdefault(reason, []).append(observation)
        for reason, observations in sorted(by_reason.items()):
            self._reject(
                self._ref(ci),
                f"{reason} in {len(observations)} document(s): no dump to count it in "
                "(its month is that of its ObjectId _id)",
                observations[0],
                records=sum(self._readings(observation) for observation in observations),
            )

    def _split_duplicates(self, ci: CiMonth) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """First document of a CI in each dump counts; later ones (and all without sys_id) do not."""
        if ci.sys_id is None:
            return [], list(ci.observations)
        kept: list[dict[str, Any]] = []
        extras: list[dict[str, Any]] = []
        seen_days: set[dt.date] = set()
        for obs in ci.observations:
            day = obs["at"].date()
            (extras if day in seen_days else kept).append(obs)
            seen_days.add(day)
        return kept, extras

    def _read(self, observations: list[dict[str, Any]]) -> _CiReading:
        """What the documents say, each distinct document read once and counted as often as it
        appears: a CI's dumps mostly repeat the same sizes night after night."""
        reading = _CiReading({}, Counter(), Counter(), Counter())
        for (cls, _), (obs, times) in _distinct_documents(observations, self.classes).items():
            if cls is None:
                reading.field_errors[("sys_class_name", "missing")] += times
                continue
            measures = self.classes.get(cls)
            if measures is None:
                reading.unknown_classes[cls] += times
                continue
            for measure in measures:
                value = self._quantity(obs.get(measure.key), measure)
                if isinstance(value, str):
                    reading.field_errors[(measure.field, value)] += times
                    continue
                total = value * times
                reading.sums[measure.product_id] = reading.sums.get(measure.product_id, Decimal(0)) + total
                reading.counts[measure.product_id] += times
                unit = self.units[measure.product_id]
                self.source_sums[unit] = self.source_sums.get(unit, Decimal(0)) + total
        return reading

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

    def _resolve(self, ci: CiMonth, latest: dict[str, Any]) -> tuple[str, str]:
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

    def _ref(self, ci: CiMonth) -> str:
        latest = ci.observations[-1] if ci.observations else ci.undated[-1][0]
        name = text_value(latest.get("name")) or "unnamed"
        return f"{ci.sys_id} ({name})" if ci.sys_id else f"no sys_id ({name})"

    def _reject_extras(
        self, ci: CiMonth, ref: str, extras: list[dict[str, Any]], reading: _CiReading
    ) -> None:
        if not extras:
            return
        if ci.sys_id is None:
            reason = f"document without sys_id ({len(extras)} documents): cannot be tied to a CI"
        else:
            days = sorted({obs["at"].date().isoformat() for obs in extras})
            reason = (
                f"duplicate sys_id within a dump ({len(extras)} extra documents on {', '.join(days[:5])}"
                f"{'…' if len(days) > 5 else ''}): the first document of each dump counts"
            )
        if not reading.sums:
            self._reject(ref, reason, extras[0], records=0)
        for product_id, quantity in sorted(reading.sums.items()):
            unit = self.snapshot.products[product_id].usage_unit
            record = self._reject_record(ref, reason, extras[0], unit, reading.counts[product_id])
            self.quantity_rejects.append((record, quantity))

    def _reject_field_errors(
        self, ref: str, latest: dict[str, Any], errors: Counter[tuple[str, str]]
    ) -> None:
        for (field_name, problem), count in sorted(errors.items()):
            self._reject(ref, f"{field_name}: {problem} in {count} document(s)", latest, records=count)

    def _reject(self, ref: str, reason: str, payload: dict[str, Any], *, records: int) -> None:
        self.rejects.append(self._reject_record(ref, reason, payload, None, records))

    def _reject_record(
        self, ref: str, reason: str, payload: dict[str, Any], unit: str | None, records: int
    ) -> Reject:
        """`records`: the readings the reject accounts for in the ledger (0 for a note on documents
        whose readings are accounted for elsewhere)."""
        return Reject(
            domain_id=DOMAIN_ID,
            period_month=self.month,
            run_id=self.run_id,
            source=SOURCE,
            source_ref=_printable(ref),
            reason=_printable(reason),
            usage_unit=unit,
            raw_payload=_jsonable(payload),
            source_record_count=records,
        )

    @property
    def dumps(self) -> int:
        """How many nightly dumps the month holds (days seen in its documents)."""
        return len(self.dump_days)

    def _monthly(self, quantity_sum: Decimal) -> Decimal:
        return quantize_quantity(quantity_sum / self.dumps) if self.dumps else Decimal(0)

    def finish(self) -> DomainLoad:
        with localcontext() as ctx:
            ctx.prec = ARITHMETIC_PRECISION
            self.rejects += [
                replace(reject, usage_quantity=self._monthly(quantity_sum))
                for reject, quantity_sum in self.quantity_rejects
            ]
            releves = [releve for key in sorted(self.groups) if (releve := self._price(*key)) is not None]
            source_totals = {unit: self._monthly(total) for unit, total in sorted(self.source_sums.items())}
        details: dict[str, Any] = dict(sorted(self.counters.items()))
        details["dumps"] = self.dumps
        details["unknown_application_refs"] = sum(self.unknown_refs.values())
        details["unknown_application_examples"] = [
            _printable(code) for code, _ in self.unknown_refs.most_common(5)
        ]
        return DomainLoad(
            domain_id=DOMAIN_ID,
            period_month=self.month,
            releves=releves,
            rejects=self.rejects,
            source_totals=source_totals,
            source_record_count=self.counters["documents"],
            details=details,
        )

    def _price(self, application: str, product_id: str) -> Releve | None:
        group = self.groups[(application, product_id)]
        priced = price(
            self.pricing,
            application=application,
            product_id=product_id,
            source=SOURCE,
            quantity=self._monthly(group.quantity_sum),
            records=group.observations,
        )
        if isinstance(priced, Reject):
            self.rejects.append(replace(priced, source_record_count=group.observations))
            return None
        return priced


def _distinct_documents(
    observations: list[dict[str, Any]], classes: dict[str, tuple[Measure, ...]]
) -> dict[tuple[str | None, tuple[Any, ...]], list[Any]]:
    """(class, measured values) → [one such document, how many]: identical documents read once."""
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
    return distinct


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
