"""`make bundle`: what goes into Composer's bucket, and that it imports from the bundle alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bundle

# Parsed the way Composer 3's DAG processor parses it: the bundle's dags/ as the bundle path, an empty
# plugins folder, and nothing of the repo on PYTHONPATH.
PARSE_FROM_BUNDLE = textwrap.dedent(
    """
    import importlib, json, sys
    from pathlib import Path
    from airflow.dag_processing.dagbag import BundleDagBag

    dags = Path(sys.argv[1])
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags)
    dag = bag.dags["nba_phase5_predictions"]
    import nba_phase5
    from nba_phase5 import config
    # What the triggerer imports, by the path each deferring task serialized (the self-check defers on both).
    triggers = [
        importlib.import_module("nba_phase5.airflow.triggers.phase4_event").Phase4EventTrigger,
        importlib.import_module("nba_phase5.airflow.triggers.bigquery_job").BigQueryJobTrigger,
    ]
    print(json.dumps({
        "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
        "dags": sorted(bag.dags),
        "files": sorted(Path(stat.file).name for stat in bag.dagbag_stats),
        "package": nba_phase5.__file__,
        "include": str(config.include_dir()),
        "tasks": len(dag.tasks),
        "triggers": [trigger.__module__ for trigger in triggers],
        "self_check_tasks": sorted(bag.dags["nba_phase5_self_check"].task_ids),
    }))
    """
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle.build(tmp_path_factory.mktemp("bundle") / "composer")


def test_the_bundle_holds_the_dag_the_runtime_package_and_include_under_dags(built: Path) -> None:
    files = {str(p.relative_to(built)) for p in built.rglob("*") if p.is_file()}
    assert {"dags/nba_phase5_predictions.py", "dags/nba_phase5_self_check.py"} <= files
    assert "dags/nba_phase5/.airflowignore" in files
    # nothing under a name another team's DAGs may share in the bucket: only the DAG file and the package
    owned = {"nba_phase5_predictions.py", "nba_phase5_self_check.py", "nba_phase5"}
    assert {Path(f).parts[1] for f in files if f.startswith("dags/")} == owned
    assert {"dags/nba_phase5/airflow/operators/fan_out.py", "dags/nba_phase5/airflow/triggers/phase4_event.py"} <= files
    assert "dags/nba_phase5/include/sql/missing_requests.sql" in files
    assert {"dags/nba_phase5/include/sql/self_check.sql", "dags/nba_phase5/airflow/operators/self_check.py"} <= files
    assert "dags/nba_phase5/include/schemas/nba_reference.phase5_request_ledger.json" in files
    assert list((built / "plugins").iterdir()) == []  # nothing for the folder Composer 3 does not sync
    assert not any(f.startswith(f"dags/{bundle.LOCAL_PACKAGE}") for f in files)
    source = Path(bundle.ROOT, "plugins", "nba_phase5")
    shipped = {f"dags/nba_phase5/{p.relative_to(source)}" for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    assert shipped <= files
    assert not any(part in {"tools", "bench", "tests", "__pycache__"} for f in files for part in Path(f).parts)


def test_only_the_dag_file_is_parsed_as_a_dag_file(built: Path) -> None:
    # in the package's own folder (an .airflowignore covers its folder and below), ignoring everything there
    rules = [line for line in (built / "dags" / "nba_phase5" / ".airflowignore").read_text().splitlines()]
    assert [rule for rule in rules if rule and not rule.startswith("#")] == ["*"]


def test_a_module_left_out_but_imported_stops_the_build(built: Path, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    shutil.copytree(built / "dags", dags)
    (dags / "nba_phase5" / "uses_worker.py").write_text("from nba_phase5_local.worker import PredictionWorker\n")
    with pytest.raises(SystemExit, match=r"uses_worker\.py imports nba_phase5_local\.worker"):
        bundle.check_imports(dags)


def test_the_dag_and_its_trigger_import_from_the_bundle_alone(built: Path, tmp_path: Path) -> None:
    dags = built / "dags"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env |= {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(built / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [sys.executable, "-c", PARSE_FROM_BUNDLE, str(dags)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert parsed["dags"] == ["nba_phase5_predictions", "nba_phase5_self_check"]
    # the package and include/ are not parsed
    assert parsed["files"] == ["nba_phase5_predictions.py", "nba_phase5_self_check.py"]
    assert Path(parsed["package"]).is_relative_to(dags)  # not the repo's plugins/
    assert Path(parsed["include"]) == dags / "nba_phase5" / "include"
    assert parsed["triggers"] == [
        "nba_phase5.airflow.triggers.phase4_event",
        "nba_phase5.airflow.triggers.bigquery_job",
    ]
    assert parsed["self_check_tasks"] == ["bigquery_job_in_location", "phase4_event_trigger"]
