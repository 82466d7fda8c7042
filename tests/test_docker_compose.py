"""docker-compose.yaml cannot run here (no Docker engine), but it must parse and mount what exists."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_parses_and_mounts_real_paths() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    assert {"pubsub", "bigquery", "airflow", "provision"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), volume
    airflow = compose["services"]["airflow"]
    assert airflow["image"].startswith("apache/airflow:3.3.2")
    assert airflow["environment"]["PUBSUB_EMULATOR_HOST"] == "pubsub:8085"
