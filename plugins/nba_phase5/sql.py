"""The SQL templates in ``include/sql``, rendered one way wherever they run.

A template names its tables as ``{{ tables.<field> }}`` (:data:`nba_phase5.config.TABLES`), so each
table name is written once, in ``config``. Only those fixed names are rendered into the text: every
value (a date, a run id, a threshold) reaches BigQuery as a query parameter. Tasks render through the
DAG's Jinja environment, which gets the same :func:`macros`; the triggerer, the CLI and the tools
render through :func:`render`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from nba_phase5 import config

if TYPE_CHECKING:
    import jinja2


def macros() -> dict[str, Any]:
    """What every SQL template may use besides ``{% include %}``: the table names."""
    return {"tables": config.TABLES}


@functools.lru_cache(maxsize=4)
def _environment(sql_dir: str) -> jinja2.Environment:
    import jinja2

    # SQL, not HTML: escaping would corrupt it, and nothing from a message or a param is rendered in.
    return jinja2.Environment(  # noqa: S701
        loader=jinja2.FileSystemLoader(sql_dir), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def render(name: str) -> str:
    """``include/sql/<name>`` rendered with :func:`macros`."""
    return _environment(str(config.include_dir() / "sql")).get_template(name).render(**macros())
