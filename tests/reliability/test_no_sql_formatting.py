"""No module builds SQL from outside input by string formatting.

Every f-string or ``.format`` call that produces SQL is listed here with what it interpolates; all of it
comes from code or schema files (table and column names), never from messages, params or users.
Anything new fails this test until it is reviewed and listed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"\b(SELECT|INSERT|DELETE|MERGE|UPDATE|FROM)\b")
ALLOWED = {
    # bq.py: table and column names from include/schemas, and `@name` placeholders.
    "client.project",
    "table_name",
    "column_list",
    "', '.join(('r.' + n for n in names))",
    # bq.insert_rows: per-column select expressions (`r.name`, or PARSE_JSON(r.name) for JSON columns).
    "', '.join((expression for _, _, expression in columns))",
    "' AND '.join(where)",
    "k",
    "column",
    # tables named through `{table}` in module constants, filled from config and the client's project.
    "table",
}


def interpolations(node: ast.AST) -> list[str]:
    if isinstance(node, ast.JoinedStr):
        return [ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
    return []


def test_sql_is_only_formatted_with_reviewed_names() -> None:
    offenders = []
    for path in sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "dags").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            text = None
            names: list[str] = []
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                names = interpolations(node)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "format"
                and isinstance(node.func.value, (ast.Constant, ast.Name))
            ):
                text = node.func.value.value if isinstance(node.func.value, ast.Constant) else node.func.value.id
                names = [kw.arg or "**" for kw in node.keywords] + [ast.unparse(a) for a in node.args]
                if isinstance(node.func.value, ast.Name) and not node.func.value.id.endswith("_SQL"):
                    continue
            if text and (SQL.search(text) or text.endswith("_SQL")):
                unknown = [n for n in names if n not in ALLOWED]
                if unknown:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {unknown}")
    assert offenders == []


def test_the_check_catches_formatting_outside_input(tmp_path: Path) -> None:
    # Shown to fail: the same scan over a module that formats a message field into SQL.
    bad = "def f(event):\n    return f\"SELECT * FROM t WHERE game_date = '{event.game_date}'\"\n"
    tree = ast.parse(bad)
    found = [interpolations(n) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)]
    assert found == [["event.game_date"]]
    assert "event.game_date" not in ALLOWED
