"""Synthetic private cloud served over real HTTP: Keystone + Nova, OpenCost and an in-house usage API.

The ``private_cloud`` domain reads its usage from internal HTTP APIs, so the demo and the tests
must exercise the real clients (token exchange, microversions, marker pagination, short retention)
against a real socket rather than mocks. Three clouds share one set of tenants drawn from the demo
:class:`~finops_dagster.demo.estate.Estate`:

- an OpenStack cloud: Keystone v3 tokens and Nova ``os-simple-tenant-usage`` (microversion 2.40,
  paginated over *servers*, so one tenant can straddle two pages exactly as in Nova);
- a Kubernetes cluster measured by OpenCost (``/allocation/compute``, one set per step, namespace =
  tenant name, ``__idle__`` / ``__unallocated__`` included, only the last 14 days kept);
- a smaller in-house cloud exposing the generic usage API of
  ``domains/private_cloud/usage_api.openapi.yaml`` behind OIDC client credentials.

Bodies are pure functions of (tenants, today, request): two simulators built from the same estate,
seed and day answer byte-identical JSON. Only tokens differ between runs: they are random and
expire on the real clock, because the clients cache them against the real clock. The simulated
clock ``now`` is midnight UTC of ``today``, so the current month is measured up to yesterday.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import secrets
import statistics
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from typing import Any
from urllib.parse import urlencode

from finops_dagster.demo.estate import Estate
from finops_dagster.demo.simulated_http import PERIOD_PATTERN as PERIOD_PATTERN
from finops_dagster.demo.simulated_http import (
    BackgroundServer,
    Reply,
    Route,
    SimulatedApiError,
    SimulatedHandler,
    SimulatedServer,
    TokenStore,
    bearer_refusal,
    decimal_text,
    month_period,
    oidc_token_reply,
    same_secret,
    start_thread,
    token_page,
    totals_by_measure,
    usage_page_reply,
)

ENVIRONMENTS: tuple[tuple[str, float, float], ...] = (
    ("prod", 0.40, 1.00),
    ("preprod", 0.20, 0.45),
    ("staging", 0.15, 0.30),
    ("dev", 0.15, 0.25),
    ("test", 0.10, 0.20),
)
"""(environment suffix, draw weight, size factor): production tenants are the big ones."""

TENANT_NAME_PATTERN = re.compile(
    r"^(?P<application>[a-z][a-z0-9]*(?:-[0-9]+)?)-(?P<environment>prod|preprod|staging|dev|test)$"
)
"""Naming convention of application tenants (``pay-096-prod``); the shipped mapping rule reads it."""

ORPHAN_KINDS = ("sandbox", "poc", "lab", "training")
"""Tenants nobody claims: their names never follow the convention, so they land on unallocated."""
ORPHAN_SHARE = 0.10
MAX_ORPHAN_NUMBER = 99

VCPUS_PER_TENANT = 40
"""Average vCPUs per tenant; the estate's Zipf weights skew the split (a few tenants are huge)."""
SIZE_EXPONENT = 0.8
"""Dampens the Zipf weights a little: a weight 100 times larger gives a tenant about 40 times larger."""
MIN_TENANT_VCPUS = 2

KUBERNETES_SHARE = 0.55
"""Share of application tenants that also run a namespace on the Kubernetes cluster."""
ORPHAN_KUBERNETES_SHARE = 0.40
INHOUSE_SHARE = 0.25
"""Share of tenants also present on the third, smaller in-house cloud."""
UNTAGGED_SHARE = 0.10
"""Share of in-house items of application tenants that do not carry their application code."""
STOPPED_SHARE = 0.05


@dataclass(frozen=True)
class Flavor:
    """A Nova flavor: what each server of that flavor is billed for, every hour it exists."""

    name: str
    vcpus: int
    memory_mb: int
    local_gb: int


FLAVORS: tuple[Flavor, ...] = (
    Flavor("m1.small", 1, 2048, 20),
    Flavor("m1.medium", 2, 4096, 40),
    Flavor("m1.large", 4, 8192, 80),
    Flavor("m1.xlarge", 8, 16384, 160),
    Flavor("r1.large", 4, 32768, 80),
    Flavor("r1.xlarge", 8, 65536, 160),
    Flavor("c1.4xlarge", 16, 32768, 160),
    Flavor("m1.8xlarge", 32, 131072, 320),
)
SERVER_ROLES = ("app", "web", "db", "batch", "worker", "cache")
MIN_SERVER_AGE_DAYS = 200
"""Servers were all launched at least this long before today and never end: any window of the demo's
months is fully covered, so Nova's usage is exactly proportional to the window's hours."""
MAX_SERVER_AGE_DAYS = 1500

NOVA_MIN_VERSION = (2, 1)
NOVA_MAX_VERSION = (2, 96)
NOVA_PAGINATION_VERSION = (2, 40)
NOVA_STRICT_QUERY_VERSION = (2, 75)
NOVA_MAX_LIMIT = 1000
"""Nova's ``[api] max_limit``: before 2.40 the listing is silently truncated there, without a link."""
NOVA_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")
"""The only formats Nova parses: no time zone suffix (times are UTC)."""
NOVA_QUERY_PARAMS = frozenset({"start", "end", "detailed", "limit", "marker"})

OPENCOST_CLUSTER = "onprem-k8s-01"
OPENCOST_RETENTION = dt.timedelta(days=14)
OPENCOST_CPU_CORE_HOUR = 0.031611
OPENCOST_RAM_GIB_HOUR = 0.004237
OPENCOST_PV_GIB_HOUR = 0.00005479452
"""OpenCost's default on-premises prices (USD), per core-hour, GiB-hour of RAM and GiB-hour of PV."""
IDLE_KEY = "__idle__"
UNALLOCATED_KEY = "__unallocated__"
CLUSTER_HEADROOM = 1.4
"""Cluster capacity relative to the baseline requests: the rest shows up as ``__idle__``."""
GIB = 1024**3

