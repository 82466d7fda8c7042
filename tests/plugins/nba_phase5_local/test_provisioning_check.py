"""``provision --check``'s comparison rules: a live table's columns and layout against what the DAG needs."""

from __future__ import annotations

from types import SimpleNamespace

from nba_phase5 import config
from nba_phase5_local.provisioning import table_specs
from nba_phase5_local.provisioning_check import compare_columns, compare_layout


def test_aliases_are_equal_and_extra_live_columns_are_fine() -> None:
    needed = [
        {"name": "a", "type": "INT64", "mode": "REQUIRED"},
        {"name": "b", "type": "FLOAT64"},
        {"name": "c", "type": "BOOL", "mode": "NULLABLE"},
        {"name": "d", "type": "FLOAT64", "mode": "REPEATED"},
    ]
    live = [
        {"name": "A", "type": "INTEGER", "mode": "REQUIRED"},
        {"name": "b", "type": "FLOAT", "mode": "NULLABLE"},
        {"name": "c", "type": "BOOLEAN"},
        {"name": "d", "type": "FLOAT", "mode": "REPEATED"},
        {"name": "production_only", "type": "STRING", "mode": "REQUIRED"},
    ]
    assert compare_columns("t", needed, live) == []


def test_each_mismatch_is_named() -> None:
    needed = [
        {"name": "summary", "type": "JSON", "mode": "NULLABLE"},
        {"name": "points", "type": "NUMERIC", "mode": "REQUIRED"},
        {"name": "features", "type": "FLOAT64", "mode": "REPEATED"},
        {"name": "score", "type": "FLOAT64", "mode": "NULLABLE"},
        {"name": "note", "type": "STRING", "mode": "NULLABLE"},
        {"name": "ok", "type": "STRING", "mode": "REQUIRED"},
    ]
    live = [
        {"name": "points", "type": "BIGNUMERIC", "mode": "REQUIRED"},
        {"name": "features", "type": "FLOAT", "mode": "NULLABLE"},
        {"name": "score", "type": "FLOAT", "mode": "REPEATED"},
        {"name": "note", "type": "STRING", "mode": "REQUIRED"},
        {"name": "ok", "type": "STRING", "mode": "NULLABLE"},  # the DAG never leaves it empty: fine
    ]
    assert compare_columns("ds.t", needed, live) == [
        "ds.t: column summary (JSON) is missing",
        "ds.t: column points is BIGNUMERIC, the DAG needs NUMERIC",
        "ds.t: column features is NULLABLE, the DAG needs REPEATED",
        "ds.t: column score is REPEATED, the DAG needs NULLABLE",
        "ds.t: column note is REQUIRED, the DAG needs NULLABLE (it may leave it empty)",
    ]


def test_nested_fields_are_compared_too() -> None:
    needed = [{"name": "r", "type": "RECORD", "fields": [{"name": "x", "type": "INT64"}]}]
    live = [{"name": "r", "type": "STRUCT", "fields": [{"name": "x", "type": "STRING"}]}]
    assert compare_columns("t", needed, live) == ["t: column r: column x is STRING, the DAG needs INT64"]


def test_check_names_a_table_laid_out_otherwise_than_production() -> None:
    """provision --check reports partitioning, clustering and, on real GCP, the partition-filter rule."""
    spec = table_specs()[config.FEATURE_STORE_TABLE]
    live = SimpleNamespace(
        time_partitioning=SimpleNamespace(field="game_date", expiration_ms=None),
        clustering_fields=["player_lookup"],
        require_partition_filter=False,
    )
    assert compare_layout(config.FEATURE_STORE_TABLE, spec, live, emulators=False) == [
        "nba_predictions.ml_feature_store_v2: clustered by player_lookup, "
        "production by player_lookup, feature_version, game_date",
        "nba_predictions.ml_feature_store_v2: require_partition_filter is False, production's is True",
    ]
    # The emulator does not model the partition-filter rule: only the layout is compared there.
    assert len(compare_layout(config.FEATURE_STORE_TABLE, spec, live, emulators=True)) == 1
    predictions = table_specs()[config.PREDICTIONS_TABLE]
    kept_forever = SimpleNamespace(
        time_partitioning=SimpleNamespace(field="game_date", expiration_ms=None),
        clustering_fields=predictions["clustering"],
        require_partition_filter=True,
    )
    assert compare_layout(config.PREDICTIONS_TABLE, predictions, kept_forever, emulators=False) == [
        "nba_predictions.player_prop_predictions: partitions expire after never, production's after 365"
    ]
    same = SimpleNamespace(
        time_partitioning=SimpleNamespace(field="game_date", expiration_ms=None),
        clustering_fields=spec["clustering"],
        require_partition_filter=True,
    )
    assert compare_layout(config.FEATURE_STORE_TABLE, spec, same, emulators=False) == []
    unpartitioned = SimpleNamespace(time_partitioning=None, clustering_fields=None, require_partition_filter=None)
    assert (
        "partitioned by nothing, production by game_date"
        in compare_layout(config.FEATURE_STORE_TABLE, spec, unpartitioned, emulators=True)[0]
    )
