"""``town-silent``: the alarm stopped firing while work was pending.

A healthy town ticks every 5 s with active work and every 5 min without.
A gap between two ticks longer than the threshold, when the first of them
saw active work, is a stopped alarm; so is a last tick that far behind the
window's end while work is pending.
"""

from __future__ import annotations

import itertools

from reportgen.diagnose.detectors.common import fmt_duration, plural, when
from reportgen.diagnose.inputs import DiagnosisInput
from reportgen.diagnose.model import Finding
from reportgen.town import clock
from reportgen.town.status import IDLE_ALARM_INTERVAL_MS

KIND = "town-silent"


def detect(inp: DiagnosisInput) -> list[Finding]:
    """One finding per silent gap of the window (the last one open when it reaches the end)."""
    silence = inp.config.ms(KIND, "silence")
    ticks = list(inp.ticks or ())
    found: list[Finding] = []
    for before, after in itertools.pairwise(ticks):
        if str(after["at"]) <= str(before.get("next_tick_at") or ""):
            continue  # on time or early (ISO strings compare as times): no gap to measure
        gap = clock.to_ms(str(after["at"])) - clock.to_ms(str(before["at"]))
        if gap >= silence and before.get("active_work"):
            found.append(_silent(inp, str(before["at"]), str(after["at"]), open_at_end=False))
    last = str(ticks[-1]["at"]) if ticks else inp.window_from
    active = bool(ticks[-1].get("active_work")) if ticks else False
    if inp.as_of_ms - clock.to_ms(last) >= silence and (active or inp.pending):
        found.append(_silent(inp, last, inp.as_of, open_at_end=True))
    return found


def _silent(inp: DiagnosisInput, start: str, end: str, *, open_at_end: bool) -> Finding:
    gap = clock.to_ms(end) - clock.to_ms(start)
    missed = gap // IDLE_ALARM_INTERVAL_MS
    if open_at_end:
        because = (
            f"No tick ran for {fmt_duration(gap)} since {when(start)}, up to the window's end, "
            "while work was pending: the alarm stopped firing."
        )
    else:
        because = (
            f"No tick ran for {fmt_duration(gap)}, from {when(start)} to {when(end)}, while "
            "work was pending: the alarm stopped firing, then resumed."
        )
    return inp.finding(
        KIND,
        inp.rig_subject(None),
        first_at=start,
        last_at=end,
        open_at_end=open_at_end,
        count=int(missed),
        because=because,
        witness_at=[start] if open_at_end else [start, end],
        meanwhile=f"{plural(int(missed), 'idle alarm interval')} without a tick",
    )
