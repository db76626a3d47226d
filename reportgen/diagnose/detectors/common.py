"""Small wording and time helpers the detectors share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from reportgen.humanize import clean, fmt_duration
from reportgen.town import clock

#: How long a quoted title may be in a sentence.
MAX_TITLE = 60
#: How many titles a sentence lists before "and N more".
MAX_LISTED = 3

__all__ = ["fmt_duration", "listed", "plural", "quoted", "when"]


def when(ts: str) -> str:
    """``2026-03-16 09:10:05 UTC``: a time in a sentence."""
    dt = datetime.fromtimestamp(clock.to_ms(ts) / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def quoted(title: object) -> str:
    """A title in quotes, cleaned and cut to :data:`MAX_TITLE` characters."""
    text = " ".join(clean(str(title)).split())
    if len(text) > MAX_TITLE:
        text = text[: MAX_TITLE - 1] + "…"
    return f"“{text}”"


def listed(titles: Sequence[object]) -> str:
    """``“a”, “b” and “c”`` or ``“a”, “b”, “c” and 4 more``."""
    shown = [quoted(t) for t in titles[:MAX_LISTED]]
    rest = len(titles) - len(shown)
    if rest > 0:
        return ", ".join(shown) + f" and {rest} more"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 bead``, ``3 beads`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
