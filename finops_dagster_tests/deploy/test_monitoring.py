"""The chart's Prometheus Operator objects: the PrometheusRule holds exactly the rules of
deploy/prometheus/finops-rules.yaml (runbooks made absolute) and the real promtool accepts them; the
ServiceMonitor scrapes the API's /metrics, which the API's NetworkPolicy lets Prometheus reach; the nightly
pod may reach the Pushgateway."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import helm_sdkpy
import pytest
import yaml

from finops_dagster_tests.deploy.conftest import RUNBOOK_BASE_URL
from finops_dagster_tests.deploy.helm import Rendered, install
from finops_dagster_tests.deploy.kube_stub import KubeStub
from finops_dagster_tests.support.metric_names import RULES
from finops_dagster_tests.support.processes import binary

NAME = "finops-dagster"


def rules_with_absolute_runbooks() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = copy.deepcopy(yaml.safe_load(RULES.read_text())["groups"])
    for group in groups:
        for rule in group["rules"]:
            annotations = rule.get("annotations", {})
            if "runbook_url" in annotations:
                anchor = annotations["runbook_url"].split("#", 1)[1]
                annotations["runbook_url"] = f"{RUNBOOK_BASE_URL}#{anchor}"
    return groups


def test_the_rule_file_is_the_charts_own() -> None:
    assert RULES.is_symlink()
    assert RULES.resolve() == (RULES.parents[1] / "helm" / NAME / "files" / "finops-rules.yaml").resolve()


def test_the_prometheus_rule_holds_every_rule_with_absolute_runbooks(rendered: dict[str, Rendered]) -> None:
    rule = rendered["monitoring"].one("PrometheusRule", NAME)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == rules_with_absolute_runbooks()
    urls = [
        r["annotations"]["runbook_url"]
        for group in rule["spec"]["groups"]
        for r in group["rules"]
        if "alert" in r
    ]
    assert urls and all(url.startswith(f"{RUNBOOK_BASE_URL}#finops") for url in urls)


def test_promtool_accepts_the_rendered_rules(rendered: dict[str, Rendered], tmp_path: Path) -> None:
    spec = rendered["monitoring"].one("PrometheusRule", NAME)["spec"]
    path = tmp_path / "rendered-rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(group["rules"]) for group in spec["groups"])
    assert f"SUCCESS: {count} rules found" in done.stdout


def test_the_service_monitor_scrapes_the_api_metrics(rendered: dict[str, Rendered]) -> None:
    monitor = rendered["monitoring"].one("ServiceMonitor", f"{NAME}-api")
    service = rendered["monitoring"].one("Service", f"{NAME}-api")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        key: value
        for key, value in service["metadata"]["labels"].items()
        if key in monitor["spec"]["selector"]["matchLabels"]
    }
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert [port["name"] for port in service["spec"]["ports"]] == ["http"]


def test_prometheus_may_scrape_the_api_and_the_nightly_may_push(rendered: dict[str, Rendered]) -> None:
    api = rendered["monitoring"].one("NetworkPolicy", f"{NAME}-api")["spec"]["ingress"]
    assert api[1] == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": 8000}],
    }
    nightly = rendered["monitoring"].one("NetworkPolicy", f"{NAME}-nightly")["spec"]["egress"]
    assert {
        "to": [{"ipBlock": {"cidr": "10.0.0.30/32"}}],
        "ports": [{"protocol": "TCP", "port": 9091}],
    } in nightly


def test_no_monitoring_object_by_default(rendered: dict[str, Rendered]) -> None:
    kinds = {obj["kind"] for obj in rendered["defaults"].everything}
    assert not kinds & {"PrometheusRule", "ServiceMonitor"}
    assert len(rendered["defaults"].one("NetworkPolicy", f"{NAME}-api")["spec"]["ingress"]) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"monitoring": {"prometheusRule": {"enabled": True}}},
            "monitoring.prometheusRule.runbookBaseUrl is required when the PrometheusRule is enabled",
        ),
        (
            {"monitoring": {"prometheusRule": {"enabled": True, "runbookBaseUrl": "README.md#top"}}},
            "at '/monitoring/prometheusRule/runbookBaseUrl'",
        ),
        (
            {
                "monitoring": {"serviceMonitor": {"enabled": True}},
                "api": {"settings": {"FINOPS_API_METRICS": "off"}},
            },
            'api.settings.FINOPS_API_METRICS is "off"',
        ),
        (
            {"monitoring": {"serviceMonitor": {"enabled": True, "interval": "often"}}},
            "at '/monitoring/serviceMonitor/interval'",
        ),
    ],
)
def test_a_wrong_monitoring_value_fails_the_install_naming_it(
    stub: KubeStub, kubeconfig: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_sdkpy.InstallError) as failure:
        install(stub, kubeconfig, values)
    assert message in str(failure.value)
