"""A stand-in for the Kubernetes API server, on localhost, for rendering charts with Helm's own code.

Helm's library installs a chart by talking to a cluster: discovery, the release record, the hooks (it
waits for hook Jobs to complete), then the objects. This server answers just enough of that for an
install to go through — every Job it is given is reported complete at once — and keeps nothing but
what it was sent, so a chart is rendered, schema-checked and applied by the real Helm engine
without a cluster. It validates nothing: that is the job of the Kubernetes schemas in the tests.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

# group -> (version, [(plural, kind, namespaced)]): what the charts create, and the release storage.
RESOURCES: dict[str, tuple[str, list[tuple[str, str, bool]]]] = {
    "": (
        "v1",
        [
            ("configmaps", "ConfigMap", True),
            ("secrets", "Secret", True),
            ("services", "Service", True),
            ("serviceaccounts", "ServiceAccount", True),
            ("pods", "Pod", True),
            ("namespaces", "Namespace", False),
        ],
    ),
    "apps": ("v1", [("deployments", "Deployment", True)]),
    "batch": ("v1", [("jobs", "Job", True), ("cronjobs", "CronJob", True)]),
    "policy": ("v1", [("poddisruptionbudgets", "PodDisruptionBudget", True)]),
    "autoscaling": ("v2", [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)]),
    "networking.k8s.io": ("v1", [("networkpolicies", "NetworkPolicy", True), ("ingresses", "Ingress", True)]),
    # The Prometheus Operator's CRDs, as a cluster that has them serves them.
    "monitoring.coreos.com": (
        "v1",
        [("prometheusrules", "PrometheusRule", True), ("servicemonitors", "ServiceMonitor", True)],
    ),
}
# plural -> (apiVersion, kind)
TYPE_OF_PLURAL = {
    plural: (f"{group}/{version}" if group else version, kind)
    for group, (version, items) in RESOURCES.items()
    for plural, kind, _ in items
}
RELEASE_SECRET = re.compile(rb"sh\.helm\.release\.v1\.[A-Za-z0-9.-]+")
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}


def _resource_list(group: str, version: str) -> dict[str, Any]:
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for plural, kind, namespaced in RESOURCES[group][1]
        ],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: KubeStub

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: Helm's requests are not the test's output."""

    def _reply(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._reply(code, json.dumps(obj).encode())

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self) -> None:
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)
        if path == "/version":
            return self._json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        if path == "/api":
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                    "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
                }
                for group, (version, _) in RESOURCES.items()
                if group
            ]
            return self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/openapi/v2":  # an empty OpenAPI document: client-side validation has no schema
            return self._reply(200, b"", "application/octet-stream")
        if path == "/api/v1":
            return self._json(200, _resource_list("", "v1"))
        group_match = re.fullmatch(r"/apis/([^/]+)/([^/]+)", path)
        if group_match and group_match.group(1) in RESOURCES:
            return self._json(200, _resource_list(group_match.group(1), group_match.group(2)))
        with self.server.lock:
            stored = self.server.objects.get(path)
            items = [obj for key, obj in self.server.objects.items() if key.rsplit("/", 1)[0] == path]
        if stored is not None:
            return self._json(200, stored)
        plural = path.rsplit("/", 1)[-1]
        if plural not in TYPE_OF_PLURAL:
            return self._json(404, NOT_FOUND)
        if query.get("watch"):
            # The initial events, then the bookmark that ends them: Helm's watcher sees every hook Job
            # complete on its first read.
            api_version, kind = TYPE_OF_PLURAL[plural]
            events = [{"type": "ADDED", "object": obj} for obj in items]
            events.append(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": kind,
                        "apiVersion": api_version,
                        "metadata": {
                            "resourceVersion": "2",
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                }
            )
            return self._reply(200, b"".join(json.dumps(event).encode() + b"\n" for event in events))
        return self._json(
            200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}
        )

    def do_POST(self) -> None:
        body, path = self._body(), urlparse(self.path).path
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            # The release record (Helm's storage driver speaks protobuf): acknowledged, not kept.
            found = RELEASE_SECRET.search(body)
            name = found.group().decode() if found else "release"
            return self._json(
                201,
                {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "resourceVersion": "1"}},
            )
        obj = json.loads(body)
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("resourceVersion", "1")
        metadata.setdefault("uid", f"uid-{metadata.get('name')}")
        if obj.get("kind") == "Job":
            obj["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        with self.server.lock:
            self.server.objects[f"{path}/{metadata.get('name')}"] = obj
        return self._json(201, obj)

    def do_PUT(self) -> None:
        body, path = self._body(), urlparse(self.path).path
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            name = path.rsplit("/", 1)[-1]
            return self._json(
                200,
                {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "resourceVersion": "2"}},
            )
        obj = json.loads(body)
        with self.server.lock:
            self.server.objects[path] = obj
        return self._json(200, obj)

    def do_PATCH(self) -> None:
        self._body()
        return self._json(404, NOT_FOUND)

    def do_DELETE(self) -> None:
        self._body()
        with self.server.lock:
            removed = self.server.objects.pop(urlparse(self.path).path, None)
        return self._json(200, removed or {"kind": "Status", "apiVersion": "v1", "status": "Success"})


class KubeStub(ThreadingHTTPServer):
    """The stand-in server; `objects` maps each created object's API path to its body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()

    def kubeconfig(self, directory: Path) -> Path:
        """A kubeconfig file pointing at this server."""
        host, port = self.server_address[:2]
        path = directory / "kubeconfig.yaml"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: stub, cluster: {{server: 'http://{host!s}:{port}'}}}}]\n"
            "users: [{name: stub, user: {token: stub}}]\n"
            "contexts: [{name: stub, context: {cluster: stub, user: stub}}]\n"
            "current-context: stub\n"
        )
        return path


@contextmanager
def kube_stub() -> Iterator[KubeStub]:
    server = KubeStub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
