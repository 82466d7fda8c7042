"""A stand-in for an Airflow-scheduled Phase 6 DAG: it runs whenever the predictions asset is updated.

Copied into the e2e Airflow's bundle (tests/e2e/conftest.py); the test asserts one run per announced batch.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from nba_phase5.airflow.tasks.handoff import predictions_asset_alias


@dag(
    dag_id="phase6_consumer",
    schedule=[predictions_asset_alias()],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md="Runs on the `nba_phase5_predictions` asset, as an Airflow-scheduled Phase 6 would.",
)
def phase6_consumer() -> None:
    @task
    def read_the_hand_off(**context) -> dict:
        """What the triggering asset events say (game date, status, batch, Pub/Sub message), and where this
        task process imported the package from (the test checks: the bundle, not the checkout)."""
        import nba_phase5
        from nba_phase5 import config

        events = [dict(event.extra) for events in context["triggering_asset_events"].values() for event in events]
        return {"events": events, "package": nba_phase5.__file__, "include": str(config.include_dir())}

    read_the_hand_off()


phase6_consumer()
