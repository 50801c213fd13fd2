"""Fixtures of the deployment tests: the charts rendered once per value set by Helm's engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finops_dagster_tests.deploy.helm import Rendered, install
from finops_dagster_tests.deploy.kube_stub import KubeStub, kube_stub

RUNBOOK_BASE_URL = "https://git.example.org/finops/finops-dagster/-/blob/main/README.md"

# The value sets the chart is rendered with; test_chart.py says what each must produce.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cronjob": {
        "dagster": {"scheduleEnabled": False},
        "nightly": {"enabled": True, "months": "2026-10:2026-11"},
    },
    "api_only": {"migrations": {"enabled": False}},
    "ingress_hpa": {
        "api": {
            "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "finops-api-tls"},
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
        }
    },
    "monitoring": {
        "dagster": {"scheduleEnabled": False},
        "nightly": {"enabled": True},
        "networkPolicy": {
            "egress": {"pushgateway": [{"cidr": "10.0.0.30/32", "ports": [9091]}]},
            "prometheusFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
        },
        "monitoring": {
            "prometheusRule": {
                "enabled": True,
                "labels": {"release": "kube-prometheus-stack"},
                "runbookBaseUrl": RUNBOOK_BASE_URL,
            },
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        },
    },
    "pinned": {"image": {"digest": "sha256:" + "0123456789abcdef" * 4}},
    "demo_secret": {
        "demoSecrets": {
            "enabled": True,
            "mart": {"POSTGRES_URL": "postgresql://finops:demo@mart.finops.svc/finops"},
            "api": {"FINOPS_API_POSTGRES_URL": "postgresql://finops_api:demo@mart.finops.svc/finops"},
        }
    },
}


@pytest.fixture(scope="session")
def stub() -> Iterator[KubeStub]:
    with kube_stub() as server:
        yield server


@pytest.fixture(scope="session")
def kubeconfig(stub: KubeStub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stub.kubeconfig(tmp_path_factory.mktemp("kube"))


@pytest.fixture(scope="session")
def rendered(stub: KubeStub, kubeconfig: Path) -> dict[str, Rendered]:
    """Each value set installed once (about two seconds each)."""
    return {name: install(stub, kubeconfig, values) for name, values in VALUE_SETS.items()}
