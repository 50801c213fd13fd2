"""How big the generated organisation is: one knob for every demo generator.

The same generators build the demo's small estate and a reference-scale one: each takes its
count from a :class:`Scale`, and all of them draw from the same :class:`~finops_dagster.demo.estate.Estate`
(``Scale.estate()``), so one application code shows up in the CMDB, both clouds and the internal
services, with the estate's Zipf skew (a few applications carry most of the cost) and each
generator's untagged or orphan share (unallocated cost).

- :meth:`Scale.demo` is what ``finops-dagster demo`` has always generated.
- :meth:`Scale.reference` is the size the nightly run is benchmarked at: 5,000 applications,
  1,000,000 CMDB CIs, 2,000 private-cloud tenants, 10,000,000 FOCUS line items a month across two
  providers, 50,000 GitLab projects, 5,000 Artifactory repositories and 24 months of published
  history. ``factor`` scales the volumes of the sources (CIs, tenants, line items, projects,
  repositories, Cube consumers); the organisation itself (its applications) and the history depth
  stay, so two factors compare the same estate with more or less source data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from finops_dagster.demo.estate import Estate, build_estate

REFERENCE_APPLICATIONS = 5_000
REFERENCE_CIS = 1_000_000
REFERENCE_TENANTS = 2_000
REFERENCE_FOCUS_LINE_ITEMS = 5_000_000
"""Per provider and month: the two demo providers make 10,000,000 line items a month."""
REFERENCE_GITLAB_PROJECTS = 50_000
REFERENCE_ARTIFACTORY_REPOS = 5_000
REFERENCE_CUBE_CONSUMERS = 1_000
REFERENCE_HISTORY_MONTHS = 24

MIN_TENANTS = 20
MIN_GITLAB_PROJECTS = 50
MIN_ARTIFACTORY_REPOS = 50
"""Floors that keep every generator's fixed parts (shared repositories, malformed projects,
orphan tenants) a minority at tiny factors."""


@dataclass(frozen=True)
class Scale:
    """The size of every generated source, and the estate they share."""

    name: str
    applications: int
    cis: int
    tenants: int
    focus_line_items: int
    """FOCUS line items per provider and month."""
    gitlab_projects: int
    artifactory_repos: int
    cube_consumers: int
    history_months: int
    """Months already published before the previous month (the benchmark fills them by SQL)."""
    seed: int = 42

    @classmethod
    def demo(cls) -> Scale:
        """The demo's estate: the sizes the generators have by default."""
        return cls(
            name="demo",
            applications=300,
            cis=3_000,
            tenants=120,
            focus_line_items=20_000,
            gitlab_projects=400,
            artifactory_repos=120,
            cube_consumers=60,
            history_months=0,
        )

    @classmethod
    def reference(cls, factor: float = 1.0) -> Scale:
        """The reference scale, its source volumes multiplied by ``factor`` (0 < factor)."""
        if not factor > 0 or not math.isfinite(factor):
            raise ValueError("factor must be a positive number")

        def scaled(count: int, floor: int = 1) -> int:
            return max(floor, round(count * factor))

        return cls(
            name=f"reference ×{factor:g}",
            applications=REFERENCE_APPLICATIONS,
            cis=scaled(REFERENCE_CIS),
            tenants=scaled(REFERENCE_TENANTS, MIN_TENANTS),
            focus_line_items=scaled(REFERENCE_FOCUS_LINE_ITEMS),
            gitlab_projects=scaled(REFERENCE_GITLAB_PROJECTS, MIN_GITLAB_PROJECTS),
            artifactory_repos=scaled(REFERENCE_ARTIFACTORY_REPOS, MIN_ARTIFACTORY_REPOS),
            cube_consumers=scaled(REFERENCE_CUBE_CONSUMERS, 10),
            history_months=REFERENCE_HISTORY_MONTHS,
        )

    def estate(self) -> Estate:
        """The organisation every generator of this scale draws from."""
        return build_estate(applications=self.applications, seed=self.seed)

    def describe(self) -> str:
        """One line with every size, for reports."""
        return (
            f"{self.name}: {self.applications:,} applications, {self.cis:,} CMDB CIs, "
            f"{self.tenants:,} private-cloud tenants, {self.focus_line_items:,} FOCUS line items per "
            f"provider-month, {self.gitlab_projects:,} GitLab projects, {self.artifactory_repos:,} "
            f"Artifactory repositories, {self.cube_consumers:,} Cube consumers, "
            f"{self.history_months} months of history"
        )
