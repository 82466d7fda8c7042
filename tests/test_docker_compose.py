"""docker-compose.yaml cannot run here (no Docker engine): check it is the official Airflow 3 pattern,
mounts what exists where Composer puts it, and wires the same variables and ports as the local stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import local_airflow_config
import localstack

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    return loaded


def test_official_airflow_3_services_on_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", *AIRFLOW_SERVICES, "pubsub", "bigquery", "prediction-worker"} <= set(services)
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES[1:]}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    for name in (*AIRFLOW_SERVICES, "prediction-worker"):
        service = services[name]
        assert service["image"].startswith("${AIRFLOW_IMAGE_NAME:-apache/airflow:3.3.2")
        env = service["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:airflow@postgres/")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "python -m nba_phase5_local provision" in services["airflow-init"]["command"][-1]
    assert "FAN_OUT.pool_set_args()" in services["airflow-init"]["command"][-1]  # the pool, from config


def test_airflow_runs_the_composer_bundle_and_only_local_tools_see_the_whole_package(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        mounts = dict(volume.split(":")[:2] for volume in services[name]["volumes"])
        assert mounts["./build/composer/dags"] == "/opt/airflow/dags", name
        assert mounts["./build/composer/plugins"] == "/opt/airflow/plugins", name
        assert services[name]["environment"]["PYTHONPATH"] == "/opt/airflow/dags", name
        # nothing of the source tree where Airflow looks: the package only as the bundle carries it
        assert not any(t.startswith("/opt/airflow/") for s, t in mounts.items() if s in {"./dags", "./plugins"}), name
        if name != "airflow-init":
            assert not {"./dags", "./include", "./plugins"} & set(mounts), name
    # provisioning and the stand-in worker are local tools (not in the bundle): they see the whole package
    assert "PYTHONPATH=/opt/nba-local" in services["airflow-init"]["command"][-1]
    assert services["prediction-worker"]["environment"]["PYTHONPATH"] == "/opt/nba-local"
    for name in (*AIRFLOW_SERVICES, "prediction-worker"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./") and not source.startswith("./build/"):
                assert (ROOT / source).exists(), volume


def test_no_secret_in_the_file_the_init_generates_them_owner_only(compose: dict[str, Any]) -> None:
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in env
    assert "AIRFLOW__API__SECRET_KEY" not in env
    assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /opt/airflow/secrets/jwt"
    assert env["AIRFLOW__API__SECRET_KEY_CMD"] == "cat /opt/airflow/secrets/api-key"
    init = compose["services"]["airflow-init"]["command"][-1]
    assert init.index("umask 077") < init.index("token_urlsafe")
    assert "chmod 0700 /opt/airflow/secrets" in init


def test_same_variables_and_ports_as_the_local_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    local = localstack.stack_env("local-nba-props", "pubsub:8085", "http://bigquery:9050")
    path_only = {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER"}
    assert set(local) - path_only <= set(env)
    for name in ("GCP_PROJECT", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        assert env[name] == local[name], name
    connection = "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"
    assert json.loads(env[connection]) == json.loads(local[connection])
    local_airflow_env = local_airflow_config.settings(ROOT / ".local" / "airflow-server", 8080)
    for name in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"):
        assert env[name] == local_airflow_env[name], name
    ports = {p for service in services.values() for p in service.get("ports", [])}
    defaults = {8085, 9050, 9060, 8080}  # localstack.py up and local_airflow.py up
    assert ports == {f"127.0.0.1:{p}:{p}" for p in defaults}


def test_every_python_module_a_service_runs_has_a_main(compose: dict[str, Any]) -> None:
    """A module moved (``python -m nba_phase5`` became ``nba_phase5_local``) must not leave a service behind."""
    import re

    plugins = Path(__file__).resolve().parents[1] / "plugins"
    text = json.dumps(compose)
    modules = set(re.findall(r'python(?:3)?\\?"?,?\s*\\?"?-m\\?"?,?\s*\\?"?([A-Za-z_][\w.]*)', text))
    ours = {module for module in modules if module.startswith("nba_phase5")}
    assert ours, modules
    for module in ours:
        assert (plugins / module.replace(".", "/") / "__main__.py").is_file(), module
