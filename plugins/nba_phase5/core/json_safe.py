"""JSON values that every hop of a Phase 4 event can carry, made from whatever ``json.loads`` returned.

Integers beyond INT64 become their digits, NaN and ±Infinity strings, lone surrogates and NUL U+FFFD, serde's
reserved keys gain a leading ``_``, and nesting deeper than :data:`MAX_DEPTH` is cut to :data:`TOO_DEEP`;
every function is idempotent. Which hop refuses what, and why: docs/architecture.md, *Why each module is built
as it is*.
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
