"""Building CMDB raw-zone documents for tests, in the shapes the dumps carry."""

from __future__ import annotations

import datetime as dt
from typing import Any


def night(day: dt.date, second: int = 0) -> dt.datetime:
    """The dump time of a night (02:00 UTC), as pymongo returns it (naive UTC)."""
    return dt.datetime.combine(day, dt.time(2, 0, second))


def application(code: str, *, day: dt.date, name: str | None = None, group: str = "GRP-TEST",
                sys_id: str | None = None) -> dict[str, Any]:
    return {
        "sys_id": sys_id or f"app-{code.lower()}",
        "sys_class_name": "cmdb_ci_business_app",
        "u_code": code,
        "name": name or f"{code} application",
        "u_application_group": {"display_value": f"{group} group", "value": group},
        "_ingested_at": night(day),
    }


def vm(sys_id: str, *, day: dt.date, cpus: Any = "4", memory: Any = "8192", disks_size: Any = "100",
       app: Any = None, name: str | None = None, second: int = 1, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "sys_id": sys_id,
        "sys_class_name": "cmdb_ci_vmware_instance",
        "name": name or f"vm-{sys_id}",
        "cpus": cpus,
        "memory": memory,
        "disks_size": disks_size,
        "_ingested_at": night(day, second),
        **extra,
    }
    if app is not None:
        doc["u_application"] = app
    return {key: value for key, value in doc.items() if value is not ...}


def nights(month: dt.date, count: int) -> list[dt.date]:
    return [month + dt.timedelta(days=offset) for offset in range(count)]
