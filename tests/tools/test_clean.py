"""`make clean` removes what the commands made and keeps the deploy backups (the rollback point)."""

from __future__ import annotations

from pathlib import Path

import clean


def test_clean_keeps_deploy_backups_and_removes_the_rest(tmp_path: Path) -> None:
    backup = tmp_path / ".local" / "deploy-backups" / "nba-staging-20261129T2200" / "dags"
    backup.mkdir(parents=True)
    (backup / "nba_phase5_predictions.py").write_text("# deployed\n")
    for made in (".local/bigquery-data", ".local/airflow-server/logs", ".venv/bin", "build/composer/dags"):
        (tmp_path / made).mkdir(parents=True)
    (tmp_path / ".local" / "stack.env").write_text("export GCP_PROJECT=x\n")
    (tmp_path / "README.md").write_text("kept\n")

    clean.clean(tmp_path)

    assert (backup / "nba_phase5_predictions.py").read_text() == "# deployed\n"
    assert sorted(p.name for p in (tmp_path / ".local").iterdir()) == ["deploy-backups"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".local", "README.md"]
