"""`finops-dagster rejects`: a month's published rejects, summed by reason code, then listed."""

from __future__ import annotations

import psycopg
import pytest

from finops_dagster.cli import main
from finops_dagster_tests.support.reject_rows import write_rejects


@pytest.fixture
def rejects_mart(
    mart: psycopg.Connection, mart_url: str, monkeypatch: pytest.MonkeyPatch
) -> psycopg.Connection:
    write_rejects(mart)
    monkeypatch.setenv("POSTGRES_URL", mart_url)
    return mart


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rejects", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_month_is_summed_by_reason_then_listed(
    rejects_mart: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--month", "2026-10")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Published rejects of 2026-10 (every domain): 7"
    start = lines.index("By reason:") + 1
    summary = lines[start : lines.index("", start)]
    assert [line.split()[0] for line in summary] == [
        "reason",
        "UNKNOWN_CI_CLASS",
        "INVALID_AMOUNT",
        "INVALID_CURRENCY",
        "MALFORMED_ROW",
        "NO_EXCHANGE_RATE",
        "NO_RATE",
    ]
    assert summary[1].split()[:3] == ["UNKNOWN_CI_CLASS", "2", "33"]
    assert "123.450000 USD" in next(line for line in summary if "NO_EXCHANGE_RATE" in line)
    assert "5.500000 EUR" in next(line for line in summary if "INVALID_AMOUNT" in line)
    assert "7.000000 (currency unreadable)" in next(line for line in summary if "INVALID_CURRENCY" in line)
    assert "Rejects (all 7):" in lines
    listed = lines[lines.index("Rejects (all 7):") + 2 :]
    assert len(listed) == 7
    ragged = next(line for line in listed if "MALFORMED_ROW" in line)
    assert "/exports/bill.csv#row 9" in ragged and "fewer columns than the header" in ragged
    assert "focus" in ragged and "public_cloud" in ragged
    rate = next(line for line in listed if "NO_RATE" in line)
    assert "4.000000 vCPU-month" in rate and "PAYMENTS / OL_VCPU" in rate
    assert "other.csv" not in out  # staged by a run that did not publish
    assert "secret" not in out  # payloads are not shown


def test_domain_reason_and_limit_narrow_the_listing(
    rejects_mart: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "--month",
        "2026-10",
        "--domain",
        "open_legacy",
        "--reason",
        "unknown_ci_class",
        "--limit",
        "1",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Published rejects of 2026-10 (domain open_legacy, reason UNKNOWN_CI_CLASS): 2"
    assert "Rejects (the first 1; --limit to see more):" in lines
    assert sum("UNKNOWN_CI_CLASS" in line for line in lines[1:]) == 2  # one in the summary, one listed
    assert "cmdb_ci_printer" in out and "cmdb_ci_ups" not in out.split("Rejects (")[1]


def test_a_month_without_rejects_says_so(
    rejects_mart: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--month", "2026-09") == (0, "Published rejects of 2026-09 (every domain): 0\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--month", "2026-13"), "month '2026-13' is not YYYY-MM (for example 2026-10)"),
        (("--month", "October"), "month 'October' is not YYYY-MM"),
        (("--month", "2026-10", "--reason", "TYPO"), "unknown reason code 'TYPO'; the codes are NO_RATE, "),
        (
            ("--month", "2026-10", "--domain", "mainframe"),
            "unknown domain 'mainframe'; the domains are native, open_legacy, private_cloud, public_cloud",
        ),
        (("--month", "2026-10", "--limit", "0"), "--limit 0 is not a positive number of rejects"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_accepted(
    rejects_mart: psycopg.Connection, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"finops-dagster rejects: {message}")
