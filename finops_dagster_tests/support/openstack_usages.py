"""Nova simple-tenant-usage entries, as OpenStack returns them, built one at a time.

The payload tests and the reject-code tests of the private_cloud domain bend the same entry.
"""

from __future__ import annotations

from typing import Any

TENANT_A = "0000000e737461636b20342065000000"
TENANT_B = "6f70656e737461636b20342065766572"


def tenant_entry(tenant_id: Any = TENANT_B, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "start": "2026-10-01T00:00:00",
        "stop": "2026-11-01T00:00:00",
        "total_hours": 744.0,
        "total_local_gb_usage": 14880.0,
        "total_memory_mb_usage": 1523712.0,
        "total_vcpus_usage": 1488.0,
    }
    if tenant_id is not None:
        entry["tenant_id"] = tenant_id
    entry.update(overrides)
    return entry
