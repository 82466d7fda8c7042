"""The SQL templates in ``include/sql``, rendered one way wherever they run.

A template names its tables as ``{{ tables.<field> }}`` (:data:`nba_phase5.config.TABLES`), so each
table name is written once, in ``config``. Only those fixed names are rendered into the text: every
value (a date, a run id, a threshold) reaches BigQuery as a query parameter. Tasks render through the
DAG's Jinja environment, which gets the same :func:`macros`; the triggerer, the CLI and the tools
render through :func:`render`.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from nba_phase5 import config

#: The identifiers a template may take besides the table names (:func:`render`'s ``names``), and the
#: switch ``with_claims`` (``missing_requests.sql``), each with an example, so the checks of every
#: template (tests, ``make bench``'s pruning count) can render it, every branch included.
NAME_EXAMPLES: dict[str, Any] = {
    "with_claims": True,
    "staging_dataset": "nba_predictions",
    "staging_tables": ["_staging_batch_2025_11_28_1764306000_worker_0a1b2c3d4e5f"],
    "columns": ["prediction_id", "system_id", "player_lookup", "game_date", "game_id", "current_points_line"],
    "update_columns": ["system_id"],
}


def macros() -> dict[str, Any]:
    """What every SQL template may use besides ``{% include %}``: the table names."""
    return {"tables": config.TABLES}


@functools.lru_cache(maxsize=4)
def _environment(sql_dir: str) -> jinja2.Environment:
    # SQL, not HTML: escaping would corrupt it, and nothing from a message or a param is rendered in.
    return jinja2.Environment(  # noqa: S701
        loader=jinja2.FileSystemLoader(sql_dir), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def render(name: str, **names: Any) -> str:
    """``include/sql/<name>`` rendered with :func:`macros`.

    ``names`` are further identifiers a template needs (the staging tables and their columns), which
    the caller must have checked against a name pattern: never a value, never message content.
    """
    return _environment(str(config.include_dir() / "sql")).get_template(name).render(**macros(), **names)
