"""Small text helpers shared by the model, the renderer and the writer.

They exist so that every string from the data goes through one place:
cleaned of bytes that are not UTF-8, turned into a safe file name, or
formatted as a time or a duration the same way on every page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from reportgen.report.episodes import to_ms

_SAFE_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_RESERVED = {"index", "assets", "con", "nul", "prn", "aux"}


def clean(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) replaced by U+FFFD.

    A replayed database can hold bytes that are not UTF-8; Python carries them
    as lone surrogates, which cannot be written as UTF-8. Replacing them keeps
    the rest of the string readable.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return (
            text.encode("utf-8", "surrogateescape")
            .decode("utf-8", "replace")
            .encode("utf-8", "replace")
            .decode("utf-8")
        )


def clean_data(value: Any) -> Any:
    """:func:`clean` applied to every string (keys too) inside JSON-like data."""
    if isinstance(value, str):
        return clean(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # shallow, unlike dataclasses.asdict (which deep-copies every row first)
        return {f.name: clean_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {clean(str(k)): clean_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_data(v) for v in value]
    return value


def slug(value: str) -> str:
    """A file-name-safe, stable name for an id: the id itself when safe, else a hash."""
    if _SAFE_SLUG.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"h-{digest}"


def short_id(value: str, size: int = 8) -> str:
    """The first characters of an id, as a label (uuids are unreadable in full)."""
    value = clean(value)
    return value if len(value) <= size + 1 else value[:size] + "…"


def ellipsis(value: str, size: int = 120) -> str:
    """``value`` cut to ``size`` characters, marked with an ellipsis when cut."""
    value = clean(value)
    return value if len(value) <= size else value[: size - 1] + "…"


def fmt_time(ts: str) -> str:
    """``2026-03-01 10:00:05.250`` (UTC): the long form shown in tables and headers."""
    ms = to_ms(ts)
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d}"


def fmt_clock(ts: str) -> str:
    """``10:00:05`` (UTC): the short form for dense rows."""
    return datetime.fromtimestamp(to_ms(ts) / 1000, tz=UTC).strftime("%H:%M:%S")


def iso(ms: int) -> str:
    """Epoch ms as upstream's ISO form (``2026-03-01T10:00:05.250Z``)."""
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def fmt_duration(ms: int) -> str:
    """A compact, exact-enough duration: ``0 s``, ``45 s``, ``3 min 5 s``, ``2 h 10 min``, ``1 d 3 h``."""
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds} s" if ms >= 1000 or ms == 0 else f"{ms} ms"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minute = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minute} min" if minute else f"{hours} h"
    days, hour = divmod(hours, 24)
    return f"{days} d {hour} h" if hour else f"{days} d"


def dumps(value: Any) -> str:
    """Canonical JSON for files: sorted keys, UTF-8, two-space indent, trailing newline."""
    return json.dumps(clean_data(value), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def compact(value: Any) -> str:
    """Canonical one-line JSON (for showing an action object in a table)."""
    return json.dumps(clean_data(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>``, ``&``."""
    text = json.dumps(clean_data(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
