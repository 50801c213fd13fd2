"""The code location: the single Definitions object, configured from the environment.

A missing or invalid setting fails here, when the code location loads, naming the variable.
"""

from finops_dagster.pipeline import build_definitions

defs = build_definitions()
