"""Upstream's timestamps and every time comparison the engine makes.

Upstream stores ISO-8601 UTC strings with milliseconds and ``Z``
(``2026-03-15T12:00:00.000Z``) and compares them lexicographically, both in
JavaScript and in SQL (``strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-N unit')``).
The engine never reads the wall clock: every function here takes ``now``
explicitly so a replay runs on recorded time.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TypeGuard

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The one form upstream writes: ``Date.prototype.toISOString`` (UTC, milliseconds, ``Z``).
CANONICAL_FORM = "YYYY-MM-DDTHH:MM:SS.mmmZ"
_CANONICAL_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
#: SQL ``GLOB`` pattern of the same shape (text of this shape sorts in time order).
CANONICAL_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"
)
#: SQL truth value "``{column}`` is not canonical", loose: a quick filter over a whole
#: table (a value that survives a round trip through ``julianday`` is canonical), whose
#: hits :func:`is_canonical` decides. Format with the quoted column name.
NOT_CANONICAL_SQL = (
    "({column} IS NULL OR typeof({column}) != 'text' "
    "OR strftime('%Y-%m-%dT%H:%M:%fZ', julianday({column})) IS NOT {column})"
)


@lru_cache(maxsize=1 << 16)
def to_ms(ts: str) -> int:
    """Parse an ISO timestamp (``Z`` or an offset, any sub-second digits) to epoch ms.

    Raises ``ValueError`` for text that is not a timestamp; callers that must
    mimic JavaScript's ``Date.parse`` returning ``NaN`` use :func:`try_ms`.
    Cached: a tick compares the same few timestamps (heartbeats, dispatch
    attempts) against its clock many times, tick after tick.
    """
    text = ts.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def try_ms(ts: object) -> float:
    """Like JavaScript ``new Date(ts).getTime()``: ``nan`` for anything unparseable."""
    if not isinstance(ts, str) or not ts:
        return math.nan
    try:
        return float(to_ms(ts))
    except ValueError:
        return math.nan


def iso(ms: int) -> str:
    """Format epoch ms the way upstream does (``Date.prototype.toISOString``)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def normalize(ts: str) -> str:
    """Re-format any accepted timestamp to upstream's canonical form."""
    return iso(to_ms(ts))


@lru_cache(maxsize=1 << 10)
def minus(now: str, ms: int) -> str:
    """The ISO cutoff ``now − ms``: what upstream's SQL ``strftime`` computes (cached: a
    tick asks for the same few cutoffs of its ``now`` again and again)."""
    return iso(to_ms(now) - ms)


def stale_ms(ts: str | None, threshold_ms: int, now: str) -> bool:
    """Upstream ``staleMs``: true when ``ts`` is falsy or ``now − ts > threshold`` (strict).

    Upstream tests ``!timestamp``, so an empty string counts as "never" (stale)
    just like null. An unparseable timestamp makes the difference ``NaN`` in
    JavaScript, and ``NaN > x`` is false, so it is *not* stale.
    """
    if not ts:
        return True
    t = try_ms(ts)
    if math.isnan(t):
        return False
    return to_ms(now) - t > threshold_ms


def sqlite_seconds(ts: str) -> str:
    """SQLite ``datetime(ts)``: whole-second ``YYYY-MM-DD HH:MM:SS`` text.

    Upstream's nudge de-duplication compares at this precision, so a nudge
    59 min 59.5 s old no longer counts as recent (spec §17).
    """
    ms = to_ms(ts)
    return (_EPOCH + timedelta(milliseconds=ms - ms % 1000)).strftime("%Y-%m-%d %H:%M:%S")


def is_nan(ts: object) -> bool:
    """True when ``ts`` would be ``NaN`` as a JavaScript date."""
    return math.isnan(try_ms(ts))


def has_canonical_shape(value: object) -> TypeGuard[str]:
    """Whether ``value`` is text of :data:`CANONICAL_FORM`'s shape (what ``GLOB``
    :data:`CANONICAL_GLOB` matches), a valid time or not."""
    return isinstance(value, str) and _CANONICAL_RE.fullmatch(value) is not None


def is_canonical(value: object) -> bool:
    """Whether ``value`` is a time exactly as upstream writes it (:data:`CANONICAL_FORM`).

    Only such text compares in time order as text, which is how upstream (and
    the engine) orders and selects events; anything else (an offset, a space
    for ``T``, no milliseconds, an impossible date) sorts somewhere else.
    """
    if not has_canonical_shape(value):
        return False
    try:
        return normalize(value) == value
    except (ValueError, OverflowError):
        return False


def canonical_problem(value: object, name: str) -> str | None:
    """Why field ``name`` holding ``value`` is not a canonical time (naming the value), or None."""
    if is_canonical(value):
        return None
    shown = "NULL" if value is None else repr(value)
    return f"{name} {shown} is not a canonical ISO-8601 UTC time ({CANONICAL_FORM})"
