"""The finops-dagster chart, rendered by Helm's engine: the objects of each value set, their security
settings, the values refused at install, and every object valid for Kubernetes 1.30."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_sdkpy
import kubernetes_validate
import pytest

from finops_dagster_tests.deploy.conftest import VALUE_SETS
from finops_dagster_tests.deploy.helm import NAMESPACE, Rendered, install, lint
from finops_dagster_tests.deploy.kube_stub import KubeStub

NAME = "finops-dagster"
COMMON = {
    ("ConfigMap", f"{NAME}-settings"),
    ("NetworkPolicy", f"{NAME}-default-deny"),
    ("NetworkPolicy", f"{NAME}-dns"),
    ("NetworkPolicy", f"{NAME}-mart"),
}
API = {
    ("ConfigMap", f"{NAME}-api"),
    ("Deployment", f"{NAME}-api"),
    ("Service", f"{NAME}-api"),
    ("PodDisruptionBudget", f"{NAME}-api"),
    ("NetworkPolicy", f"{NAME}-api"),
    ("ServiceAccount", NAME),
}
MIGRATE = {("Job", f"{NAME}-migrate")}
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "defaults": COMMON | API | MIGRATE,
    "cronjob": COMMON
    | API
    | MIGRATE
    | {("CronJob", f"{NAME}-nightly"), ("NetworkPolicy", f"{NAME}-nightly")},
    "api_only": COMMON | API,
    "ingress_hpa": COMMON
    | API
    | MIGRATE
    | {("Ingress", f"{NAME}-api"), ("HorizontalPodAutoscaler", f"{NAME}-api")},
    "monitoring": COMMON
    | API
    | MIGRATE
    | {
        ("CronJob", f"{NAME}-nightly"),
        ("NetworkPolicy", f"{NAME}-nightly"),
        ("PrometheusRule", NAME),
        ("ServiceMonitor", f"{NAME}-api"),
    },
    "pinned": COMMON | API | MIGRATE,
    "demo_secret": COMMON | API | MIGRATE | {("Secret", "finops-mart"), ("Secret", "finops-api")},
}


def pod_specs(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """The pod spec of every workload, by kind/name."""
    specs = {}
    for obj in rendered.everything:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in ("Deployment", "Job"):
            specs[f"{kind}/{name}"] = obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            specs[f"{kind}/{name}"] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def test_lint_passes_on_the_chart_values() -> None:
    result = lint()
    assert result["Errors"] is None
    assert result["TotalChartsLinted"] == 1
    # Only informational messages (severity 1: e.g. no icon); warnings are 2, errors 4.
    assert all(message["Severity"] <= 1 for message in result["Messages"]), result["Messages"]


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_each_value_set_renders_exactly_its_objects(rendered: dict[str, Rendered], value_set: str) -> None:
    assert rendered[value_set].kinds_and_names() == EXPECTED[value_set]
    assert {obj["metadata"]["namespace"] for obj in rendered[value_set].everything} == {NAMESPACE}


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_object_is_valid_for_kubernetes_1_30(rendered: dict[str, Rendered], value_set: str) -> None:
    for obj in rendered[value_set].everything:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # the Prometheus Operator's CRDs: test_monitoring.py checks them
        kubernetes_validate.validate(obj, "1.30", strict=True)


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_pod_is_restricted(rendered: dict[str, Rendered], value_set: str) -> None:
    specs = pod_specs(rendered[value_set])
    assert specs
    for where, spec in specs.items():
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == 10001, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}, where


def test_the_api_serves_on_all_interfaces_with_health_probes(rendered: dict[str, Rendered]) -> None:
    deployment = rendered["defaults"].one("Deployment", f"{NAME}-api")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == [
        "finops-dagster",
        "api",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--workers",
        "1",
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert spec["serviceAccountName"] == NAME
    assert deployment["spec"]["replicas"] == 2
    assert container["envFrom"] == [
        {"configMapRef": {"name": f"{NAME}-api"}},
        {"secretRef": {"name": "finops-api"}},
    ]
    assert rendered["defaults"].one("ServiceAccount", NAME)["automountServiceAccountToken"] is False
    assert rendered["defaults"].one("PodDisruptionBudget", f"{NAME}-api")["spec"]["maxUnavailable"] == 1


def test_images_are_the_app_version_or_the_pinned_digest(rendered: dict[str, Rendered]) -> None:
    repository = "registry.example.org/finops/finops-dagster"
    by_tag = {c["image"] for spec in pod_specs(rendered["defaults"]).values() for c in spec["containers"]}
    assert by_tag == {f"{repository}:0.1.0"}
    by_digest = {c["image"] for spec in pod_specs(rendered["pinned"]).values() for c in spec["containers"]}
    assert by_digest == {f"{repository}@sha256:{'0123456789abcdef' * 4}"}


def test_with_autoscaling_the_hpa_owns_the_replica_count(rendered: dict[str, Rendered]) -> None:
    deployment = rendered["ingress_hpa"].one("Deployment", f"{NAME}-api")
    assert "replicas" not in deployment["spec"]
    hpa = rendered["ingress_hpa"].one("HorizontalPodAutoscaler", f"{NAME}-api")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    ingress = rendered["ingress_hpa"].one("Ingress", f"{NAME}-api")
    assert ingress["spec"]["tls"] == [{"hosts": ["finops-api.example.org"], "secretName": "finops-api-tls"}]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == f"{NAME}-api"


def test_migrations_run_before_install_and_upgrade_with_the_mart_secret_only(
    rendered: dict[str, Rendered],
) -> None:
    job = rendered["defaults"].one("Job", f"{NAME}-migrate")
    assert job in rendered["defaults"].hooks
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["finops-dagster", "migrate"]
    assert container["envFrom"] == [{"secretRef": {"name": "finops-mart"}}]


def test_demo_secrets_exist_before_the_migration_reads_them(rendered: dict[str, Rendered]) -> None:
    demo = rendered["demo_secret"]
    secret = demo.one("Secret", "finops-mart")
    assert secret in demo.hooks
    weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    job_weight = int(demo.one("Job", f"{NAME}-migrate")["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < job_weight
    assert secret["stringData"] == {"POSTGRES_URL": "postgresql://finops:demo@mart.finops.svc/finops"}
    assert not [obj for obj in rendered["defaults"].everything if obj["kind"] == "Secret"]


def test_the_headless_cronjob_runs_the_nightly_command_once_at_a_time(rendered: dict[str, Rendered]) -> None:
    cronjob = rendered["cronjob"].one("CronJob", f"{NAME}-nightly")
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 2 * * *"
    assert spec["timeZone"] == "UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)
    job = spec["jobTemplate"]["spec"]
    assert (job["activeDeadlineSeconds"], job["backoffLimit"]) == (14400, 0)
    container = job["template"]["spec"]["containers"][0]
    assert container["command"] == ["finops-dagster", "nightly", "--months", "2026-10:2026-11"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": f"{NAME}-settings"}},
        {"secretRef": {"name": "finops-mart"}},
        {"secretRef": {"name": "finops-mongo"}},
        {"secretRef": {"name": "finops-sources"}},
    ]


def test_network_policies_deny_by_default_and_allow_only_the_listed_peers(
    rendered: dict[str, Rendered],
) -> None:
    cron = rendered["cronjob"]
    deny = cron.one("NetworkPolicy", f"{NAME}-default-deny")["spec"]
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/instance": NAME,
    }
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    dns = cron.one("NetworkPolicy", f"{NAME}-dns")["spec"]["egress"][0]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    mart = cron.one("NetworkPolicy", f"{NAME}-mart")["spec"]
    assert mart["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    ]
    nightly = cron.one("NetworkPolicy", f"{NAME}-nightly")["spec"]["egress"]
    assert [(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in nightly] == [
        ("10.0.0.12/32", 27017),
        ("10.0.0.0/24", 443),
    ]
    api = cron.one("NetworkPolicy", f"{NAME}-api")["spec"]
    assert api["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
            ],
            "ports": [{"protocol": "TCP", "port": 8000}],
        }
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nightly": {"schedule": 5}}, "at '/nightly/schedule': got number, want string"),
        ({"api": {"replicas": "two"}}, "at '/api/replicas': got string, want integer"),
        ({"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
        ({"api": {"replica": 3}}, "at '/api': additional properties 'replica' not allowed"),
        ({"nightly": {"concurrencyPolicy": "Allow"}}, "at '/nightly/concurrencyPolicy'"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"nightly": {"months": "October"}}, "at '/nightly/months'"),
        (
            {"networkPolicy": {"egress": {"mart": [{"cidr": "db.example.org", "ports": [5432]}]}}},
            "at '/networkPolicy/egress/mart/0/cidr'",
        ),
        (
            {"nightly": {"enabled": True}},
            "nightly.enabled=true and dagster.scheduleEnabled=true: the nightly run would start twice",
        ),
    ],
)
def test_a_wrong_value_fails_the_install_naming_it(
    stub: KubeStub, kubeconfig: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_sdkpy.InstallError) as failure:
        install(stub, kubeconfig, values)
    assert message in str(failure.value)
