"""The dataset suffix (config.DATASET_SUFFIX): unset, every name is the platform's; set, every name the package
uses moves to the sandbox, the SQL templates' ``{{ tables.* }}`` and the workers' staging dataset included.

The suffix is read once, at import, so each sandboxed case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nba_phase5 import config
from nba_phase5.bigquery import sql
from nba_phase5.core import staging

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"

SANDBOXED = textwrap.dedent(
    """
    import json
    from nba_phase5.bigquery import bq, sql
    from nba_phase5 import config
    from nba_phase5_local import provisioning
    from nba_phase5.core import staging

    print(json.dumps({
        "tables": sorted(vars(config.TABLES).values()),
        "constants": [config.RUN_HISTORY_TABLE, config.EVENT_INBOX_TABLE, config.PREDICTIONS_TABLE],
        "staging": staging.STAGING_DATASET,
        "inbox_find": sql.render("inbox_find.sql"),
        "gate": sql.render("phase4_gate.sql"),
        "schema": [field["name"] for field in bq.table_schema(config.EVENT_INBOX_TABLE)],
        "specs": sorted(provisioning.table_specs()),
        "platform": config.unsandboxed(config.PREDICTIONS_TABLE),
    }))
    """
)


def _fresh(suffix: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, config.DATASET_SUFFIX_ENV: suffix, "PYTHONPATH": str(PLUGINS)}
    return subprocess.run(
        [sys.executable, "-c", SANDBOXED], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_unset_every_name_is_the_platforms() -> None:
    assert config.DATASET_SUFFIX == ""  # the test session, like every deployment, sets none
    assert config.TABLES.run_history == "nba_reference.processor_run_history"
    assert config.PREDICTIONS_TABLE == "nba_predictions.player_prop_predictions"
    assert staging.STAGING_DATASET == "nba_predictions"
    assert "FROM nba_reference.phase5_event_inbox" in sql.render("inbox_find.sql")


def test_set_every_name_the_package_uses_is_the_sandboxs() -> None:
    done = _fresh("_st_ab12")
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    datasets = {name.split(".")[0] for name in seen["tables"] + seen["constants"] + seen["specs"]}
    assert datasets == {"nba_reference_st_ab12", "nba_predictions_st_ab12", "nba_raw_st_ab12"}
    assert seen["staging"] == "nba_predictions_st_ab12"
    assert "FROM nba_reference_st_ab12.phase5_event_inbox" in seen["inbox_find"]
    assert "FROM nba_reference_st_ab12.processor_run_history" in seen["gate"]
    assert "FROM nba_predictions_st_ab12.ml_feature_store_v2" in seen["gate"]
    assert "message_id" in seen["schema"]  # a sandbox table has its platform table's schema file
    assert seen["platform"] == "nba_predictions.player_prop_predictions"


@pytest.mark.parametrize("suffix", ["_st;DROP", "_st-1", "_st ab", "x" * 65])
def test_a_suffix_that_is_not_a_plain_name_stops_the_import(suffix: str) -> None:
    done = _fresh(suffix)
    assert done.returncode != 0
    assert f"{config.DATASET_SUFFIX_ENV} must be at most 64 letters, digits or _" in done.stderr
