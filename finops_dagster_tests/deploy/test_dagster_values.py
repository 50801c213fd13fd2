"""deploy/helm/dagster-values.yaml, checked without the official chart (CI cannot download it): the
dagster.yaml the chart's instance ConfigMap makes of these values is built here, following the
chart's templates for the sections we set, and validated by Dagster's own config machinery; the run
Job that K8sRunLauncher would create is built by dagster-k8s and validated for Kubernetes 1.30; the
names it refers to are the ones the finops-dagster chart creates."""

from __future__ import annotations

import importlib
import tomllib
from types import SimpleNamespace
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

from finops_dagster_tests.deploy.helm import CHART, DAGSTER_VALUES, NAMESPACE, REPO, Rendered

# The Dagster release these values are documented for (`helm upgrade --install dagster dagster/dagster`).
DAGSTER_RELEASE = "dagster"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DAGSTER_VALUES.read_text())
    return loaded


def _names(refs: list[dict[str, str]]) -> list[str]:
    return [ref["name"] for ref in refs]


def chart_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The instance configuration (dagster.yaml) the Dagster chart renders from these values, for the
    sections the values set: storage, scheduler, run launcher, run coordinator, run monitoring, run
    retries, concurrency and telemetry (templates/configmap-instance.yaml and helpers/instance/*)."""
    postgresql = values["postgresql"]
    postgres_db = {
        "username": postgresql["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": postgresql["postgresqlHost"],
        "db_name": postgresql["postgresqlDatabase"],
        "port": postgresql["service"]["port"],
        "params": postgresql["postgresqlParams"],
    }
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = launcher["runK8sConfig"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    retries = values["dagsterDaemon"]["runRetries"]
    pools, runs = values["concurrency"]["pools"], values["concurrency"]["runs"]
    return {
        "scheduler": {"module": "dagster.core.scheduler", "class": values["scheduler"]["type"]},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": {"postgres_db": postgres_db},
        },
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": {"postgres_db": postgres_db},
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": {"postgres_db": postgres_db},
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": values["runLauncher"]["type"],
            "config": {
                "load_incluster_config": launcher["loadInclusterConfig"],
                "job_namespace": NAMESPACE,
                "image_pull_policy": launcher["imagePullPolicy"],
                "service_account_name": DAGSTER_RELEASE,
                "dagster_home": "/opt/dagster/dagster_home",
                "instance_config_map": f"{DAGSTER_RELEASE}-instance",
                "postgres_password_secret": values["global"]["postgresqlSecretName"],
                "env_config_maps": _names(launcher["envConfigMaps"]),
                "env_secrets": _names(launcher["envSecrets"]),
                "volume_mounts": launcher["volumeMounts"],
                "volumes": launcher["volumes"],
                "resources": launcher["resources"],
                "security_context": launcher["securityContext"],
                "run_k8s_config": {
                    "pod_spec_config": run_k8s["podSpecConfig"],
                    "job_spec_config": run_k8s["jobSpecConfig"],
                },
            },
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": values["dagsterDaemon"]["runCoordinator"]["type"],
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
            "max_runtime_seconds": monitoring["maxRuntimeSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "concurrency": {
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
            "runs": {
                "max_concurrent_runs": runs["maxConcurrentRuns"],
                "tag_concurrency_limits": runs["tagConcurrencyLimits"],
            },
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def _configurable_class(section: dict[str, Any]) -> Any:
    module = section["module"].replace("dagster.core.", "dagster._core.")
    return getattr(importlib.import_module(module), section["class"])


def test_the_instance_the_chart_renders_is_a_valid_dagster_instance(values: dict[str, Any]) -> None:
    instance = chart_instance(values)
    result = validate_config(dagster_instance_config_schema(), instance)
    assert result.success, [error.message for error in result.errors or []]
    for section in (
        "scheduler",
        "schedule_storage",
        "run_storage",
        "event_log_storage",
        "run_launcher",
        "run_coordinator",
    ):
        klass = _configurable_class(instance[section])
        checked = validate_config(klass.config_type(), instance[section].get("config", {}))
        assert checked.success, (section, [error.message for error in checked.errors or []])


def test_the_instance_bounds_dead_and_endless_runs_and_retries_once(values: dict[str, Any]) -> None:
    instance = chart_instance(values)
    assert instance["run_monitoring"] == {
        "enabled": True,
        "start_timeout_seconds": 600,
        "cancel_timeout_seconds": 300,
        "max_runtime_seconds": 14400,
        "poll_interval_seconds": 60,
        "free_slots_after_run_end_seconds": 30,
    }
    assert instance["run_retries"] == {
        "enabled": True,
        "max_retries": 1,
        "retry_on_asset_or_op_failure": False,
    }
    assert instance["run_launcher"]["class"] == "K8sRunLauncher"
    assert instance["scheduler"]["class"] == "DagsterDaemonScheduler"
    assert values["dagsterDaemon"]["enabled"] is True


def test_the_mart_pool_has_the_same_limits_as_the_repository_instance(values: dict[str, Any]) -> None:
    repository = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert chart_instance(values)["concurrency"] == repository["concurrency"]
    assert repository["concurrency"]["pools"] == {"granularity": "op", "default_limit": 1}


def test_every_run_is_its_own_valid_job_with_requests_limits_and_the_settings(values: dict[str, Any]) -> None:
    config = chart_instance(values)["run_launcher"]["config"]
    checked = validate_config(K8sRunLauncher.config_type(), config)
    assert checked.success, [error.message for error in checked.errors or []]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    # What K8sRunLauncher does for a run (launcher.py, container_context.py), from its processed config.
    launcher = SimpleNamespace(**checked.value)
    context = K8sContainerContext().merge(
        K8sContainerContext(
            image_pull_policy=launcher.image_pull_policy,
            service_account_name=launcher.service_account_name,
            env_config_maps=launcher.env_config_maps,
            env_secrets=launcher.env_secrets,
            volume_mounts=launcher.volume_mounts,
            volumes=launcher.volumes,
            namespace=launcher.job_namespace,
            resources=launcher.resources,
            security_context=launcher.security_context,
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher.run_k8s_config),
        )
    )
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=image, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-0123456789abcdef",
        pod_name="dagster-run-0123456789abcdef",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    manifest["metadata"]["namespace"] = NAMESPACE
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    assert manifest["spec"]["activeDeadlineSeconds"] == 14400
    assert manifest["spec"]["backoffLimit"] == 0
    pod = manifest["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == image
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"configMapRef": {"name": "finops-dagster-settings"}} in container["envFrom"]
    assert {"secretRef": {"name": "finops-mart"}} in container["envFrom"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {
        "/tmp",
        "/opt/dagster/dagster_home/storage",
    }


def test_the_references_are_the_names_the_finops_chart_creates(
    values: dict[str, Any], rendered: dict[str, Rendered]
) -> None:
    ours = yaml.safe_load((CHART / "values.yaml").read_text())
    settings = [
        obj["metadata"]["name"]
        for obj in rendered["defaults"].objects
        if obj["metadata"]["name"].endswith("-settings")
    ]
    secrets = [ours["secrets"][key] for key in ("mart", "mongo", "sources")]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for holder in (deployment, launcher):
        assert _names(holder["envConfigMaps"]) == settings == ["finops-dagster-settings"]
        assert _names(holder["envSecrets"]) == secrets
    assert deployment["image"]["repository"] == ours["image"]["repository"]
    chart_yaml = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert deployment["image"]["tag"] == chart_yaml["appVersion"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert deployment["codeServerArgs"] == ["--module-name", pyproject["tool"]["dagster"]["module_name"]]
    assert f'"--port", "{deployment["port"]}"' in (REPO / "deploy" / "Dockerfile").read_text()


def test_the_instance_database_comes_from_an_existing_secret(values: dict[str, Any]) -> None:
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == "finops-dagster-postgresql"
    assert values["dagster-user-deployments"]["deployments"][0]["includeConfigInLaunchedRuns"] == {
        "enabled": True
    }
