"""The synthetic organisation every demo generator draws from.

All domain generators (CMDB, private cloud, public cloud, native services) build their data on
the same :class:`Estate`, so one application shows up with the same code in every domain and the
cross-domain views of the mart have something to join. The estate is a pure function of its
arguments: a seeded ``random.Random`` is the only source of variation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIXED_APPLICATIONS: tuple[tuple[str, str, str], ...] = (
    ("PAYMENTS", "Payments Platform", "PAYMENTS"),
    ("CRM", "Customer Relationship Management", "RETAIL"),
    ("DATAHUB", "Data Hub", "DATA"),
    ("BACKUP", "Enterprise Backup", "ITOPS"),
    ("MONITORING", "Infrastructure Monitoring", "ITOPS"),
)
"""(code, name, home group) of the applications that demos, docs and tests refer to by name."""

GROUPS: tuple[tuple[str, str], ...] = (
    ("PAYMENTS", "Payments & Cards"),
    ("RETAIL", "Retail Banking"),
    ("DATA", "Data & Analytics"),
    ("ITOPS", "IT Operations"),
    ("CORPORATE", "Corporate Banking"),
    ("MARKETS", "Capital Markets"),
    ("RISK", "Risk Management"),
    ("FINANCE", "Group Finance"),
    ("HR", "Human Resources"),
    ("SECURITY", "Information Security"),
    ("DIGITAL", "Digital Channels"),
    ("INSURANCE", "Insurance"),
    ("WEALTH", "Wealth Management"),
    ("COMPLIANCE", "Compliance"),
    ("PROCUREMENT", "Procurement"),
    ("MARKETING", "Marketing"),
    ("LEGAL", "Legal"),
    ("TREASURY", "Treasury"),
    ("CUSTOMER", "Customer Service"),
    ("LOGISTICS", "Logistics"),
)
"""(code suffix, readable name) of business groups; the first four host the fixed applications."""

PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("PAY", "Payments", "PAYMENTS"),
    ("CRD", "Cards", "PAYMENTS"),
    ("CRM", "Customer", "RETAIL"),
    ("LND", "Lending", "RETAIL"),
    ("BI", "Analytics", "DATA"),
    ("RPT", "Reporting", "DATA"),
    ("OPS", "Operations", "ITOPS"),
    ("NET", "Network", "ITOPS"),
    ("CSH", "Cash Management", "CORPORATE"),
    ("TRD", "Trading", "MARKETS"),
    ("RSK", "Risk", "RISK"),
    ("FRD", "Fraud", "RISK"),
    ("ACC", "Accounting", "FINANCE"),
    ("BIL", "Billing", "FINANCE"),
    ("HR", "People", "HR"),
    ("IAM", "Identity", "SECURITY"),
    ("WEB", "Web", "DIGITAL"),
    ("MOB", "Mobile", "DIGITAL"),
    ("CLM", "Claims", "INSURANCE"),
    ("PRT", "Portfolio", "WEALTH"),
    ("KYC", "Onboarding", "COMPLIANCE"),
    ("ERP", "Purchasing", "PROCUREMENT"),
    ("MKT", "Campaign", "MARKETING"),
    ("DOC", "Documents", "LEGAL"),
    ("TRS", "Treasury", "TREASURY"),
    ("SUP", "Support", "CUSTOMER"),
    ("INV", "Inventory", "LOGISTICS"),
    ("API", "Integration", ""),
    ("NTF", "Notifications", ""),
)
"""(code prefix, name word, home group or "" for any) used to make application codes and names."""

NOUNS: tuple[str, ...] = (
    "Gateway",
    "Portal",
    "Engine",
    "Ledger",
    "Hub",
    "Service",
    "Batch",
    "Console",
    "Scheduler",
    "Connector",
    "Store",
    "Router",
    "Workbench",
    "Archive",
    "Tracker",
    "Monitor",
)

ZIPF_EXPONENT = 1.1
"""With 300 applications the top fifth carries roughly four fifths of the weight (a Pareto 80/20)."""

MAX_NUMBER = 999


@dataclass(frozen=True)
class Application:
    """One business application; ``weight`` is its share of the estate (all weights sum to 1)."""

    code: str
    name: str
    group_code: str
    group_name: str
    weight: float


@dataclass(frozen=True)
class Estate:
    """The organisation: the fixed applications first, then the generated ones in draw order."""

    applications: tuple[Application, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        """Application codes in estate order, for lookups and weighted draws."""
        return tuple(app.code for app in self.applications)

    @property
    def weights(self) -> tuple[float, ...]:
        """Weights aligned with :attr:`codes`, ready for ``random.Random.choices``."""
        return tuple(app.weight for app in self.applications)

    def by_code(self) -> dict[str, Application]:
        """Index the applications by code."""
        return {app.code: app for app in self.applications}


def build_estate(applications: int = 300, groups: int = 20, seed: int = 42) -> Estate:
    """Build the deterministic organisation shared by all demo generators.

    The five fixed applications always come first, in :data:`FIXED_APPLICATIONS` order, with the
    five heaviest ranks of a Zipf law, so demos can count on them carrying visible cost.
    """
    if not len(FIXED_APPLICATIONS) <= applications <= len(FIXED_APPLICATIONS) + len(PREFIXES) * MAX_NUMBER:
        raise ValueError(f"applications must be between {len(FIXED_APPLICATIONS)} and the codes available")
    if groups < 1:
        raise ValueError("groups must be at least 1")
    rng = random.Random(seed)
    group_list = _groups(groups)
    raw = _raw_applications(applications, group_list, rng)
    weights = _zipf_weights(applications, rng)
    return Estate(
        applications=tuple(
            Application(code=code, name=name, group_code=gcode, group_name=gname, weight=weight)
            for (code, name, gcode, gname), weight in zip(raw, weights, strict=True)
        )
    )


def _groups(count: int) -> list[tuple[str, str]]:
    """Return ``count`` (group code, group name) pairs, numbering repeats beyond the word list."""
    result = []
    for index in range(count):
        suffix, name = GROUPS[index % len(GROUPS)]
        round_ = index // len(GROUPS)
        if round_:
            suffix, name = f"{suffix}-{round_ + 1}", f"{name} {round_ + 1}"
        result.append((f"GRP-{suffix}", name))
    return result


def _home_group(home: str, group_list: list[tuple[str, str]], rng: random.Random) -> tuple[str, str]:
    """Place an application in its natural group when the estate has it, else in any group."""
    for group in group_list:
        if group[0] == f"GRP-{home}":
            return group
    return group_list[rng.randrange(len(group_list))]


def _raw_applications(
    count: int, group_list: list[tuple[str, str]], rng: random.Random
) -> list[tuple[str, str, str, str]]:
    """Draw (code, name, group code, group name) for the fixed then the generated applications."""
    raw = []
    for code, name, home in FIXED_APPLICATIONS:
        raw.append((code, name, *_home_group(home, group_list, rng)))
    used_codes = {item[0] for item in raw}
    used_names = {item[1] for item in raw}
    while len(raw) < count:
        prefix, word, home = PREFIXES[rng.randrange(len(PREFIXES))]
        code = f"{prefix}-{rng.randint(1, MAX_NUMBER):03d}"
        if code in used_codes:
            continue
        name = _unique_name(f"{word} {NOUNS[rng.randrange(len(NOUNS))]}", used_names)
        used_codes.add(code)
        used_names.add(name)
        raw.append((code, name, *_home_group(home, group_list, rng)))
    return raw


def _unique_name(base: str, used: set[str]) -> str:
    """Suffix a generation number ("Payments Gateway 2") when a name is already taken."""
    name, generation = base, 1
    while name in used:
        generation += 1
        name = f"{base} {generation}"
    return name


def _zipf_weights(count: int, rng: random.Random) -> list[float]:
    """Zipf weights with a little noise, normalised to sum to 1; fixed applications rank 1–5."""
    ranks = list(range(len(FIXED_APPLICATIONS) + 1, count + 1))
    rng.shuffle(ranks)
    ranks = list(range(1, len(FIXED_APPLICATIONS) + 1)) + ranks
    raw = [rank**-ZIPF_EXPONENT * rng.uniform(0.85, 1.15) for rank in ranks]
    total = sum(raw)
    return [value / total for value in raw]
