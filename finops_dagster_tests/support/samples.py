"""Where the real-world source samples are: FINOPS_SAMPLES_DIR, else shared/samples beside the repository.

A missing directory makes the tests that read samples fail (file not found), never skip: every
sample must be read by its parser.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("FINOPS_SAMPLES_DIR") or REPOSITORY.parent / "shared" / "samples")
