"""The code location: the single Definitions object, configured from the environment.

A missing or invalid setting fails here, when the code location loads, naming the variable. With
FINOPS_LOG_FORMAT=json the code location's own Python logs are JSON lines too (Dagster's events are,
through the `console` logger the definitions carry).
"""

from finops_dagster.observe.logs import configure_logging, json_logs
from finops_dagster.pipeline import build_definitions

if json_logs():
    configure_logging()

defs = build_definitions()
