"""The real Prometheus components for tests: binaries found or the test skipped, servers on free
local ports with temporary configuration and storage, stopped when the test ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from finops_dagster_tests.support.ports import free_port

INSTALL_HINT = "apt-get install -y prometheus prometheus-pushgateway"
FINOPS_CLI = str(Path(sys.executable).parent / "finops-dagster")
REPOSITORY = Path(__file__).resolve().parents[2]


def binary(name: str) -> str:
    """The binary's path, or the test is skipped saying what to install."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({INSTALL_HINT})")
    return path


@contextmanager
def serving(
    args: Sequence[str], ready_url: str, log: Path, env: Mapping[str, str] | None = None, timeout: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until `ready_url` answers 200, stop (then kill) it at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=output, env=dict(env or os.environ))
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{args[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{args[0]} not ready after {timeout} s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def pushgateway(tmp: Path) -> Iterator[str]:
    """A Pushgateway on a free port, persisting to the test's directory (Debian's default file is
    shared by every instance); yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={tmp / 'pushgateway.data'}",
    ]
    with serving(args, f"{url}/-/ready", tmp / "pushgateway.log"):
        yield url


@contextmanager
def prometheus(tmp: Path, targets: Mapping[str, str]) -> Iterator[str]:
    """A Prometheus scraping each `job: host:port` every second (honouring pushed labels); yields its
    base URL."""
    port = free_port()
    jobs = "\n".join(
        f"  - job_name: {job}\n    honor_labels: true\n    static_configs:\n      - targets: ['{target}']"
        for job, target in targets.items()
    )
    config = tmp / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}\n")
    args = [
        binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with serving(args, f"{url}/-/ready", tmp / "prometheus.log"):
        yield url


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query over Prometheus' HTTP API: its result vector."""
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for_value(prometheus_url: str, promql: str, timeout: float = 30) -> float:
    """The single value of `promql` once Prometheus has scraped it."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(prometheus_url, promql)
        if result:
            assert len(result) == 1, result
            return float(result[0]["value"][1])
        if time.monotonic() > deadline:
            raise AssertionError(f"no value for {promql} after {timeout} s")
        time.sleep(0.5)
