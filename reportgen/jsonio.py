"""Reading JSON columns fast (orjson when it can, the standard library when it cannot),
and writing canonical JSON text.

A 24 h town holds about 15,000 tick records; parsing them with ``json`` was a
third of a recorded build. orjson returns the same Python values for every
document it accepts except one kind: an integer beyond 64 bits, which it reads
as a float where ``json`` keeps the exact ``int``. A document with a run of 19
or more digits (even inside a string) therefore goes to ``json``, as do the
ones orjson refuses (``NaN``, ``Infinity``, lone surrogates), so the result
never depends on which parser ran.
"""

from __future__ import annotations

import json
from typing import Any

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency, but stay correct without it
    _orjson = None

#: 19 digits can exceed a signed 64-bit integer (9,223,372,036,854,775,807). Mapping
#: every ASCII digit to ``0`` and looking for nineteen of them in a row is several
#: times faster than a regular expression (JSON numbers are ASCII).
_LONG_RUN = b"0" * 19
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))


def _has_long_number(text: str) -> bool:
    return _LONG_RUN in text.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO)


def loads(text: str) -> Any:
    """``json.loads(text)``, several times faster for the documents orjson reads alike."""
    if _orjson is not None and not _has_long_number(text):
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def canonical(value: Any, *, ascii: bool = True, compact: bool = True) -> str:
    """``value`` as canonical JSON text: sorted keys, so equal values give equal text.

    Ids, digests and stored rows are made from this text, so each caller keeps the
    exact bytes it has always written: ``ascii=False`` writes non-ASCII characters
    as themselves rather than ``\\u`` escapes, and ``compact=False`` keeps the
    standard library's ``", "`` and ``": "`` separators.
    """
    separators = (",", ":") if compact else None
    return json.dumps(value, sort_keys=True, ensure_ascii=ascii, separators=separators)


def same_text(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` serialise to the same JSON text: then they are the same
    values. ``False`` says nothing (key order, ``1`` against ``1.0``, or no orjson, or a
    value orjson cannot write): the caller compares the values itself."""
    if _orjson is None:
        return False
    try:
        return bool(_orjson.dumps(a) == _orjson.dumps(b))
    except TypeError:  # what orjson cannot write (integers beyond 64 bits)
        return False
