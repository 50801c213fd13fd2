"""Settings and reference files that are wrong fail clearly, and never with a secret in the message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from finops_dagster.reference.catalog import DATA_DIR, ReferenceDataError, load_catalog
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import SettingError


@pytest.mark.parametrize("password", ["Xy%9kSecret", "s3 cr3t"])
def test_a_malformed_postgres_url_is_refused_without_its_password(password: str) -> None:
    with pytest.raises(SettingError, match="POSTGRES_URL is not a valid libpq URL") as refused:
        PostgresResource(url=f"postgresql://finops:{password}@db.internal:5432/finops").conninfo()
    assert password not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_rate_finer_than_the_mart_stores_is_refused_by_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    rates = data / "rate_cards.csv"
    rates.write_text(rates.read_text() + "OL_VCPU,2099-01-01,,0.0000004,EUR,RC-2099\n")
    line = len(rates.read_text().splitlines())
    with pytest.raises(ReferenceDataError, match=rf"rate_cards.csv line {line}: .* more than 6 decimals"):
        load_catalog(data)
