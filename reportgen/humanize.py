"""Text for people: data made safe to show, and durations in words.

A leaf module (standard library only): the diagnosis writes its sentences
with it and the report renders them, so neither has to import the other.
"""

from __future__ import annotations


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
