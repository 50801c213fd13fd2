"""Artifactory REST bodies turned into typed storage per repository.

`GET /artifactory/api/storageinfo` reports, per repository, the space its files take. Older
Artifactory writes that space only as a human string (`"34.46 MB"`); newer versions add the exact
`usedSpaceInBytes` (and the JFrog `projectKey`), which is preferred whenever present. The last
element of `repositoriesSummaryList`, repoKey `TOTAL`, is a summary row, not a repository: it is
returned apart as `StorageInfo.total_bytes`.

Human sizes are read as Artifactory writes them (`StorageUnit.toReadableString`): binary units,
1 KB = 1024 bytes, 1 MB = 1024² bytes, 1 GB = 1024³, 1 TB = 1024⁴; below 1 KB the exact integer
followed by `bytes`; above, a number with two decimals and `,` thousands separators (English
locale), so a parsed size is within half a hundredth of its unit of the true one (±5.4 MB for a
size written in GB) — prefer `usedSpaceInBytes`.

Pure parsing: no HTTP, no Dagster. A body that is not a storage summary raises `ValueError` (the
client reports a broken source); one malformed repository becomes a `UsageProblem`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from finops_dagster.domains.native.problems import (
    MAX_COUNT,
    UsageProblem,
    ValueProblem,
    as_raw,
    byte_count,
    count,
    text_field,
)

__all__ = [
    "SIZE_UNITS",
    "TOTAL_REPO_KEY",
    "FileStats",
    "RepositoryStorage",
    "StorageInfo",
    "UsageProblem",
    "parse_file_stats",
    "parse_size",
    "parse_storage_info",
]

TOTAL_REPO_KEY = "TOTAL"
VIRTUAL = "VIRTUAL"

# Unit (lower case) → bytes. Artifactory writes "bytes", "KB", "MB", "GB", "TB"; its own reader
# (`StorageUnit.fromReadableString`) ignores case, and so does this one.
SIZE_UNITS: dict[str, int] = {
    "bytes": 1,
    "byte": 1,
    "b": 1,
    "kb": 1024,
    "mb": 1024**2,
    "gb": 1024**3,
    "tb": 1024**4,
}
_PERCENT_SUFFIX = re.compile(r"\(\s*[0-9.,]+\s*%\s*\)\s*$")
_SIZE = re.compile(r"(?P<number>[-+]?[0-9][0-9.,]*)\s*(?P<unit>[A-Za-z]+)")
# Plain digits, or digits grouped by three with commas ("1,536.25"); a fraction after a dot.
_NUMBER = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")


def parse_size(text: str) -> int:
    """Bytes from an Artifactory human size: "59.77 GB", "0 bytes", "1,024 KB", "32.22 GB (15.77%)".

    Units are binary (1 KB = 1024 bytes, as Artifactory computes them), case is ignored, a trailing
    percentage in parentheses (fileStoreSummary's "used (share)") is ignored. The result is rounded
    to the nearest byte (half to even). Raises `ValueError` saying why for anything else: no number
    ("n/a"), a negative size, an unknown unit ("12 XB"), no unit, a malformed number ("1,5 GB"),
    or a fraction of a byte.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a size: expected a string like '59.77 GB', got {type(text).__name__}")
    shown = text.strip()[:40]
    core = _PERCENT_SUFFIX.sub("", text.strip()).strip()
    match = _SIZE.fullmatch(core)
    if match is None:
        if not re.search(r"[0-9]", core):
            raise ValueError(f"not a size: {shown!r} has no number")
        if re.fullmatch(r"[-+]?[0-9][0-9.,]*", core):
            raise ValueError(f"not a size: {shown!r} has no unit (expected bytes, KB, MB, GB or TB)")
        raise ValueError(f"not a size: {shown!r} is not '<number> <unit>'")
    number_text, unit = match.group("number"), match.group("unit")
    if number_text.startswith("-"):
        raise ValueError(f"not a size: {shown!r} is negative")
    number_text = number_text.removeprefix("+")
    if not _NUMBER.fullmatch(number_text):
        raise ValueError(f"not a size: {shown!r} has a malformed number {number_text!r}")
    factor = SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(
            f"not a size: {shown!r} has an unknown unit {unit!r} (expected bytes, KB, MB, GB or TB)"
        )
    number = Decimal(number_text.replace(",", ""))
    if factor == 1 and number != number.to_integral_value():
        raise ValueError(f"not a size: {shown!r} is a fraction of a byte")
    size = int((number * factor).to_integral_value(rounding=ROUND_HALF_EVEN))
    if size > MAX_COUNT:
        raise ValueError(f"not a size: {shown!r} is too large")
    return size


@dataclass(frozen=True)
class RepositoryStorage:
    """One repository's used space, in bytes, from `repositoriesSummaryList`.

    `used_bytes` is `usedSpaceInBytes` when Artifactory sends it (exact), else the parsed `usedSpace`
    (then `approximate` is True: see the module docstring). A VIRTUAL repository only aggregates
    other repositories and holds no storage of its own: it is kept with `used_bytes` 0, whatever
    size it shows, so its members are not counted twice. `project_key` is the JFrog Project the
    repository belongs to (newer Artifactory), None when absent or blank.
    """

    repo_key: str
    repo_type: str
    package_type: str | None
    project_key: str | None
    used_bytes: int
    approximate: bool = False


@dataclass(frozen=True)
class StorageInfo:
    """A parsed storage summary: the repositories, the rows that could not be read, and the TOTAL row.

    `total_bytes` is the `TOTAL` row's used space (None when the body has no such row or it cannot
    be read — then a problem says so). It is Artifactory's own sum and usually written as a human
    string, so compare it to the sum of `used_bytes` with the rounding of its unit in mind.
    """

    repositories: list[RepositoryStorage]
    problems: list[UsageProblem]
    total_bytes: int | None


def parse_storage_info(body: Any) -> StorageInfo:
    """Every repository of `GET /api/storageinfo`, in the body's order, TOTAL row set apart."""
    if not isinstance(body, dict):
        raise ValueError(f"GET /api/storageinfo: expected a JSON object, got {type(body).__name__}")
    rows = body.get("repositoriesSummaryList")
    if not isinstance(rows, list):
        found = type(rows).__name__ if "repositoriesSummaryList" in body else "no such key"
        raise ValueError(f"GET /api/storageinfo: expected a 'repositoriesSummaryList' list, got {found}")
    repositories: list[RepositoryStorage] = []
    problems: list[UsageProblem] = []
    total_bytes: int | None = None
    total_seen = False
    for index, row in enumerate(rows):
        if _is_total_row(row):
            ref = f"repositoriesSummaryList[{index}] ({TOTAL_REPO_KEY})"
            if total_seen:
                problems.append(UsageProblem(ref, f"a second {TOTAL_REPO_KEY} row", row))
                continue
            total_seen = True
            try:
                total_bytes, _ = _used_bytes(row)
            except ValueProblem as problem:
                problems.append(UsageProblem(ref, str(problem), row))
            continue
        parsed = _parse_repository(row)
        if isinstance(parsed, RepositoryStorage):
            repositories.append(parsed)
            continue
        key = row.get("repoKey") if isinstance(row, dict) else None
        ref = key.strip() if isinstance(key, str) and key.strip() else f"repositoriesSummaryList[{index}]"
        problems.append(UsageProblem(ref=ref, reason="; ".join(parsed), raw=as_raw(row)))
    return StorageInfo(repositories=repositories, problems=problems, total_bytes=total_bytes)


def _is_total_row(row: Any) -> bool:
    """The summary row: repoKey TOTAL with no real repository type (a repository may be named TOTAL)."""
    if not isinstance(row, dict):
        return False
    return row.get("repoKey") == TOTAL_REPO_KEY and row.get("repoType") in (None, "NA")


def _used_bytes(row: dict[str, Any]) -> tuple[int, bool]:
    """(bytes, approximate): `usedSpaceInBytes` when present, else the parsed `usedSpace`."""
    if row.get("usedSpaceInBytes") is not None:
        return byte_count(row["usedSpaceInBytes"], "usedSpaceInBytes"), False
    raw = row.get("usedSpace")
    if raw is None:
        raise ValueProblem("usedSpace: missing (and no usedSpaceInBytes)")
    try:
        return parse_size(raw), True
    except ValueError as error:
        raise ValueProblem(f"usedSpace: {error}") from None


def _parse_repository(row: Any) -> RepositoryStorage | list[str]:
    if not isinstance(row, dict):
        return [f"repository entry is not an object ({type(row).__name__})"]
    reasons: list[str] = []
    repo_key = text_field(row.get("repoKey"), "repoKey", reasons, required=True)
    repo_type = text_field(row.get("repoType"), "repoType", reasons, required=True)
    package_type = text_field(row.get("packageType"), "packageType", reasons)
    project_key = text_field(row.get("projectKey"), "projectKey", reasons)
    used_bytes, approximate = 0, False
    if repo_type is not None and repo_type.upper() != VIRTUAL:
        try:
            used_bytes, approximate = _used_bytes(row)
        except ValueProblem as problem:
            reasons.append(str(problem))
    if reasons or repo_key is None or repo_type is None:
        return reasons
    return RepositoryStorage(
        repo_key=repo_key,
        repo_type=repo_type.upper(),
        package_type=package_type,
        project_key=project_key,
        used_bytes=used_bytes,
        approximate=approximate,
    )


# --- file statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileStats:
    """`GET /api/storage/{repoKey}/{path}?stats`: how much and how lately one artifact was downloaded.

    `last_downloaded` is aware UTC, None when the artifact was never downloaded (Artifactory then
    writes 0 or nothing). Useful to find storage nobody reads; it carries no size.
    """

    uri: str
    download_count: int
    last_downloaded: dt.datetime | None
    last_downloaded_by: str | None


def parse_file_stats(body: Any) -> FileStats | UsageProblem:
    """The file statistics, or a `UsageProblem` saying why they cannot be read."""
    if not isinstance(body, dict):
        raise ValueError(f"GET /api/storage/...?stats: expected a JSON object, got {type(body).__name__}")
    reasons: list[str] = []
    uri = text_field(body.get("uri"), "uri", reasons, required=True)
    downloads: int | None = None
    try:
        downloads = count(body.get("downloadCount"), "downloadCount")
    except ValueProblem as problem:
        reasons.append(str(problem))
    last: dt.datetime | None = None
    if body.get("lastDownloaded") is not None:
        try:
            millis = count(body["lastDownloaded"], "lastDownloaded")
        except ValueProblem as problem:
            reasons.append(str(problem))
        else:
            if millis:
                last = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
    by = text_field(body.get("lastDownloadedBy"), "lastDownloadedBy", reasons)
    if reasons or uri is None or downloads is None:
        return UsageProblem(ref=uri or "file stats", reason="; ".join(reasons), raw=body)
    return FileStats(uri=uri, download_count=downloads, last_downloaded=last, last_downloaded_by=by)
