"""finops-dagster: the nightly FinOps pipeline (sources → relevés → data mart → views)."""

__version__ = "0.1.0"
