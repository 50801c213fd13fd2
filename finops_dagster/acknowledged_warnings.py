"""Warnings a person running the project cannot act on, silenced by their exact text, and only those.

- Dagster marks the `backfill_policy` parameter of `@asset` / `@multi_asset` as beta and says so
  once per asset at every import. Single-run backfills are how the pipeline runs months
  (docs/design.md §3), so the choice is made and the warning only teaches a reader to skip warnings.
- platformdirs warns that XDG_RUNTIME_DIR is unset (containers, `su`, CI) when the embedded
  PostgreSQL of the demo picks its lock folder; it then uses /tmp, which is what the demo wants.

Anything else (another beta parameter, a deprecation, a warning of our own) still shows.
"""

import warnings

ACKNOWLEDGED = (
    r"Parameter `backfill_policy` of function `(multi_)?asset` is currently in beta",
    r"XDG_RUNTIME_DIR is not set",
)


def silence_acknowledged() -> None:
    """Install the filters; idempotent (the warnings module drops duplicates)."""
    for message in ACKNOWLEDGED:
        warnings.filterwarnings("ignore", message=message)
