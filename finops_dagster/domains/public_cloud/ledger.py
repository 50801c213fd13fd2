"""The file ledger: per file, what an independent count found = what the reader accounted for.

The reader's own totals come from the same scan that made the relevés, so a reader that drops,
duplicates or misdates rows would still balance against them. The ledger holds each file's rows
(and its cost column's sum, where the cost is one column) as counted by `manifest`'s independent
pass against the reader's placement of the same file for the month read:

    rows = rows in relevés of this month + rows of other months (by month) + rejected rows
    cost = the same, summed

It is written into the load's details (`ledger`) and the reconciliation check evaluates it again
from those figures, so what it proves is visible in the mart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ROUNDING = Decimal("1e-18")
"""The reader keeps 18 decimals per line item; the independent count sums exactly."""


@dataclass
class MonthShare:
    rows: int = 0
    cost: Decimal = Decimal(0)


@dataclass
class FileLedger:
    path: str
    counted_rows: int
    counted_cost: Decimal | None
    cost_column: str | None
    placed: MonthShare = field(default_factory=MonthShare)
    rejected: MonthShare = field(default_factory=MonthShare)
    other_months: dict[str, MonthShare] = field(default_factory=dict)

    def other_month(self, month: str) -> MonthShare:
        return self.other_months.setdefault(month, MonthShare())

    @property
    def accounted_rows(self) -> int:
        return self.placed.rows + self.rejected.rows + sum(share.rows for share in self.other_months.values())

    @property
    def accounted_cost(self) -> Decimal:
        shares = [self.placed, self.rejected, *self.other_months.values()]
        return sum((share.cost for share in shares), Decimal(0))

    def imbalance(self) -> str | None:
        """What does not add up, in words naming the file and the figures; None when it balances."""
        problems = []
        if self.accounted_rows != self.counted_rows:
            problems.append(
                f"{self.counted_rows} rows counted, {self.accounted_rows} accounted for "
                f"({self.placed.rows} in relevés, {self.rejected.rows} rejected, "
                f"{self.accounted_rows - self.placed.rows - self.rejected.rows} in other months)"
            )
        if self.counted_cost is not None:
            difference = self.counted_cost - self.accounted_cost
            if abs(difference) > ROUNDING * (self.counted_rows + 1):
                problems.append(
                    f"{self.cost_column} sums to {self.counted_cost}, {self.accounted_cost} accounted for "
                    f"(off by {difference})"
                )
        return f"{self.path}: " + "; ".join(problems) if problems else None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "counted": {
                "rows": self.counted_rows,
                "cost": _text(self.counted_cost),
                "column": self.cost_column,
            },
            "placed": _share_json(self.placed),
            "rejected": _share_json(self.rejected),
            "other_months": {month: _share_json(share) for month, share in sorted(self.other_months.items())},
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> FileLedger:
        counted = value["counted"]
        return cls(
            path=value["path"],
            counted_rows=int(counted["rows"]),
            counted_cost=None if counted.get("cost") is None else Decimal(counted["cost"]),
            cost_column=counted.get("column"),
            placed=_share(value["placed"]),
            rejected=_share(value["rejected"]),
            other_months={month: _share(share) for month, share in value.get("other_months", {}).items()},
        )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _share_json(share: MonthShare) -> dict[str, Any]:
    return {"rows": share.rows, "cost": str(share.cost)}


def _share(value: Mapping[str, Any]) -> MonthShare:
    return MonthShare(int(value["rows"]), Decimal(value["cost"]))


def ledger_breaks(details: Mapping[str, Any]) -> list[str]:
    """Every file of a load's details (`{source: {"ledger": [...]}}`) whose ledger does not add up."""
    breaks = []
    for read in details.values():
        if not isinstance(read, Mapping):
            continue
        for entry in read.get("ledger", []):
            imbalance = FileLedger.from_json(entry).imbalance()
            if imbalance:
                breaks.append(imbalance)
    return breaks
