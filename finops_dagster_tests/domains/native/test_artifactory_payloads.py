"""The Artifactory parsers against the real sample bodies and each malformed shape.

Expected human sizes are computed here by a separate plain rule (`Decimal(text) * 1024**n`), so a
parser bug cannot hide behind its own arithmetic.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from finops_dagster.domains.native.artifactory_payloads import (
    FileStats,
    RepositoryStorage,
    StorageInfo,
    parse_file_stats,
    parse_size,
    parse_storage_info,
)
from finops_dagster.domains.native.problems import UsageProblem
from finops_dagster_tests.support.samples import SAMPLES

ARTIFACTORY = SAMPLES / "artifactory"
STORAGEINFO = ARTIFACTORY / "storageinfo_doc_sample.json"
FILE_STATS = ARTIFACTORY / "file_stats_doc_sample.json"

UTC = dt.UTC
BINARY = {"bytes": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def human_bytes(number: str, unit: str) -> int:
    """The independent reference for a human size: the decimal text times the binary unit, rounded."""
    exact = Decimal(number.replace(",", "")) * BINARY[unit]
    return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


def storage_body(*rows: Any) -> dict[str, Any]:
    return {"repositoriesSummaryList": list(rows)}


def repo_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"repoKey": "libs-release-local", "repoType": "LOCAL", "packageType": "Maven"}
    row.update(overrides)
    return row


# --- the samples directory -----------------------------------------------------------------------


def test_every_artifactory_sample_is_one_this_module_reads() -> None:
    assert sorted(path.name for path in ARTIFACTORY.glob("*.json")) == sorted(
        path.name for path in (STORAGEINFO, FILE_STATS)
    )


# --- Artifactory: human sizes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("59.77 GB", human_bytes("59.77", "GB")),
        ("34.46 MB", human_bytes("34.46", "MB")),
        ("0 bytes", 0),
        ("1023 bytes", 1023),
        ("1,024 KB", 1024 * 1024),
        ("1.00 KB", 1024),
        ("32.22 GB (15.77%)", human_bytes("32.22", "GB")),
        ("172.06 GB (84.23%)", human_bytes("172.06", "GB")),
        ("1,536.25 TB", human_bytes("1536.25", "TB")),
        ("  3.48 gb ", human_bytes("3.48", "GB")),
        ("5MB", 5 * 1024**2),
    ],
)
def test_parse_size_reads_every_human_form_in_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_concrete_byte_values() -> None:
    # 59.77 × 1024³ = 64,177,548,820.48 → rounded to the byte; 34.46 × 1024² = 36,133,928.96.
    assert parse_size("59.77 GB") == 64_177_548_820
    assert parse_size("34.46 MB") == 36_133_929
    assert parse_size("32.22 GB (15.77%)") == 34_595_961_569


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("n/a", "not a size: 'n/a' has no number"),
        ("", "not a size: '' has no number"),
        ("GB", "not a size: 'GB' has no number"),
        ("-3 GB", "not a size: '-3 GB' is negative"),
        ("12 XB", "not a size: '12 XB' has an unknown unit 'XB' (expected bytes, KB, MB, GB or TB)"),
        ("12 PB", "not a size: '12 PB' has an unknown unit 'PB' (expected bytes, KB, MB, GB or TB)"),
        ("12", "not a size: '12' has no unit (expected bytes, KB, MB, GB or TB)"),
        ("1,5 GB", "not a size: '1,5 GB' has a malformed number '1,5'"),
        ("1.2.3 MB", "not a size: '1.2.3 MB' has a malformed number '1.2.3'"),
        ("1.5 bytes", "not a size: '1.5 bytes' is a fraction of a byte"),
        ("1 2 GB", "not a size: '1 2 GB' is not '<number> <unit>'"),
    ],
)
def test_parse_size_refuses_with_a_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == reason


def test_parse_size_refuses_what_is_not_a_string() -> None:
    with pytest.raises(ValueError, match=r"^not a size: expected a string like '59.77 GB', got int$"):
        parse_size(12)  # type: ignore[arg-type]


# --- Artifactory: storage info -------------------------------------------------------------------


def test_storageinfo_sample_parses_every_repository_and_sets_total_apart() -> None:
    body = load(STORAGEINFO)

    info = parse_storage_info(body)

    assert info == StorageInfo(
        repositories=[
            RepositoryStorage("plugins-release", "VIRTUAL", "Maven", None, 0),
            RepositoryStorage("repo", "VIRTUAL", "Generic", None, 0),
            RepositoryStorage("npm-fed", "FEDERATED", "npm", "default", 36_138_261),
        ],
        problems=[],
        total_bytes=64_177_548_820,
    )
    # Independently: usedSpaceInBytes when present, else the human usedSpace, over the non-TOTAL rows.
    expected_sum = 0
    for row in body["repositoriesSummaryList"]:
        if row["repoKey"] == "TOTAL":
            continue
        if "usedSpaceInBytes" in row:
            expected_sum += row["usedSpaceInBytes"]
        else:
            number, unit = row["usedSpace"].split()
            expected_sum += human_bytes(number, unit)
    assert sum(repo.used_bytes for repo in info.repositories) == expected_sum == 36_138_261
    # The TOTAL row does NOT equal the sum: the doc sample elides most repositories ("...").
    total_row = body["repositoriesSummaryList"][-1]
    assert info.total_bytes == human_bytes(*total_row["usedSpace"].split())
    assert info.total_bytes != expected_sum
    assert len(info.repositories) + len(info.problems) + 1 == len(body["repositoriesSummaryList"])


def test_storageinfo_sample_shows_artifactory_sizes_are_binary_units() -> None:
    npm_fed = load(STORAGEINFO)["repositoriesSummaryList"][2]
    exact = npm_fed["usedSpaceInBytes"]

    parsed = parse_size(npm_fed["usedSpace"])  # "34.46 MB"

    assert exact == 36_138_261
    assert abs(parsed - exact) == 4_332
    assert abs(parsed - exact) <= Decimal("0.005") * 1024**2  # within the rounding of two decimals in MB
    assert abs(34_460_000 - exact) > 1_000_000  # decimal megabytes would be 1.7 MB off


def test_storageinfo_sample_summaries_are_all_readable_human_sizes() -> None:
    body = load(STORAGEINFO)
    fields = [
        body["binariesSummary"]["binariesSize"],
        body["binariesSummary"]["artifactsSize"],
        body["fileStoreSummary"]["totalSpace"],
        body["fileStoreSummary"]["usedSpace"],
        body["fileStoreSummary"]["freeSpace"],
    ]

    parsed = [parse_size(text) for text in fields]

    assert parsed == [
        human_bytes("3.48", "GB"),
        human_bytes("59.77", "GB"),
        human_bytes("204.28", "GB"),
        human_bytes("32.22", "GB"),
        human_bytes("172.06", "GB"),
    ]
    assert parsed[1] == parse_storage_info(body).total_bytes  # artifactsSize is the TOTAL row's usedSpace
    # used + free is the total within the two-decimal rounding of each figure.
    assert abs(parsed[3] + parsed[4] - parsed[2]) <= Decimal("0.015") * 1024**3
    # Counts are strings with thousands separators; the TOTAL row writes the same count as an integer.
    assert int(body["binariesSummary"]["artifactsCount"].replace(",", "")) == 2_084_408
    assert body["repositoriesSummaryList"][-1]["filesCount"] == 2_084_408


def test_repository_rows_prefer_bytes_and_keep_virtual_repositories_at_zero() -> None:
    rows = [
        repo_row(usedSpace="1.00 KB", usedSpaceInBytes=1000),
        repo_row(repoKey="old", usedSpace="2.50 MB"),
        repo_row(repoKey="as-text", usedSpaceInBytes="123", projectKey="  "),
        repo_row(repoKey="virt", repoType="VIRTUAL", usedSpace="12 XB"),
        repo_row(repoKey="remote-cache", repoType="remote", usedSpace="3 bytes", packageType=None),
        repo_row(repoKey="TOTAL", repoType="LOCAL", usedSpace="4 bytes"),  # a real repository named TOTAL
    ]

    info = parse_storage_info(storage_body(*rows))

    assert info == StorageInfo(
        repositories=[
            RepositoryStorage("libs-release-local", "LOCAL", "Maven", None, 1000, False),
            RepositoryStorage("old", "LOCAL", "Maven", None, 2_621_440, True),
            RepositoryStorage("as-text", "LOCAL", "Maven", None, 123, False),
            RepositoryStorage("virt", "VIRTUAL", "Maven", None, 0, False),
            RepositoryStorage("remote-cache", "REMOTE", None, None, 3, True),
            RepositoryStorage("TOTAL", "LOCAL", "Maven", None, 4, True),
        ],
        problems=[],
        total_bytes=None,
    )


def test_unusable_repository_rows_become_problems() -> None:
    rows = [
        repo_row(repoKey="bad-size", usedSpace="n/a"),
        repo_row(repoKey="neg-bytes", usedSpaceInBytes=-1, usedSpace="1 bytes"),
        repo_row(repoKey="no-size"),
        repo_row(repoKey="no-type", repoType=None, usedSpace="1 bytes"),
        repo_row(repoKey=None, usedSpace="1 bytes"),
        repo_row(repoKey="odd-key", packageType=7, usedSpace="1 bytes"),
        "garbage",
        repo_row(repoKey="fine", usedSpace="8 bytes"),
    ]

    info = parse_storage_info(storage_body(*rows))

    assert info.repositories == [RepositoryStorage("fine", "LOCAL", "Maven", None, 8, True)]
    assert [(problem.ref, problem.reason) for problem in info.problems] == [
        ("bad-size", "usedSpace: not a size: 'n/a' has no number"),
        ("neg-bytes", "usedSpaceInBytes: negative (-1)"),
        ("no-size", "usedSpace: missing (and no usedSpaceInBytes)"),
        ("no-type", "repoType: missing"),
        ("repositoriesSummaryList[4]", "repoKey: missing"),
        ("odd-key", "packageType: not a string (int)"),
        ("repositoriesSummaryList[6]", "repository entry is not an object (str)"),
    ]
    assert info.problems[0].raw == rows[0]
    assert info.problems[6].raw == {"value": "garbage"}
    assert info.total_bytes is None


def test_total_row_variants() -> None:
    total = {"repoKey": "TOTAL", "repoType": "NA", "usedSpace": "2.00 KB"}
    exact_total = {"repoKey": "TOTAL", "usedSpaceInBytes": 2050, "usedSpace": "2.00 KB"}
    bad_total = {"repoKey": "TOTAL", "repoType": "NA", "usedSpace": "lots"}

    assert parse_storage_info(storage_body(repo_row(usedSpace="1 bytes"), total)).total_bytes == 2048
    assert parse_storage_info(storage_body(exact_total)).total_bytes == 2050

    info = parse_storage_info(storage_body(bad_total))
    assert info.total_bytes is None
    assert info.problems == [
        UsageProblem(
            "repositoriesSummaryList[0] (TOTAL)", "usedSpace: not a size: 'lots' has no number", bad_total
        )
    ]

    info = parse_storage_info(storage_body(total, exact_total))
    assert info.total_bytes == 2048
    assert info.problems == [
        UsageProblem("repositoriesSummaryList[1] (TOTAL)", "a second TOTAL row", exact_total)
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object, got list"),
        ({"binariesSummary": {}}, "expected a 'repositoriesSummaryList' list, got no such key"),
        (
            {"repositoriesSummaryList": {"repoKey": "x"}},
            "expected a 'repositoriesSummaryList' list, got dict",
        ),
    ],
)
def test_a_storageinfo_body_that_is_not_a_summary_is_a_broken_source(body: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_storage_info(body)
    assert str(caught.value) == f"GET /api/storageinfo: {message}"


# --- Artifactory: file statistics ----------------------------------------------------------------


def test_file_stats_sample() -> None:
    body = load(FILE_STATS)

    stats = parse_file_stats(body)

    assert stats == FileStats(
        uri="http://localhost:8081/artifactory/api/storage/libs-release-local/org/acme/foo/1.0/foo-1.0.jar",
        download_count=1337,
        last_downloaded=dt.datetime(2014, 11, 1, 0, 0, tzinfo=UTC),
        last_downloaded_by="user1",
    )
    assert isinstance(stats, FileStats)
    assert stats.last_downloaded is not None
    assert int(stats.last_downloaded.timestamp() * 1000) == body["lastDownloaded"]


def test_file_stats_variants_and_problems() -> None:
    never = {"uri": "http://a/x.jar", "downloadCount": 0, "lastDownloaded": 0}
    assert parse_file_stats(never) == FileStats("http://a/x.jar", 0, None, None)

    bad = {"downloadCount": -2, "lastDownloaded": "yesterday"}
    assert parse_file_stats(bad) == UsageProblem(
        "file stats",
        "uri: missing; downloadCount: negative (-2); lastDownloaded: not a number ('yesterday')",
        bad,
    )
    with pytest.raises(
        ValueError, match=r"^GET /api/storage/\.\.\.\?stats: expected a JSON object, got str$"
    ):
        parse_file_stats("oops")
