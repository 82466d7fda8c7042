"""Production BigQuery's rules and answers for the strict test proxy (tests/strict_bigquery.py): pure, no I/O.

**require_partition_filter.** https://cloud.google.com/bigquery/docs/querying-partitioned-tables#require_a_partition_filter_in_queries
"There must be at least one predicate that only references a partition column for the filter to be
considered eligible for partition elimination": ``WHERE d = x AND f = y`` qualifies, ``WHERE (d = x OR f = y)``
does not. The same page says a filter must be a constant expression ("If you use dynamic expressions in your
query filter, BigQuery must scan all of the partitions": ``d = (SELECT …)`` does not prune) and that "Filters
that require data from multiple fields to compute will not prune partitions" (``TIMESTAMP_ADD(ts, …) > ts2``),
so a conjunct counts only when every column it reads is the table's partition column and it has no subquery.
The requirement "also applies to queries on views", which BigQuery satisfies by pushing the outer filter
down; the same push-down is modelled here through CTEs and derived tables (not past LIMIT, window functions
or an aggregation that does not group by the column). Writing needs no filter: only reads are checked, so
``INSERT … SELECT`` checks its SELECT and never its target.

**MERGE.** https://cloud.google.com/bigquery/docs/using-dml-with-partitioned-tables#pruning_partitions_when_using_a_merge_statement
"you can limit which partitions are scanned by including the partitioning column in either a subquery
filter, a search_condition filter, or a merge_condition filter"; with filters only in the WHEN clauses the
target scanned is "the union of all the search_condition filters", and a ``WHEN NOT MATCHED BY SOURCE``
clause without one "must scan the entire target table". ``ON FALSE`` prunes through the WHEN filters. So the
target qualifies when every NOT MATCHED BY SOURCE clause filters it and either the ON condition filters it
(or is FALSE) or, with no NOT MATCHED clause, every clause that reads it does; the source mirrors that with
NOT MATCHED (BY TARGET) clauses. That "can prune" is what satisfies the requirement is an inference: the
docs never state it for MERGE.

**DML conflicts.** https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts
Only mutating DML (UPDATE, DELETE, MERGE) conflicts: an INSERT "doesn't conflict with any other concurrently
running DML statement".
"""

from __future__ import annotations

import email.message
import email.parser
import functools
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

SCHEMAS = Path(__file__).resolve().parents[1] / "include" / "schemas"
Required = Mapping[tuple[str, str], str]  # (dataset, table), lower case -> partition column
UNFILTERED_MESSAGE = (
    "Cannot query over table '{table}' without a filter over column(s) '{column}' that can be used for "
    "partition elimination"
)


STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}


def error_body(code: int, reason: str, message: str) -> bytes:
    """BigQuery's error body; a query error carries ``location: q`` as production's does."""
    proto: dict[str, str] = {"message": message, "domain": "global", "reason": reason}
    if reason == "invalidQuery":
        proto |= {"location": "q", "locationType": "parameter"}
    return json.dumps({"error": {"code": code, "message": message, "errors": [proto], "status": STATUS[code]}}).encode()


def failed_job(project: str, location: str, metadata: dict[str, Any], message: str) -> dict[str, Any]:
    """The resource of a query job production accepted and failed with ``message`` (``invalidQuery``)."""
    reference = {**(metadata.get("jobReference") or {}), "projectId": project, "location": location}
    reference.setdefault("jobId", f"job_{uuid.uuid4().hex}")
    now = str(int(time.time() * 1000))
    proto = {"reason": "invalidQuery", "location": "query", "message": message}
    return {
        "kind": "bigquery#job",
        "id": f"{project}:{location}.{reference['jobId']}",
        "jobReference": reference,
        "configuration": metadata.get("configuration") or {},
        "status": {"state": "DONE", "errorResult": proto, "errors": [proto]},
        "statistics": {"creationTime": now, "startTime": now, "endTime": now},
    }


def job_metadata(upload: bool, content_type: str, body: bytes) -> dict[str, Any]:
    """The JSON a jobs.insert or jobs.query request carries (an upload's first multipart part)."""
    if upload and content_type.startswith("multipart/"):
        head = b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
        parts = email.parser.BytesParser().parsebytes(head + body).get_payload()
        first = parts[0] if isinstance(parts, list) and parts else None
        payload = first.get_payload(decode=True) if isinstance(first, email.message.Message) else None
        body = payload if isinstance(payload, bytes) else b""
    try:
        metadata = json.loads(body or b"{}")
    except ValueError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def required_partition_filters(schema_dir: Path = SCHEMAS) -> dict[tuple[str, str], str]:
    """Every table that requires a partition filter in production, with its partition column: as
    ``provision`` creates them on real GCP, every partitioned table unless its schema file says
    ``"require_partition_filter": false`` (nba_phase5_local.provisioning.build_table)."""
    required = {}
    for path in sorted(schema_dir.glob("*.json")):
        spec = json.loads(path.read_text())
        if spec.get("time_partitioning") and spec.get("require_partition_filter", True):
            dataset, table = path.stem.lower().split(".")
            required[(dataset, table)] = spec["time_partitioning"]["field"].lower()
    return required


