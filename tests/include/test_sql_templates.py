"""SQL templates: parameters only, never formatting; every partitioned table filtered on its partition."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nba_phase5.bigquery.sql import NAME_EXAMPLES, render

INCLUDE = Path(__file__).resolve().parents[2] / "include"
SQL_FILES = sorted((INCLUDE / "sql").glob("*.sql"))


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_no_parameter_marks_in_comments(path: Path) -> None:
    # bqemulator counts `@name` in comments as parameters, and a reader would think it is one.
    for line in path.read_text().splitlines():
        comment = line.partition("--")[2]
        assert "@" not in comment, f"{path.name}: {line}"


@pytest.mark.parametrize("path", [p for p in SQL_FILES if not p.name.startswith("_")], ids=lambda p: p.name)
def test_templates_render_and_take_values_only_as_parameters(path: Path) -> None:
    sql = render(path.name, **NAME_EXAMPLES)
    expressions = re.findall(r"{{(.*?)}}", path.read_text())
    # Only config's table names, and the staging tables and their columns (names checked against a
    # pattern before they are rendered, nba_phase5.bigquery.consolidation), are rendered in; every value is a
    # query parameter.
    names = r" (tables\.[a-z_]+|staging_dataset|table|column|columns \| join\(', '\)) "
    assert all(re.fullmatch(names, e) for e in expressions), expressions
    specs = {p.stem: json.loads(p.read_text()) for p in (INCLUDE / "schemas").glob("*.json")}
    for table, spec in specs.items():
        for match in re.finditer(rf"{re.escape(table)}\b", sql):
            partition = spec["time_partitioning"]["field"]
            following = sql[match.end() : match.end() + 400]
            assert partition in following or "MERGE" in sql[: match.start()], (
                f"{path.name}: {table} read without a filter on {partition}"
            )
