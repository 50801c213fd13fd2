"""Rendering a chart with Helm's own engine (helm-sdkpy bundles Helm's Go library) against the local
Kubernetes stand-in: values schema, templates, `fail`s and hooks are Helm's, not a re-implementation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_sdkpy
import yaml

from finops_dagster_tests.deploy.kube_stub import KubeStub

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "finops-dagster"
DAGSTER_VALUES = REPO / "deploy" / "helm" / "dagster-values.yaml"
NAMESPACE = "finops"
RELEASE = "finops-dagster"


@dataclass(frozen=True)
class Rendered:
    """What one install applied: the release's objects and its hooks, in Helm's order."""

    objects: list[dict[str, Any]]
    hooks: list[dict[str, Any]]

    @property
    def everything(self) -> list[dict[str, Any]]:
        return self.hooks + self.objects

    def kinds_and_names(self) -> set[tuple[str, str]]:
        return {(obj["kind"], obj["metadata"]["name"]) for obj in self.everything}

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.everything if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]


def _documents(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def install(stub: KubeStub, kubeconfig: Path, values: dict[str, Any], chart: Path = CHART) -> Rendered:
    """`helm install` of the chart with these values (merged over its values.yaml by Helm) into the
    stand-in; raises helm_sdkpy.InstallError with Helm's message when the values or templates fail."""
    stub.reset()
    config = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=str(kubeconfig))
    result = asyncio.run(
        helm_sdkpy.Install(config).run(RELEASE, str(chart), values=values, wait=False, timeout=60)
    )
    hooks = [doc for hook in result.get("hooks") or [] for doc in _documents(hook["manifest"])]
    return Rendered(objects=_documents(result.get("manifest") or ""), hooks=hooks)


def lint(chart: Path = CHART) -> dict[str, Any]:
    """`helm lint` of the chart with its own values."""
    config = helm_sdkpy.Configuration(namespace=NAMESPACE)
    result: dict[str, Any] = asyncio.run(helm_sdkpy.Lint(config).run(str(chart)))
    return result