@dataclass(frozen=True)
class Statement:
    """What production's rules look at in a job's SQL."""

    dataset: tuple[str, str] | None  # (project or "", dataset) of the first table it names
    unfiltered: tuple[tuple[str, str], ...]  # (dataset.table, partition column) read without a usable filter
    mutated: tuple[tuple[str, str, str], ...]  # (project or "", dataset, table) its UPDATE, DELETE, MERGE change


def analyse(sql: str, required: Required) -> Statement:
    """``sql`` as the rules see it; SQL sqlglot cannot parse is left to the emulator to reject."""
    return _analysed(sql, tuple(sorted(required.items())))


@functools.lru_cache(maxsize=1024)  # the package sends the same texts again and again (values are parameters)
def _analysed(sql: str, required: tuple[tuple[tuple[str, str], str], ...]) -> Statement:
    try:
        trees = parse(sql)
    except SqlglotError:
        return Statement(None, (), ())
    named = [(t.catalog, t.db) for tree in trees for t in tree.find_all(exp.Table) if t.db]
    mutated = tuple((t.catalog, t.db, t.name) for t in _mutated(trees))
    return Statement(named[0] if named else None, tuple(_unfiltered(trees, dict(required))), mutated)


def parse(sql: str) -> list[exp.Expr]:
    """The statements of ``sql`` (a script may hold several); raises sqlglot's ParseError."""
    return [tree for tree in sqlglot.parse(sql, read="bigquery") if tree is not None]


def unfiltered_tables(sql: str, required: Required) -> list[tuple[str, str]]:
    """``(dataset.table, column)`` of each read of a required-filter table that lacks an eligible filter."""
    return _unfiltered(parse(sql), required)


def mutated_tables(sql: str) -> list[exp.Table]:
    """The target of each mutating DML statement (UPDATE, DELETE, MERGE) of ``sql``."""
    return _mutated(parse(sql))


def _unfiltered(trees: list[exp.Expr], required: Required) -> list[tuple[str, str]]:
    missing: list[tuple[str, str]] = []
    for tree in trees:
        for table in tree.find_all(exp.Table):
            key = (table.db.lower(), table.name.lower())
            if key in required and not _filtered(table, required[key]):
                missing.append((f"{table.db}.{table.name}", required[key]))
    return list(dict.fromkeys(missing))


def _mutated(trees: list[exp.Expr]) -> list[exp.Table]:
    targets = []
    for tree in trees:
        if isinstance(tree, (exp.Update, exp.Delete, exp.Merge)):
            # sqlglot reads BigQuery's ``DELETE t WHERE …`` (no FROM) as a multi-table DELETE
            targets.append(tree.this if isinstance(tree.this, exp.Table) else (tree.args.get("tables") or [None])[0])
    return [target for target in targets if isinstance(target, exp.Table)]


def _conjuncts(node: exp.Expr | None) -> Iterator[exp.Expr]:
    if isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    elif isinstance(node, exp.Where):
        yield from _conjuncts(node.this)
    elif node is not None:
        yield node


def _eligible(node: exp.Expr | None, qualifiers: set[str], names: set[str]) -> bool:
    """Whether a conjunct of ``node`` reads only the partition column (as ``names``, qualified by one of
    ``qualifiers`` or not at all) and no subquery: a constant filter that can prune."""
    for conjunct in _conjuncts(node):
        columns = list(conjunct.find_all(exp.Column))
        dynamic = any(conjunct.find_all(exp.Select, exp.Subquery, exp.Exists))
        own = all(c.name.lower() in names and (not c.table or c.table.lower() in qualifiers) for c in columns)
        if columns and own and not dynamic:
            return True
    return False


def _qualifiers(table: exp.Table) -> set[str]:
    return {(table.alias or table.name).lower()}


def _filtered(table: exp.Table, column: str) -> bool:
    written = table.parent if isinstance(table.parent, exp.Schema) else table  # INSERT INTO t (columns)
    if isinstance(written.parent, exp.Insert) and written.parent.this is written:
        return True
    parent = table.parent
    if isinstance(parent, exp.Merge):
        return _merge_reads_filtered(parent, target=parent.this is table, qualifiers=_qualifiers(table), names={column})
    if isinstance(parent, (exp.Update, exp.Delete)):
        return _eligible(parent.args.get("where"), _qualifiers(table), {column})
    statement = table.find_ancestor(exp.Select, exp.Update)
    if isinstance(statement, exp.Update):  # UPDATE … FROM t WHERE …
        return _eligible(statement.args.get("where"), _qualifiers(table), {column})
    return isinstance(statement, exp.Select) and _select_filters(statement, table, {column})


