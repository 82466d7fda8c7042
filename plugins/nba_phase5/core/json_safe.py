"""JSON values that every hop of a Phase 4 event can carry, made from whatever ``json.loads`` returned.

Phase 4 writes its message with Python's ``json.dumps`` (docs/platform.md §1.1), which also writes NaN,
Infinity, integers of any size and lone surrogates (as ``\\ud800``); ``json.loads`` reads them all back.
An accepted event then travels far: the inbox row (a STRING, parsed again), the trigger event (msgpack
frames from the triggerer's runner to its supervisor, then the task instance's ``next_kwargs``, JSONB on
PostgreSQL), XCom (JSONB too), and the run history's ``trigger_message_data`` (``PARSE_JSON`` into a JSON
column). One value that a hop cannot encode would kill the triggerer's runner on every restart (the inbox
hands it the same row again). So the unknown fields and the metadata that the contract keeps are made safe here:

* an integer outside INT64 becomes its decimal string: msgpack stops at 64 bits and ``PARSE_JSON`` in its
  default ``exact`` mode refuses what INT64/UINT64/FLOAT64 cannot hold;
* NaN and ±Infinity (``json.loads`` reads ``NaN``, ``Infinity`` and ``1e400``) become the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"``: strict JSON, ``PARSE_JSON`` and PostgreSQL's JSONB (XCom,
  ``next_kwargs``) refuse them, and a string keeps what was sent;
* a lone surrogate (``"\\ud800"`` is valid JSON) and NUL become U+FFFD: UTF-8 (msgpack, BigQuery) cannot
  encode the one, JSONB refuses both; a valid surrogate pair becomes its one character;
* a key Airflow's serde reserves for its own objects (``__classname__``, ``__type`` …) gains a leading
  ``_``: serde refuses such dicts, or reads them back as something else;
* containers nested deeper than :data:`MAX_DEPTH` are cut to :data:`TOO_DEEP`, so nothing here recurses
  far (``json.loads`` nests up to the interpreter's recursion limit).

Every function is idempotent, so an event stored and parsed again is equal to itself.
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
REPLACEMENT = "\ufffd"
# Deeper than this no value fits the contract's 200-character bound on a kept value anyway.
MAX_DEPTH = 100
TOO_DEEP = "(nested too deep)"
# airflow.sdk._shared.serialization: CLASSNAME, VERSION, DATA, SCHEMA_ID, and the old OLD_TYPE/OLD_SOURCE/OLD_DATA.
SERDE_RESERVED_KEYS = frozenset({"__classname__", "__version__", "__data__", "__id__", "__type", "__source", "__var"})
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def has_surrogate(value: str) -> bool:
    """True when ``value`` holds a surrogate code point, which no UTF-8 encoder writes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text(value: str) -> str:
    """``value`` with surrogate pairs joined, lone surrogates and NUL replaced by U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 round trip: a pair of code points becomes its one character, a lone one U+FFFD.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", REPLACEMENT)


def key(value: object) -> str:
    """A dict key every hop accepts: text, and never one of serde's reserved keys."""
    cleaned = text(str(value))
    return "_" + cleaned if cleaned in SERDE_RESERVED_KEYS else cleaned


def value(item: object, depth: int = 0) -> Any:
    """``item`` as a JSON value every hop accepts (see the module's docstring for each case)."""
    if item is None or isinstance(item, bool):
        return item
    if isinstance(item, int):
        return int(item) if INT64_MIN <= item <= INT64_MAX else str(int(item))
    if isinstance(item, float):
        return float(item) if math.isfinite(item) else _NON_FINITE[repr(float(item))]
    if isinstance(item, str):
        return text(item)
    if isinstance(item, (list, tuple, dict)):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(item, dict):
            return {key(k): value(v, depth + 1) for k, v in item.items()}
        return [value(v, depth + 1) for v in item]
    # Not from JSON (a caller built the event in code): kept as its text.
    return text(str(item))
