"""finops-dagster: the nightly FinOps pipeline (sources → relevés → data mart → views)."""

from finops_dagster.acknowledged_warnings import silence_acknowledged

__version__ = "0.1.0"

silence_acknowledged()
