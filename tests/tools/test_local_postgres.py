"""The local metadata DB's guards that need no server: trust lines, and a cluster folder of someone else's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import local_postgres
from localstack import StackError


@pytest.mark.parametrize(
    ("rules", "trusts"),
    [
        ("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n", False),
        ("# host all all 127.0.0.1/32 trust  (a comment)\nlocal all all scram-sha-256\n", False),
        ("local all all trust\n", True),
        ("local all all scram-sha-256\nhost all all 127.0.0.1/32 trust # older make up\n", True),
    ],
)
def test_a_cluster_that_lets_anyone_in_is_recognised(tmp_path: Path, rules: str, trusts: bool) -> None:
    (tmp_path / "pg_hba.conf").write_text(rules)
    assert local_postgres._trusts_anyone(tmp_path) is trusts


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user needs root")
def test_a_cluster_folder_someone_else_made_first_is_refused(tmp_path: Path) -> None:
    squatted = tmp_path / "nba-phase5-pg-x"
    squatted.mkdir()
    os.chown(squatted, 65534, 65534)  # nobody
    with pytest.raises(StackError, match="belongs to someone else"):
        local_postgres._init_cluster(tmp_path / "home", squatted, "pw")