USAGE_METRICS: tuple[tuple[str, str], ...] = (
    ("vcpu_hours", "vCPU-hour"),
    ("ram_gib_hours", "GiB-hour"),
    ("block_storage_gib_month", "GiB-month"),
)
"""(metric, unit) reported by the in-house cloud, as listed in ``usage_api_metrics.csv``."""
USAGE_DEFAULT_PAGE_SIZE = 100
USAGE_MAX_PAGE_SIZE = 1000
GIB_MONTH_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class Credentials:
    """What the simulated identity services accept; the defaults are the demo's (not secret) values."""

    application_credential_id: str = "4f1c5e0b9d2a4c7e8b3f6a1d0e9c8b7a"
    application_credential_name: str = "finops-reader"
    application_credential_secret: str = field(default="demo-application-credential-secret", repr=False)
    username: str = "finops-reader"
    password: str = field(default="demo-keystone-password", repr=False)
    user_domain: str = "Default"
    project: str = "finops"
    oidc_client_id: str = "finops-dagster"
    oidc_client_secret: str = field(default="demo-oidc-client-secret", repr=False)
    token_ttl_seconds: int = 3600


@dataclass(frozen=True)
class Server:
    """One Nova instance, launched ``age`` before the simulator's clock and still there.

    An age rather than a date keeps the tenants independent of the demo's day: the same estate and
    seed give the same servers whatever ``today`` the simulator is built with.
    """

    instance_id: str
    name: str
    flavor: Flavor
    age: dt.timedelta
    state: str

    def started_at(self, now: dt.datetime) -> dt.datetime:
        """Launch instant for a clock at ``now`` (naive UTC, as Nova reports it)."""
        return now - self.age


@dataclass(frozen=True)
class Namespace:
    """A tenant's footprint on the Kubernetes cluster: baseline requests and how much of them is used."""

    cpu_cores: float
    ram_bytes: float
    pv_bytes: float
    cpu_efficiency: float
    ram_efficiency: float


@dataclass(frozen=True)
class InhouseFootprint:
    """A tenant's footprint on the in-house cloud; ``ram_gib_per_vcpu`` may be fractional (1.5)."""

    vcpus: int
    ram_gib_per_vcpu: Decimal
    block_storage_gib: int
    reports_application: bool


@dataclass(frozen=True)
class Tenant:
    """One private-cloud tenant (an OpenStack project, a namespace, an in-house account).

    ``application`` is the estate code the tenant belongs to, or None for orphans; it is the truth
    the tests compare against, not something the APIs expose (except the in-house one, sometimes).
    """

    id: str
    name: str
    application: str | None
    environment: str | None
    servers: tuple[Server, ...]
    namespace: Namespace | None
    inhouse: InhouseFootprint | None

    @property
    def vcpus(self) -> int:
        """vCPUs of the tenant's servers: its vCPU-hours over a window are this times the hours."""
        return sum(server.flavor.vcpus for server in self.servers)

    @property
    def memory_mb(self) -> int:
        """MiB of RAM of the tenant's servers."""
        return sum(server.flavor.memory_mb for server in self.servers)

    @property
    def local_gb(self) -> int:
        """GiB of local disk of the tenant's servers."""
        return sum(server.flavor.local_gb for server in self.servers)


def private_cloud_tenants(estate: Estate, *, tenants: int = 120, seed: int = 42) -> list[Tenant]:
    """Draw the tenants of the demo's private clouds, sorted by name.

    About 90% belong to an application (``<lower app code>-<env>``, at most one tenant per
    application and environment), drawn by application weight so the heavy applications own the
    big tenants; the rest are orphans (``sandbox-17``). Each tenant's vCPUs are split into servers.
    """
    if tenants < 1:
        raise ValueError("tenants must be at least 1")
    orphans = round(tenants * ORPHAN_SHARE)
    if tenants - orphans > len(estate.applications) * len(ENVIRONMENTS):
        raise ValueError("more application tenants than applications × environments")
    rng = random.Random(seed)
    pairs = _application_environments(estate, tenants - orphans, rng)
    by_code = estate.by_code()
    raw = [
        by_code[code].weight ** SIZE_EXPONENT * _env_factor(env) * rng.lognormvariate(0, 0.25)
        for code, env in pairs
    ]
    typical = statistics.median(raw) if raw else 1.0
    names = [f"{code.lower()}-{env}" for code, env in pairs]
    owners: list[tuple[str | None, str | None]] = [(code, env) for code, env in pairs]
    used = set(names)
    for _ in range(orphans):
        name = _orphan_name(used, rng)
        used.add(name)
        names.append(name)
        owners.append((None, None))
        raw.append(typical * rng.uniform(0.1, 0.6))
    scale = VCPUS_PER_TENANT * tenants / sum(raw)
    result = []
    for name, (code, env), weight in zip(names, owners, raw, strict=True):
        target = max(MIN_TENANT_VCPUS, round(weight * scale))
        result.append(
            Tenant(
                id=f"{rng.getrandbits(128):032x}",
                name=name,
                application=code,
                environment=env,
                servers=_servers(name, target, rng),
                namespace=_namespace(target, code is not None, rng),
                inhouse=_inhouse(target, code is not None, rng),
            )
        )
    return sorted(result, key=lambda tenant: tenant.name)


def _env_factor(env: str) -> float:
    return next(factor for name, _, factor in ENVIRONMENTS if name == env)


