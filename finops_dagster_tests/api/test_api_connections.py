"""The HTTP edge over real sockets: a bounded request head, a deadline for it, an idle timeout, and a
connection cap that sheds slow clients (slowloris) rather than refusing `/healthz`, also in a process
whose file limit is lower than the number of slow clients."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from finops_dagster.api.settings import ConnectionLimits
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for
from finops_dagster_tests.support.ports import free_port


@pytest.fixture(scope="module")
def guarded(published: Published) -> Iterator[LiveApi]:
    """Tight limits, so that a test sees them act within a second or two."""
    with pytest.MonkeyPatch.context() as patch:
        settings = settings_for(
            patch,
            published.url,
            None,
            FINOPS_API_MAX_HEADER_BYTES="4096",
            FINOPS_API_HEADER_TIMEOUT_MS="1000",
            FINOPS_API_IDLE_TIMEOUT_S="1",
            FINOPS_API_MAX_CONNECTIONS="20",
        )
    assert settings.connections == ConnectionLimits(4096, 1.0, 1, 20)
    with live_api(settings) as running:
        yield running


def _connect(api: LiveApi) -> socket.socket:
    host, port = api.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `within_s`."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # b"": closed by the server
    except BlockingIOError:
        return True  # nothing to read, not closed
    except ConnectionResetError:
        return False


def test_an_oversized_request_head_is_431_and_closed(guarded: LiveApi) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert _closed_by_server(sock, 2)
    # a 64 MB header is refused after its first 4 KiB, not read whole
    with _connect(guarded) as sock:
        started = time.monotonic()
        sent = 0
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 64 * 1024 * 1024 and time.monotonic() - started < 5
    assert guarded.get("/healthz").status_code == 200


def test_a_head_of_normal_size_is_served(guarded: LiveApi) -> None:
    response = guarded.get("/healthz", headers={"X-Padding": "p" * 3000})
    assert response.status_code == 200


def test_a_head_that_does_not_arrive_in_time_is_closed(guarded: LiveApi) -> None:
    with _connect(guarded) as silent, _connect(guarded) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(3):  # a header line every 0.4 s: never complete within the 1 s deadline
            time.sleep(0.4)
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert _closed_by_server(slow, 2)
        assert _closed_by_server(silent, 2)  # connected, never sent a byte


def test_an_idle_keep_alive_connection_is_closed(guarded: LiveApi) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert _closed_by_server(sock, 3)
        assert time.monotonic() - started < 2.5


def test_slowloris_connections_do_not_starve_healthz(guarded: LiveApi) -> None:
    """Far more slow connections than the cap: each new one sheds the slowest, and /healthz (on new
    connections, as a load balancer probes) is answered at once all along."""
    slow: list[socket.socket] = []
    try:
        for index in range(100):
            sock = _connect(guarded)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
            if index % 20 == 19:
                started = time.monotonic()
                response = httpx.get(guarded.base_url + "/healthz", timeout=5)
                assert response.status_code == 200
                assert time.monotonic() - started < 1
        assert sum(_still_open(sock) for sock in slow) <= 20  # the cap held
    finally:
        for sock in slow:
            sock.close()


@pytest.fixture
def api_under_a_low_file_limit(published: Published) -> Iterator[str]:
    """`finops-dagster api` as deployed, in a process limited to 256 file descriptors and left to
    derive its connection cap from that limit (256 - 128)."""
    port = free_port()
    env = {
        **os.environ,
        "FINOPS_API_POSTGRES_URL": published.url,
        "FINOPS_API_AUTH": "none",
        "FINOPS_API_ALLOW_PRIVILEGED_LOGIN": "true",
        "FINOPS_API_HEADER_TIMEOUT_MS": "60000",  # the cap, not the deadline, must hold them off here
    }
    env.pop("FINOPS_API_MAX_CONNECTIONS", None)

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    process = subprocess.Popen(
        [sys.executable, "-m", "finops_dagster.cli", "api", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log"],
        env=env, preexec_fn=limit_files, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_slowloris_beyond_the_file_limit_does_not_starve_healthz(api_under_a_low_file_limit: str) -> None:
    host, port = api_under_a_low_file_limit.removeprefix("http://").split(":")
    slow: list[socket.socket] = []
    try:
        for index in range(400):  # more connections than the process has file descriptors
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
            if index % 50 == 49:
                started = time.monotonic()
                assert httpx.get(api_under_a_low_file_limit + "/healthz", timeout=5).status_code == 200
                assert time.monotonic() - started < 1
        time.sleep(0.5)
        assert sum(_still_open(sock) for sock in slow) <= 256 - 128
        assert httpx.get(api_under_a_low_file_limit + "/api/v1/costs/domains", timeout=5).status_code == 200
    finally:
        for sock in slow:
            sock.close()
