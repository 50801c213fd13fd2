"""Resource tags as providers write them, read into a plain mapping.

FOCUS says Tags is a JSON object, but real exports differ: Azure's cost-details files write the
object without its braces (`"env": "prod","CostCenter": "1234"`), some keys carry stray spaces
(`" org"`), Parquet exports may hold a map. Whatever cannot be read gives no tags: the charge is
then allocated by the mapping rules or to the unallocated application, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


def parse_tags(raw: str | None) -> dict[str, str]:
    """Tags of a FOCUS row (a JSON object, with or without its braces); {} when unreadable."""
    if raw is None:
        return {}
    text = raw.strip()
    if not text or text.upper() == "NULL":
        return {}
    if not text.startswith("{"):
        text = "{" + text + "}"
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(key): _text(item) for key, item in value.items() if item is not None}


def tag_value(tags: Mapping[str, str], keys: Sequence[str]) -> str | None:
    """The value of the first configured key present. Keys are compared without case, surrounding
    spaces, or the difference between `-` and `_` (Athena's CUR columns turn `app-id` into `app_id`)."""
    wanted = {normalized_key(key): rank for rank, key in reversed(list(enumerate(keys)))}
    best: tuple[int, str] | None = None
    for key, value in tags.items():
        rank = wanted.get(normalized_key(key))
        if rank is not None and value.strip() and (best is None or rank < best[0]):
            best = (rank, value.strip())
    return best[1] if best else None


def normalized_key(key: str) -> str:
    """A tag key as keys are compared (export_queries.RESOLVE_JSON_TAGS does the same in SQL)."""
    return key.strip().lower().replace("_", "-")


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