def _application_environments(estate: Estate, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """Distinct (application code, environment) pairs, applications drawn by weight."""
    codes = estate.codes
    cum_weights = list(accumulate(estate.weights))
    env_names = [name for name, _, _ in ENVIRONMENTS]
    env_weights = {name: weight for name, weight, _ in ENVIRONMENTS}
    used: set[tuple[str, str]] = set()
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        code = rng.choices(codes, cum_weights=cum_weights)[0]
        free = [env for env in env_names if (code, env) not in used]
        if not free:
            continue
        env = rng.choices(free, weights=[env_weights[name] for name in free])[0]
        used.add((code, env))
        pairs.append((code, env))
    return pairs


def _orphan_name(used: set[str], rng: random.Random) -> str:
    """``sandbox-17`` style names; numbered so they never end with an environment suffix."""
    while True:
        name = f"{ORPHAN_KINDS[rng.randrange(len(ORPHAN_KINDS))]}-{rng.randint(1, MAX_ORPHAN_NUMBER)}"
        if name not in used:
            return name


def _servers(tenant: str, vcpus: int, rng: random.Random) -> tuple[Server, ...]:
    """Split a tenant's vCPUs into servers of the catalogue's flavors, all launched long ago."""
    servers = []
    remaining = vcpus
    sequence: dict[str, int] = {}
    while remaining > 0:
        fitting = [flavor for flavor in FLAVORS if flavor.vcpus <= remaining] or [FLAVORS[0]]
        flavor = fitting[rng.randrange(len(fitting))]
        remaining -= flavor.vcpus
        role = SERVER_ROLES[rng.randrange(len(SERVER_ROLES))]
        sequence[role] = sequence.get(role, 0) + 1
        age = dt.timedelta(
            days=rng.randint(MIN_SERVER_AGE_DAYS, MAX_SERVER_AGE_DAYS - 1),
            seconds=rng.randrange(86400),
            microseconds=rng.randrange(1_000_000),
        )
        servers.append(
            Server(
                instance_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                name=f"{tenant}-{role}-{sequence[role]:02d}",
                flavor=flavor,
                age=age,
                state="stopped" if rng.random() < STOPPED_SHARE else "active",
            )
        )
    return tuple(servers)


def _namespace(vcpus: int, owned: bool, rng: random.Random) -> Namespace | None:
    """Some tenants also run containers; requests are a fraction of their VM footprint."""
    if rng.random() >= (KUBERNETES_SHARE if owned else ORPHAN_KUBERNETES_SHARE):
        return None
    cores = round(max(0.1, vcpus * rng.uniform(0.1, 0.5)), 3)
    return Namespace(
        cpu_cores=cores,
        ram_bytes=float(round(cores * rng.uniform(2.0, 6.0) * GIB)),
        pv_bytes=float((0, 10, 20, 50, 100, 200, 500)[rng.randrange(7)] * GIB),
        cpu_efficiency=rng.uniform(0.05, 0.7),
        ram_efficiency=rng.uniform(0.3, 0.9),
    )


def _inhouse(vcpus: int, owned: bool, rng: random.Random) -> InhouseFootprint | None:
    """A quarter of the tenants also have a (smaller) account on the in-house cloud."""
    if rng.random() >= INHOUSE_SHARE:
        return None
    return InhouseFootprint(
        vcpus=max(1, round(vcpus * rng.uniform(0.1, 0.3))),
        ram_gib_per_vcpu=Decimal(("1.5", "2", "4", "8")[rng.randrange(4)]),
        block_storage_gib=(0, 50, 100, 250, 500, 1000)[rng.randrange(6)],
        reports_application=owned and rng.random() >= UNTAGGED_SHARE,
    )


class PrivateCloudSimulator:
    """The tenants, the simulated day and the credentials; every method builds an API body.

    Methods raise :class:`SimulatedApiError` for requests the real service refuses with 400; the
    HTTP layer (:func:`serve`) adds authentication and each API's error format.
    """

    def __init__(
        self,
        tenants: Sequence[Tenant],
        *,
        today: dt.date,
        credentials: Credentials | None = None,
    ) -> None:
        self.tenants: tuple[Tenant, ...] = tuple(tenants)
        self.today = today
        self.credentials = credentials or Credentials()
        self._servers = sorted(
            ((tenant, server) for tenant in self.tenants for server in tenant.servers),
            key=lambda pair: (pair[0].id, pair[1].instance_id),
        )
        self._quantities: dict[str, list[tuple[Tenant, str, str, Decimal]]] = {}
        self._server_keys = {
            server.instance_id: (tenant.id, server.instance_id) for tenant, server in self._servers
        }

    @property
    def now(self) -> dt.datetime:
        """The simulated clock, aware UTC: midnight of ``today`` (so today itself is not measured yet)."""
        return dt.datetime.combine(self.today, dt.time(), tzinfo=dt.UTC)

    # --- Keystone -------------------------------------------------------------------------------

    def keystone_projects(self, link_base: str = "http://127.0.0.1/identity/v3") -> dict[str, Any]:
        """``GET /v3/projects``: every tenant, plus the ``admin`` and ``service`` projects clouds have."""
        projects = [
            (_name_id("project", name), name, "Bootstrap project" if name == "admin" else "Service project")
            for name in ("admin", "service")
        ]
        projects += [(tenant.id, tenant.name, "") for tenant in self.tenants]
        return {
            "projects": [
                {
                    "id": project_id,
                    "name": name,
                    "domain_id": "default",
                    "description": description,
                    "enabled": True,
                    "is_domain": False,
                    "parent_id": "default",
                    "tags": [],
                    "options": {},
                    "links": {"self": f"{link_base}/projects/{project_id}"},
                }
                for project_id, name, description in sorted(projects, key=lambda item: item[1])
            ],
            "links": {"self": f"{link_base}/projects", "previous": None, "next": None},
        }

    # --- Nova -----------------------------------------------------------------------------------

    def nova_usage(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        detailed: bool = False,
        limit: int | None = None,
        marker: str | None = None,
        microversion: tuple[int, int] = NOVA_PAGINATION_VERSION,
        link_base: str = "http://127.0.0.1/compute/v2.1",
        link_params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``GET /os-simple-tenant-usage`` for ``[start, end)``, the way Nova computes it.

        Times are UTC (naive or aware); ``end`` is clipped to :attr:`now`. Servers are listed by
        (tenant id, instance id); from 2.40 ``limit`` (capped at ``max_limit``) and ``marker`` (the
        last instance id seen) page over servers and a full page carries a ``rel=next`` link that
        echoes ``link_params`` (default: the arguments) with the new marker; before 2.40 they are
        ignored and the listing is cut at ``max_limit`` without a link, as in Nova. Totals are
        float sums over the page's servers, in vCPU-hours, MiB-hours, GiB-hours and server-hours.
        """
        period_start, period_stop = _naive_utc(start), _naive_utc(end)
        if not period_start < period_stop:
            raise SimulatedApiError(
                "invalid_period", "Invalid start time. The start time cannot occur after the end time."
            )
        now = _naive_utc(self.now)
        period_stop = min(period_stop, now)
        paginated = microversion >= NOVA_PAGINATION_VERSION
        page_limit = NOVA_MAX_LIMIT
        if paginated:
            if limit is not None and limit < 0:
                raise SimulatedApiError("invalid_limit", "limit must be >= 0")
            page_limit = min(NOVA_MAX_LIMIT, NOVA_MAX_LIMIT if limit is None else limit)
        candidates = [pair for pair in self._servers if pair[1].started_at(now) < period_stop]
        if paginated and marker is not None:
            if marker not in self._server_keys:
                raise SimulatedApiError("marker_not_found", f"Marker {marker} could not be found.")
            after = self._server_keys[marker]
            candidates = [pair for pair in candidates if (pair[0].id, pair[1].instance_id) > after]
        page = candidates[:page_limit]
        usages: dict[str, dict[str, Any]] = {}
        for tenant, server in page:
            launched = server.started_at(now)
            hours = max((period_stop - max(launched, period_start)).total_seconds(), 0.0) / 3600.0
            summary = usages.get(tenant.id)
            if summary is None:
                summary = {"tenant_id": tenant.id}
                if detailed:
                    summary["server_usages"] = []
                summary.update(
                    total_local_gb_usage=0,
                    total_vcpus_usage=0,
                    total_memory_mb_usage=0,
                    total_hours=0,
                    start=period_start.isoformat(),
                    stop=period_stop.isoformat(),
                )
                usages[tenant.id] = summary
            flavor = server.flavor
            summary["total_local_gb_usage"] += flavor.local_gb * hours
            summary["total_vcpus_usage"] += flavor.vcpus * hours
            summary["total_memory_mb_usage"] += flavor.memory_mb * hours
            summary["total_hours"] += hours
            if detailed:
                summary["server_usages"].append(_server_usage(tenant, server, hours, now))
        body: dict[str, Any] = {"tenant_usages": list(usages.values())}
        if paginated and page_limit and len(page) == page_limit:
            params = (
                dict(link_params) if link_params is not None else _nova_params(start, end, detailed, limit)
            )
            params["marker"] = page[-1][1].instance_id
            query = urlencode(sorted(params.items()))
            body["tenant_usages_links"] = [
                {"href": f"{link_base}/os-simple-tenant-usage?{query}", "rel": "next"}
            ]
        return body

    # --- OpenCost -------------------------------------------------------------------------------

    def opencost_allocation(
        self, start: dt.datetime, end: dt.datetime, *, step: dt.timedelta | None = dt.timedelta(days=1)
    ) -> dict[str, Any]:
        """``GET /allocation/compute?aggregate=namespace`` for ``[start, end)``, one set per step.

        Steps run forward from ``start`` (the last one may be shorter); ``step=None`` gives one set
        for the window. OpenCost only keeps the last :data:`OPENCOST_RETENTION`: a step with no data
        left (older, or after :attr:`now`) is omitted, so a window older than 14 days answers an
        empty ``data`` list. Each set maps namespace → allocation with sorted keys, as Go does.
        """
        window_start, window_end = _aware_utc(start), _aware_utc(end)
        if not window_start < window_end:
            raise SimulatedApiError("invalid_window", "window start must be before its end")
        if step is not None and step <= dt.timedelta(0):
            raise SimulatedApiError("invalid_step", "step must be positive")
        now = self.now
        kept_from = now - OPENCOST_RETENTION
        sets = []
        step_start = window_start
        while step_start < window_end:
            step_end = min(window_end, step_start + step) if step is not None else window_end
            data_start, data_end = max(step_start, kept_from), min(step_end, now)
            if data_start < data_end:
                sets.append(self._allocation_set(step_start, step_end, data_start, data_end))
            step_start = step_end
        return {"code": 200, "status": "success", "data": sets}

    def _namespaces(self) -> list[tuple[str, str, Namespace, bool]]:
        """(name, daily-variation key, footprint, varies on weekends) of every namespace but idle."""
        namespaces = [
            (tenant.name, tenant.id, tenant.namespace, tenant.environment != "prod")
            for tenant in self.tenants
            if tenant.namespace is not None
        ]
        namespaces += [(name, name, footprint, False) for name, footprint in SYSTEM_NAMESPACES]
        return namespaces

    def _capacity(self) -> tuple[float, float]:
        """Cluster capacity (cores, RAM bytes): baseline requests plus headroom."""
        footprints = [footprint for _, _, footprint, _ in self._namespaces()]
        return (
            round(sum(item.cpu_cores for item in footprints) * CLUSTER_HEADROOM),
            round(sum(item.ram_bytes for item in footprints) * CLUSTER_HEADROOM / GIB) * GIB,
        )

    def _allocation_set(
        self, step_start: dt.datetime, step_end: dt.datetime, data_start: dt.datetime, data_end: dt.datetime
    ) -> dict[str, Any]:
        window = {"start": _rfc3339(step_start), "end": _rfc3339(step_end)}
        slices = _day_slices(data_start, data_end)
        allocations: dict[str, dict[str, Any]] = {}
        used_cpu = used_ram = 0.0
        for name, key, footprint, weekday_only in self._namespaces():
            totals = [0.0, 0.0, 0.0, 0.0, 0.0]
            for day, hours in slices:
                level, cpu_eff, ram_eff = _daily_levels(key, day, footprint, weekday_only)
                totals[0] += footprint.cpu_cores * level * hours
                totals[1] += footprint.cpu_cores * level * cpu_eff * hours
                totals[2] += footprint.ram_bytes * level * hours
                totals[3] += footprint.ram_bytes * level * ram_eff * hours
                totals[4] += footprint.pv_bytes * hours
            used_cpu += totals[0]
            used_ram += totals[2]
            properties = {"cluster": OPENCOST_CLUSTER}
            if not name.startswith("__"):
                properties["namespace"] = name
            allocations[name] = _allocation(name, properties, window, data_start, data_end, *totals)
        hours_total = sum(hours for _, hours in slices)
        cores, ram = self._capacity()
        allocations[IDLE_KEY] = _allocation(
            IDLE_KEY,
            {"cluster": OPENCOST_CLUSTER},
            window,
            data_start,
            data_end,
            max(cores * hours_total - used_cpu, 0.0),
            0.0,
            max(ram * hours_total - used_ram, 0.0),
            0.0,
            0.0,
        )
        return dict(sorted(allocations.items()))

    # --- Generic usage API (in-house cloud) -----------------------------------------------------

    def usage_quantities(self, period: str) -> list[tuple[Tenant, str, str, Decimal]]:
        """(tenant, metric, unit, exact quantity) of every non-zero measure of ``YYYY-MM``.

        A month after today's is empty; today's month is measured up to yesterday. vCPUs vary a
        little from month to month; block storage is prorated on the days measured (6 decimals).
        """
        cached = self._quantities.get(period)
        if cached is not None:
            return list(cached)
        first, days_in_month = month_period(period)
        measured = max(0, min((self.today - first).days, days_in_month))
        hours = Decimal(measured * 24)
        quantities: list[tuple[Tenant, str, str, Decimal]] = []
        for tenant in sorted(self.tenants, key=lambda item: item.name):
            footprint = tenant.inhouse
            if footprint is None:
                continue
            month_rng = random.Random(f"{tenant.id}:{period}")
            vcpus = max(1, round(footprint.vcpus * month_rng.uniform(0.85, 1.15)))
            storage = (Decimal(footprint.block_storage_gib) * measured / days_in_month).quantize(
                GIB_MONTH_QUANTUM
            )
            values = {
                "vcpu_hours": vcpus * hours,
                "ram_gib_hours": vcpus * footprint.ram_gib_per_vcpu * hours,
                "block_storage_gib_month": storage,
            }
            for metric, unit in USAGE_METRICS:
                if values[metric]:
                    quantities.append((tenant, metric, unit, values[metric]))
        self._quantities[period] = quantities  # pages re-read the month: compute it once per period
        return list(quantities)

    def usage_items(self, period: str) -> list[dict[str, Any]]:
        """Every item of the month in page order, ``quantity`` as an exact decimal string."""
        return [
            {
                "application": tenant.application
                if tenant.inhouse is not None and tenant.inhouse.reports_application
                else None,
                "tenant": tenant.name,
                "metric": metric,
                "unit": unit,
                "quantity": decimal_text(quantity),
            }
            for tenant, metric, unit, quantity in self.usage_quantities(period)
        ]

    def usage_totals(self, period: str) -> dict[str, Decimal]:
        """Exact total per metric of the month, what the pages must add up to."""
        return totals_by_measure(self.usage_quantities(period))

    def usage_page(
        self, period: str, *, page_token: str | None = None, page_size: int = USAGE_DEFAULT_PAGE_SIZE
    ) -> dict[str, Any]:
        """``GET /v1/usage``: one page of the month; the token is opaque and bound to its period."""
        items, next_page_token = token_page(
            self.usage_items,
            period,
            page_token=page_token,
            page_size=page_size,
            max_page_size=USAGE_MAX_PAGE_SIZE,
        )
        return {"period": period, "items": items, "next_page_token": next_page_token}


SYSTEM_NAMESPACES: tuple[tuple[str, Namespace], ...] = (
    ("kube-system", Namespace(1.2, 3.0 * GIB, 0.0, 0.35, 0.6)),
    ("opencost", Namespace(0.05, 0.25 * GIB, 0.0, 0.2, 0.5)),
    (UNALLOCATED_KEY, Namespace(0.3, 1.0 * GIB, 20.0 * GIB, 0.4, 0.6)),
)
"""Namespaces no tenant owns: the platform's own, and workloads without a namespace property."""


def _name_id(kind: str, name: str) -> str:
    """A stable 32-hex id for the projects that are not tenants."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"private-cloud-demo:{kind}:{name}").hex


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _aware_utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _nova_params(start: dt.datetime, end: dt.datetime, detailed: bool, limit: int | None) -> dict[str, str]:
    params = {
        "start": _naive_utc(start).isoformat(),
        "end": _naive_utc(end).isoformat(),
        "detailed": "1" if detailed else "0",
    }
    if limit is not None:
        params["limit"] = str(limit)
    return params


def _server_usage(tenant: Tenant, server: Server, hours: float, now: dt.datetime) -> dict[str, Any]:
    """One entry of ``server_usages``, keys in the order of Nova's samples."""
    return {
        "ended_at": None,
        "flavor": server.flavor.name,
        "hours": hours,
        "instance_id": server.instance_id,
        "local_gb": server.flavor.local_gb,
        "memory_mb": server.flavor.memory_mb,
        "name": server.name,
        "started_at": server.started_at(now).isoformat(),
        "state": server.state,
        "tenant_id": tenant.id,
        "uptime": int(server.age.total_seconds()),
        "vcpus": server.flavor.vcpus,
    }


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_slices(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.date, float]]:
    """(UTC day, hours of ``[start, end)`` in that day): daily levels apply to partial days too."""
    slices = []
    cursor = start
    while cursor < end:
        next_day = dt.datetime.combine(cursor.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        stop = min(end, next_day)
        slices.append((cursor.date(), (stop - cursor).total_seconds() / 3600.0))
        cursor = stop
    return slices


def _daily_levels(
    key: str, day: dt.date, footprint: Namespace, weekday_only: bool
) -> tuple[float, float, float]:
    """(request level, CPU efficiency, RAM efficiency) of a namespace on a day.

    Seeded by (namespace key, day) alone, so a day's numbers do not depend on the window asked.
    """
    rng = random.Random(f"{key}:{day.isoformat()}")
    level = rng.uniform(0.95, 1.05) * (0.8 if weekday_only and day.weekday() >= 5 else 1.0)
    cpu_eff = min(1.0, footprint.cpu_efficiency * rng.uniform(0.8, 1.2))
    ram_eff = min(1.0, footprint.ram_efficiency * rng.uniform(0.9, 1.1))
    return level, cpu_eff, ram_eff


def _allocation(
    name: str,
    properties: dict[str, str],
    window: dict[str, str],
    data_start: dt.datetime,
    data_end: dt.datetime,
    cpu_core_hours: float,
    cpu_usage_core_hours: float,
    ram_byte_hours: float,
    ram_usage_byte_hours: float,
    pv_byte_hours: float,
) -> dict[str, Any]:
    """One OpenCost allocation, fields as in the sample (floats rounded to 6 decimals like OpenCost)."""
    hours = (data_end - data_start).total_seconds() / 3600.0
    cpu_cost = cpu_core_hours * OPENCOST_CPU_CORE_HOUR
    ram_cost = ram_byte_hours / GIB * OPENCOST_RAM_GIB_HOUR
    pv_cost = pv_byte_hours / GIB * OPENCOST_PV_GIB_HOUR
    used_cost = (
        cpu_usage_core_hours * OPENCOST_CPU_CORE_HOUR + ram_usage_byte_hours / GIB * OPENCOST_RAM_GIB_HOUR
    )
    cpu_cores = cpu_core_hours / hours
    ram_bytes = ram_byte_hours / hours

    def ratio(part: float, whole: float) -> float:
        return part / whole if whole else 0.0

    values: dict[str, Any] = {
        "name": name,
        "properties": properties,
        "window": window,
        "start": _rfc3339(data_start),
        "end": _rfc3339(data_end),
        "minutes": hours * 60,
        "cpuCores": cpu_cores,
        "cpuCoreRequestAverage": cpu_cores,
        "cpuCoreUsageAverage": cpu_usage_core_hours / hours,
        "cpuCoreHours": cpu_core_hours,
        "cpuCost": cpu_cost,
        "cpuCostAdjustment": 0.0,
        "cpuEfficiency": ratio(cpu_usage_core_hours, cpu_core_hours),
        "gpuCount": 0.0,
        "gpuHours": 0.0,
        "gpuCost": 0.0,
        "gpuCostAdjustment": 0.0,
        "networkTransferBytes": 0.0,
        "networkReceiveBytes": 0.0,
        "networkCost": 0.0,
        "networkCostAdjustment": 0.0,
        "loadBalancerCost": 0.0,
        "loadBalancerCostAdjustment": 0.0,
        "pvBytes": pv_byte_hours / hours,
        "pvByteHours": pv_byte_hours,
        "pvCost": pv_cost,
        "pvs": None,
        "pvCostAdjustment": 0.0,
        "ramBytes": ram_bytes,
        "ramByteRequestAverage": ram_bytes,
        "ramByteUsageAverage": ram_usage_byte_hours / hours,
        "ramByteHours": ram_byte_hours,
        "ramCost": ram_cost,
        "ramCostAdjustment": 0.0,
        "ramEfficiency": ratio(ram_usage_byte_hours, ram_byte_hours),
        "sharedCost": 0.0,
        "externalCost": 0.0,
        "totalCost": cpu_cost + ram_cost + pv_cost,
        "totalEfficiency": ratio(used_cost, cpu_cost + ram_cost),
        "rawAllocationOnly": None,
    }
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}


# --- HTTP -----------------------------------------------------------------------------------------


class _Server(SimulatedServer[PrivateCloudSimulator]):
    def __init__(self, address: tuple[str, int], simulator: PrivateCloudSimulator) -> None:
        super().__init__(address, _Handler, simulator)
        ttl = simulator.credentials.token_ttl_seconds
        self.keystone_tokens = TokenStore(ttl)
        self.oidc_tokens = TokenStore(ttl)


class _Handler(SimulatedHandler):
    """Routes requests to the simulator; every answer is JSON with a Content-Length (keep-alive)."""

    server: _Server

    def route(self, path: str) -> tuple[str, Route] | None:
        routes: dict[str, tuple[str, Route]] = {
            "/identity/v3": ("GET", self._identity_version),
            "/identity/v3/auth/tokens": ("POST", self._keystone_token),
            "/identity/v3/projects": ("GET", self._keystone_projects),
            "/compute/v2.1/os-simple-tenant-usage": ("GET", self._nova_usage),
            "/opencost/allocation/compute": ("GET", self._opencost_allocation),
            "/oidc/token": ("POST", self._oidc_token),
            "/usage-api/v1/usage": ("GET", self._usage),
        }
        return routes.get(path)

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"error": {"code": status, "message": message}}

    # --- Keystone ---

    def _identity_version(self, query: dict[str, str], body: bytes) -> Reply:
        return Reply(
            200,
            {
                "version": {
                    "id": "v3.14",
                    "status": "stable",
                    "updated": "2020-04-07T00:00:00Z",
                    "links": [{"rel": "self", "href": f"{self.base_url()}/identity/v3/"}],
                    "media-types": [
                        {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
                    ],
                }
            },
        )

    def _keystone_token(self, query: dict[str, str], body: bytes) -> Reply:
        credentials = self.server.simulator.credentials
        try:
            identity = json.loads(body or b"null")["auth"]["identity"]
            methods = list(identity["methods"])
        except (ValueError, KeyError, TypeError):
            return _keystone_error(
                400, "Bad Request", "Expecting to find auth.identity.methods in the request body."
            )
        try:
            if "application_credential" in methods:
                ok = _application_credential_ok(identity["application_credential"], credentials)
            elif "password" in methods:
                ok = _password_ok(identity["password"]["user"], credentials)
            else:
                return _keystone_error(
                    401, "Unauthorized", "The request you have made requires authentication."
                )
        except (KeyError, TypeError, AttributeError):
            return _keystone_error(400, "Bad Request", "Malformed identity in the request body.")
        if not ok:
            return _keystone_error(401, "Unauthorized", "The request you have made requires authentication.")
        token, expires = self.server.keystone_tokens.issue()
        issued = expires - credentials.token_ttl_seconds
        base = self.base_url()
        user_id = _name_id("user", credentials.username)
        project_id = _name_id("project", credentials.project)
        token_body: dict[str, Any] = {
            "methods": methods[:1],
            "user": {
                "domain": {"id": "default", "name": credentials.user_domain},
                "id": user_id,
                "name": credentials.username,
                "password_expires_at": None,
            },
            "audit_ids": [secrets.token_urlsafe(16)],
            "expires_at": _keystone_time(expires),
            "issued_at": _keystone_time(issued),
            "project": {
                "domain": {"id": "default", "name": credentials.user_domain},
                "id": project_id,
                "name": credentials.project,
            },
            "is_domain": False,
            "roles": [{"id": _name_id("role", "reader"), "name": "reader"}],
            "catalog": [
                _catalog_entry("compute", "nova", f"{base}/compute/v2.1"),
                _catalog_entry("identity", "keystone", f"{base}/identity"),
            ],
        }
        if methods[0] == "application_credential":
            token_body["application_credential"] = {
                "id": credentials.application_credential_id,
                "name": credentials.application_credential_name,
                "restricted": True,
            }
        return Reply(201, {"token": token_body}, {"X-Subject-Token": token})

    def _keystone_authorized(self) -> Reply | None:
        if self.server.keystone_tokens.valid(self.headers.get("X-Auth-Token")):
            return None
        return Reply(
            401,
            {
                "error": {
                    "code": 401,
                    "title": "Unauthorized",
                    "message": "The request you have made requires authentication.",
                }
            },
            {"WWW-Authenticate": f'Keystone uri="{self.base_url()}/identity"'},
        )

    def _keystone_projects(self, query: dict[str, str], body: bytes) -> Reply:
        refused = self._keystone_authorized()
        if refused is not None:
            return refused
        return Reply(200, self.server.simulator.keystone_projects(f"{self.base_url()}/identity/v3"))

    # --- Nova ---

    def _nova_usage(self, query: dict[str, str], body: bytes) -> Reply:
        refused = self._keystone_authorized()
        if refused is not None:
            return refused
        version = _nova_version(self.headers)
        if isinstance(version, Reply):
            return version
        text = f"{version[0]}.{version[1]}"
        headers = {
            "OpenStack-API-Version": f"compute {text}",
            "X-OpenStack-Nova-API-Version": text,
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        }
        simulator = self.server.simulator
        try:
            if version >= NOVA_STRICT_QUERY_VERSION and set(query) - NOVA_QUERY_PARAMS:
                unknown = ", ".join(sorted(set(query) - NOVA_QUERY_PARAMS))
                raise SimulatedApiError("invalid_query", f"Additional properties are not allowed ({unknown})")
            now = _naive_utc(simulator.now)
            start = _nova_time(query.get("start"), now)
            end = _nova_time(query.get("end"), now)
            limit = None
            if version >= NOVA_PAGINATION_VERSION and "limit" in query:
                if not re.fullmatch(r"[0-9]+", query["limit"]):
                    raise SimulatedApiError("invalid_limit", "limit must be an integer >= 0")
                limit = int(query["limit"])
            answer = simulator.nova_usage(
                start,
                end,
                detailed=query.get("detailed", "0") == "1",
                limit=limit,
                marker=query.get("marker"),
                microversion=version,
                link_base=f"{self.base_url()}/compute/v2.1",
                link_params=query,
            )
        except SimulatedApiError as error:
            return Reply(400, {"badRequest": {"code": 400, "message": error.message}}, headers)
        return Reply(200, answer, headers)

    # --- OpenCost ---

    def _opencost_allocation(self, query: dict[str, str], body: bytes) -> Reply:
        try:
            start, end = _opencost_window(query.get("window", ""))
            aggregate = query.get("aggregate", "")
            if aggregate != "namespace":
                raise SimulatedApiError(
                    "invalid_aggregate",
                    f"aggregate {aggregate!r}: this simulator only aggregates by namespace",
                )
            step = _opencost_duration(query["step"]) if query.get("step") else None
            answer = self.server.simulator.opencost_allocation(start, end, step=step)
        except SimulatedApiError as error:
            return Reply(400, {"code": 400, "status": "error", "message": error.message})
        return Reply(200, answer)

    # --- OIDC and the generic usage API ---

    def _oidc_token(self, query: dict[str, str], body: bytes) -> Reply:
        return oidc_token_reply(
            body,
            self.headers.get("Authorization"),
            self.server.oidc_tokens,
            self.server.simulator.credentials,
        )

    def _usage(self, query: dict[str, str], body: bytes) -> Reply:
        refused = bearer_refusal(self.headers.get("Authorization"), self.server.oidc_tokens, "usage-api")
        if refused is not None:
            return refused
        return usage_page_reply(query, self.server.simulator.usage_page, USAGE_DEFAULT_PAGE_SIZE)


def _keystone_error(status: int, title: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": status, "title": title, "message": message}})


def _application_credential_ok(given: Mapping[str, Any], credentials: Credentials) -> bool:
    """By id, or by name with its user (Keystone's two forms), and the secret."""
    if "id" in given:
        known = same_secret(given["id"], credentials.application_credential_id)
    else:
        user = given.get("user") or {}
        known = same_secret(given.get("name"), credentials.application_credential_name) and (
            same_secret(user.get("name"), credentials.username)
            or same_secret(user.get("id"), _name_id("user", credentials.username))
        )
    return known and same_secret(given.get("secret"), credentials.application_credential_secret)


def _password_ok(user: Mapping[str, Any], credentials: Credentials) -> bool:
    """By user id, or by user name within its domain (by name or id), and the password."""
    if "id" in user:
        known = same_secret(user["id"], _name_id("user", credentials.username))
    else:
        domain = user.get("domain") or {}
        known = same_secret(user.get("name"), credentials.username) and (
            domain.get("name") == credentials.user_domain or domain.get("id") == "default"
        )
    return known and same_secret(user.get("password"), credentials.password)


def _keystone_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _catalog_entry(kind: str, name: str, url: str) -> dict[str, Any]:
    return {
        "type": kind,
        "name": name,
        "id": _name_id("service", name),
        "endpoints": [
            {
                "id": _name_id("endpoint", name),
                "interface": "public",
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": url,
            }
        ],
    }


def _nova_version(headers: Any) -> tuple[int, int] | Reply:
    """The requested compute microversion: 2.1 by default, ``latest`` = the maximum, else 400/406."""
    value = headers.get("OpenStack-API-Version") or ""
    if value:
        service, _, value = value.strip().partition(" ")
        if service.lower() != "compute":
            value = ""
    value = (value or headers.get("X-OpenStack-Nova-API-Version") or "").strip()
    if not value:
        return NOVA_MIN_VERSION
    if value.lower() == "latest":
        return NOVA_MAX_VERSION
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)", value)
    if match is None:
        return Reply(
            400, {"badRequest": {"code": 400, "message": f"API Version String {value} is of invalid format."}}
        )
    version = (int(match[1]), int(match[2]))
    if not NOVA_MIN_VERSION <= version <= NOVA_MAX_VERSION:
        lowest, highest = (f"{major}.{minor}" for major, minor in (NOVA_MIN_VERSION, NOVA_MAX_VERSION))
        message = (
            f"Version {value} is not supported by the API. Minimum is {lowest} and maximum is {highest}."
        )
        return Reply(406, {"computeFault": {"code": 406, "message": message}})
    return version


def _nova_time(text: str | None, now: dt.datetime) -> dt.datetime:
    """Nova's ``_parse_datetime``: missing means now; only its three formats, no time zone."""
    if not text:
        return now
    for pattern in NOVA_TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise SimulatedApiError("invalid_time", "Invalid datetime string: Datetime is in invalid format")


def _opencost_window(text: str) -> tuple[dt.datetime, dt.datetime]:
    """An RFC 3339 pair or a Unix-seconds pair (the forms a pipeline uses; no relative words)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise SimulatedApiError("invalid_window", f"invalid window {text!r}: expected start,end")
    moments = []
    for part in parts:
        part = part.strip()
        try:
            if part.isdigit():
                moments.append(dt.datetime.fromtimestamp(int(part), dt.UTC))
            else:
                moments.append(_aware_utc(dt.datetime.fromisoformat(part)))
        except (ValueError, OverflowError):
            raise SimulatedApiError("invalid_window", f"invalid window {text!r}") from None
    return moments[0], moments[1]


def _opencost_duration(text: str) -> dt.timedelta:
    match = re.fullmatch(r"([0-9]+)([mhd])", text.strip())
    if match is None or int(match[1]) == 0:
        raise SimulatedApiError("invalid_step", f"invalid step {text!r}: expected e.g. 1d, 6h, 30m")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return dt.timedelta(**{unit: int(match[1])})


class RunningServer(BackgroundServer[_Server]):
    """A simulator served on a background thread; ``close()`` (or ``with``) stops it."""

    @property
    def identity_url(self) -> str:
        """Keystone v3 (``…/auth/tokens``, ``…/projects``)."""
        return f"{self.url}/identity/v3"

    @property
    def compute_url(self) -> str:
        """Nova's endpoint (``…/os-simple-tenant-usage``), as the Keystone catalog lists it."""
        return f"{self.url}/compute/v2.1"

    @property
    def opencost_url(self) -> str:
        """OpenCost's base (``…/allocation/compute``)."""
        return f"{self.url}/opencost"

    @property
    def usage_api_url(self) -> str:
        """The in-house generic usage API's base (``…/v1/usage``)."""
        return f"{self.url}/usage-api"

    @property
    def oidc_token_url(self) -> str:
        """The OIDC token endpoint (client credentials grant)."""
        return f"{self.url}/oidc/token"

    def environment(self) -> dict[str, str]:
        """The pipeline settings that point its private-cloud sources at this server.

        Names follow the ``domains/private_cloud`` clients at the time of writing; secrets are the
        simulator's credentials (demo values unless the caller passed others).
        """
        credentials = self._server.simulator.credentials
        return {
            "FINOPS_OPENSTACK_URL": self.compute_url,
            "FINOPS_OPENSTACK_AUTH_URL": self.identity_url,
            "FINOPS_OPENSTACK_APPLICATION_CREDENTIAL_ID": credentials.application_credential_id,
            "FINOPS_OPENSTACK_APPLICATION_CREDENTIAL_SECRET": credentials.application_credential_secret,
            "FINOPS_OPENCOST_URL": self.opencost_url,
            "FINOPS_OPENCOST_AUTH": "none",
            "FINOPS_USAGE_API_URL": self.usage_api_url,
            "FINOPS_USAGE_API_AUTH": "oidc",
            "FINOPS_USAGE_API_OIDC_TOKEN_URL": self.oidc_token_url,
            "FINOPS_USAGE_API_OIDC_CLIENT_ID": credentials.oidc_client_id,
            "FINOPS_USAGE_API_OIDC_CLIENT_SECRET": credentials.oidc_client_secret,
        }

    def revoke_tokens(self) -> None:
        """Forget every issued token, as a rotated identity provider would: clients get 401 next."""
        self._server.keystone_tokens.revoke_all()
        self._server.oidc_tokens.revoke_all()


def serve(simulator: PrivateCloudSimulator, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve the simulator over HTTP on a daemon thread (port 0: any free port, see ``.url``).

    Standard library only (``ThreadingHTTPServer``), so the demo needs no test dependency.
    """
    server = _Server((host, port), simulator)
    return RunningServer(server, start_thread(server, "private-cloud-simulator"))
