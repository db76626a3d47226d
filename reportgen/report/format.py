"""Small text helpers shared by the model, the renderer and the writer.

They exist so that every string from the data goes through one place:
cleaned of bytes that are not UTF-8, turned into a safe file name, or
formatted as a time or a duration the same way on every page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from reportgen import jsonio
from reportgen.diagnose.episodes import to_ms
from reportgen.humanize import clean as clean
from reportgen.humanize import fmt_duration as fmt_duration
from reportgen.town.clock import iso as iso  # the engine's ISO form, re-exported for the views

_orjson: Any
try:  # a speed-up: the same bytes either way (see _fast_json)
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency, but stay correct without it
    _orjson = None

_SAFE_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_RESERVED = {"index", "assets", "con", "nul", "prn", "aux"}


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


#: Bidirectional formatting controls: embeddings and overrides (U+202A-U+202E), isolates
#: (U+2066-U+2069) and marks (U+200E, U+200F, U+061C). Raw in a page, one in a bead title
#: reorders the text around it (a name can be made to read as something it is not).
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


def show_controls(text: str) -> str:
    """``text`` with every bidi control shown as ``⟨U+202E⟩`` instead of acting on the page.

    Applied to everything a page displays (see :mod:`render`), never to the
    JSON twins, which keep the data as it is.
    """
    if text.isascii() or not _BIDI_CONTROLS.search(text):
        return text
    return _BIDI_CONTROLS.sub(_shown, text)


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


@lru_cache(maxsize=1 << 16)
def fmt_time(ts: str) -> str:
    """``2026-03-01 10:00:05.250`` (UTC): the long form shown in tables and headers."""
    ms = to_ms(ts)
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d}"


def fmt_clock(ts: str) -> str:
    """``10:00:05`` (UTC): the short form for dense rows."""
    return datetime.fromtimestamp(to_ms(ts) / 1000, tz=UTC).strftime("%H:%M:%S")


#: Where orjson may write a float differently from ``json`` (which says ``1e-05`` below
#: 1e-4): a negative exponent or ``0.0000``. Found fast, then checked by :func:`_risky_float`.
_FLOAT_CANDIDATE = re.compile(rb"e-\d|0\.0000")
_NUMBER_BYTES = frozenset(b"0123456789.-")
_BEFORE_NUMBER = frozenset(b"\n[:,")


def _risky_float(data: bytes) -> bool:
    """Whether a candidate is a number token (not text inside a string, which is harmless)."""
    for match in _FLOAT_CANDIDATE.finditer(data):
        i = match.start()
        while i > 0 and data[i - 1] in _NUMBER_BYTES:
            i -= 1
        while i > 0 and data[i - 1] == 0x20:
            i -= 1
        if i == 0 or data[i - 1] in _BEFORE_NUMBER:
            return True
    return False


def _shallow(value: Any) -> dict[str, Any]:
    """orjson's ``default``: a dataclass as a shallow dict (so its keys get sorted too)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _fast_json(value: Any) -> str | None:
    """The same bytes as the ``json`` path below, several times faster, or None to fall back.

    orjson refuses (TypeError) exactly the inputs the slow path must rewrite:
    lone surrogates (undecodable bytes, cleaned there), non-string keys and
    integers beyond 64 bits; and it formats tiny floats differently, which
    :func:`_risky_float` catches. So the output never depends on whether
    orjson is installed.
    """
    if _orjson is None:
        return None
    option = _orjson.OPT_SORT_KEYS | _orjson.OPT_PASSTHROUGH_DATACLASS
    try:
        data: bytes = _orjson.dumps(value, default=_shallow, option=option)
    except TypeError:
        return None
    if _risky_float(data):
        return None
    return data.decode("utf-8")


def compact(value: Any) -> str:
    """Canonical one-line JSON: sorted keys, UTF-8 (JSON twins, action objects in tables)."""
    fast = _fast_json(value)
    if fast is not None:
        return fast
    return jsonio.canonical(clean_data(value), ascii=False)


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>``, ``&``.

    It is data the page displays (chart labels and tooltips), so bidi controls
    are shown as by :func:`show_controls` (they only occur inside JSON strings,
    so replacing them in the text replaces them in every string).
    """
    text = show_controls(compact(value))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
