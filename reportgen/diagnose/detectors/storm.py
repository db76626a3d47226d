"""``violation-storm``: one invariant violated on every tick for a long time.

Episodes are grouped exactly as the report groups them
(:func:`reportgen.diagnose.episodes.find_episodes`). An episode whose every
violation is expected (:func:`reportgen.diagnose.registry.is_expected`) is
reported as expected and never changes the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reportgen.diagnose.detectors.common import fmt_duration, plural, quoted
from reportgen.diagnose.episodes import Episode, find_episodes, violation_key
from reportgen.diagnose.inputs import DiagnosisInput
from reportgen.diagnose.model import Finding, Subject
from reportgen.diagnose.registry import is_expected
from reportgen.town.invariants import invariant_by_number

KIND = "violation-storm"


def detect(inp: DiagnosisInput) -> list[Finding]:
    """One finding per episode lasting at least ``min_duration``."""
    least = inp.config.ms(KIND, "min_duration")
    ticks = list(inp.ticks or ())
    if not any(t.get("violations") for t in ticks):
        return []
    found = []
    for ep in find_episodes(inp.town_id, ticks):
        if ep.duration_ms >= least:
            found.append(_storm(inp, ep, _expected(inp, ep, ticks)))
    return found


def expected_episodes(inp: DiagnosisInput) -> list[str]:
    """Ids of the window's episodes (of any length) whose every violation is expected:
    the report shows them muted, and they never fail ``build --fail-on violations``."""
    ticks = list(inp.ticks or ())
    if not any(t.get("violations") for t in ticks):
        return []
    return [ep.id for ep in find_episodes(inp.town_id, ticks) if _expected(inp, ep, ticks)]


def _expected(inp: DiagnosisInput, ep: Episode, ticks: list[Mapping[str, Any]]) -> bool:
    """Whether every violation of the episode, on every tick, is an expected one."""
    key = (ep.invariant, ep.subject)
    seen: dict[tuple[str, ...], bool] = {}
    for tick in ticks:
        at = str(tick["at"])
        if at < ep.first_at or at > ep.last_at:
            continue
        for v in tick.get("violations") or ():
            if violation_key(v) != key:
                continue
            ids = tuple(sorted(str(i) for i in v.get("bead_ids") or ()))
            if ids not in seen:
                seen[ids] = is_expected(inp.conn, v)
            if not seen[ids]:
                return False
    return bool(seen)


def _subject(inp: DiagnosisInput, ep: Episode) -> Subject:
    for kind, ids in (("agent", ep.subject.agent_ids), ("bead", ep.subject.bead_ids)):
        if ids:
            return Subject(kind, ids[0])
    return inp.rig_subject(ep.subject.rig_ids[0] if ep.subject.rig_ids else None)


def _storm(inp: DiagnosisInput, ep: Episode, expected: bool) -> Finding:
    subject = _subject(inp, ep)
    title = invariant_by_number(ep.invariant).title
    why = " (expected: see docs/diagnosis.md)" if expected else ""
    message = f": {quoted(ep.messages[0])}" if ep.messages else ""
    because = (
        f"Invariant {ep.invariant} ({title}) was violated for {subject.kind} {inp.name(subject)} "
        f"on {plural(ep.ticks, 'consecutive tick')} over {fmt_duration(ep.duration_ms)}"
        f"{message}{why}."
    )
    return inp.finding(
        KIND,
        subject,
        first_at=ep.first_at,
        last_at=ep.cleared_at or ep.last_at,
        open_at_end=ep.open_at_end,
        count=ep.ticks,
        because=because,
        witness_at=[ep.first_at, ep.last_at],
        expected=expected,
    )