def _select_filters(select: exp.Select, table: exp.Expr, names: set[str]) -> bool:
    """Whether ``select`` filters ``table`` (a table or derived table in its FROM) on ``names``, in its
    WHERE, its ON conditions or, pushed down, in whatever reads ``select``."""
    qualifiers = {(table.alias_or_name or "").lower()}
    joins = select.args.get("joins") or []
    ons = [j.args.get("on") for j in joins if j.this is table or not j.side]
    if any(_eligible(node, qualifiers, names) for node in [select.args.get("where"), *ons]):
        return True
    return _consumers_filter(select, _exposed(select, names))


def _exposed(select: exp.Select, names: set[str]) -> set[str]:
    """The output names under which ``select`` passes the column on, for a filter to be pushed down through
    it; none past a LIMIT, a window function, or an aggregation that does not group by the column."""
    own = [*select.expressions, select.args.get("qualify")]
    if select.args.get("limit") or any(node and node.find(exp.Window) for node in own):
        return set()
    group = select.args.get("group")
    grouped = {c.name.lower() for c in group.find_all(exp.Column)} if group else set()
    if (group or any(node and node.find(exp.AggFunc) for node in own)) and not names & grouped:
        return set()
    exposed: set[str] = set()
    for projection in select.expressions:
        if isinstance(projection, exp.Star):
            excluded = {c.name.lower() for c in projection.args.get("except_") or []}
            exposed |= names - excluded
        elif isinstance(projection, exp.Column) and projection.name.lower() in names:
            exposed.add(projection.name.lower())
        elif isinstance(projection, exp.Alias) and isinstance(projection.this, exp.Column):
            exposed |= {projection.alias.lower()} if projection.this.name.lower() in names else set()
    return exposed


def _consumers_filter(select: exp.Expr, names: set[str]) -> bool:
    """Whether every reader of ``select`` (a derived table, a CTE or a MERGE source) filters ``names``."""
    node = select
    while isinstance(node.parent, (exp.Union, exp.Intersect, exp.Except)):
        node = node.parent  # a filter on a set operation is pushed into each of its branches
    holder = node.parent
    if not names or holder is None:
        return False
    if isinstance(holder, exp.Subquery):
        outer, alias = holder.parent, holder.alias.lower()
        if isinstance(outer, exp.Merge) and outer.args.get("using") is holder:
            return _merge_reads_filtered(outer, False, {alias}, names)
        reader = holder.find_ancestor(exp.Select)
        in_from = isinstance(outer, (exp.From, exp.Join))
        return in_from and reader is not None and _select_filters(reader, holder, names)
    if isinstance(holder, exp.CTE):
        name = holder.alias.lower()
        readers = [t for t in holder.root().find_all(exp.Table) if not t.db and t.name.lower() == name]
        return all(_table_read_filtered(reader, names) for reader in readers)
    return False


def _table_read_filtered(reference: exp.Table, names: set[str]) -> bool:
    """Whether a read of a CTE by name filters ``names`` (its select's WHERE or ON, or a MERGE's clauses)."""
    parent = reference.parent
    if isinstance(parent, exp.Merge):
        return _merge_reads_filtered(parent, parent.this is reference, _qualifiers(reference), names)
    select = reference.find_ancestor(exp.Select)
    return select is not None and _select_filters(select, reference, names)


def _merge_reads_filtered(merge: exp.Merge, target: bool, qualifiers: set[str], names: set[str]) -> bool:
    """Whether MERGE reads its target (``target``) or its source only through filters on ``names``."""
    whens = merge.args["whens"].expressions
    matched = [w for w in whens if w.args.get("matched")]
    by_source = [w for w in whens if not w.args.get("matched") and w.args.get("source")]
    by_target = [w for w in whens if not w.args.get("matched") and not w.args.get("source")]
    own, other = (by_source, by_target) if target else (by_target, by_source)
    if not all(_eligible(w.args.get("condition"), qualifiers, names) for w in own):
        return False  # its unmatched rows are every row the ON condition leaves out
    on = merge.args.get("on")
    if (isinstance(on, exp.Boolean) and not on.this) or _eligible(on, qualifiers, names):
        return True
    readers = matched + own
    return bool(readers) and not other and all(_eligible(w.args.get("condition"), qualifiers, names) for w in readers)
