"""``breaker-open``: the dispatch circuit breaker stays open, so nothing is dispatched.

From ticks: consecutive ticks whose reconcile emitted the breaker's
``notify_mayor``. From the state alone (an upstream dump): the breaker's
own count (non-closed beads with a dispatch attempt in the last 30
minutes) at the window's end, and the same count the threshold earlier
from the attempts made before then. While the breaker is open nothing is
dispatched, so no attempt time changes and the earlier count is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reportgen.diagnose.detectors.common import fmt_duration, plural, when
from reportgen.diagnose.inputs import DiagnosisInput, ms
from reportgen.diagnose.model import Finding, fold
from reportgen.town import clock
from reportgen.town.reconciler_common import (
    CIRCUIT_BREAKER_FAILURE_THRESHOLD,
    CIRCUIT_BREAKER_WINDOW_MINUTES,
)

KIND = "breaker-open"
BREAKER_MESSAGE = "Dispatch circuit breaker is OPEN"
WINDOW_MS = CIRCUIT_BREAKER_WINDOW_MINUTES * clock.MINUTE_MS

_ATTEMPTS_SQL = """
SELECT last_dispatch_attempt_at FROM beads
WHERE dispatch_attempts > 0 AND status != 'closed' AND last_dispatch_attempt_at IS NOT NULL
"""


def detect(inp: DiagnosisInput) -> list[Finding]:
    """From the ticks when there are some, else from the state."""
    if inp.ticks is not None:
        return _from_ticks(inp)
    return _from_state(inp)


def _open(tick: Mapping[str, Any]) -> bool:
    """Whether a tick's reconcile emitted the breaker's notification."""
    return any(
        a.get("type") == "notify_mayor" and str(a.get("message", "")).startswith(BREAKER_MESSAGE)
        for a in tick.get("actions") or ()
    )


def _from_ticks(inp: DiagnosisInput) -> list[Finding]:
    least = inp.config.ms(KIND, "open_for")
    ticks = list(inp.ticks or ())
    stretches: list[list[str]] = []
    current: list[str] = []
    for tick in ticks:
        if _open(tick):
            current.append(str(tick["at"]))
        elif current:
            stretches.append(current)
            current = []
    last_open = bool(current)
    if current:
        stretches.append(current)
    found = []
    for i, times in enumerate(stretches):
        span = clock.to_ms(times[-1]) - clock.to_ms(times[0])
        if span < least:
            continue
        is_open = last_open and i == len(stretches) - 1
        found.append(_finding(inp, times[0], times[-1], is_open, len(times), times))
    return found


def _from_state(inp: DiagnosisInput) -> list[Finding]:
    least = inp.config.ms(KIND, "open_for")
    times = sorted(t for t in (ms(r[0]) for r in inp.rows(_ATTEMPTS_SQL)) if t is not None)
    now, earlier = inp.as_of_ms, inp.as_of_ms - least
    if _count(times, now) < CIRCUIT_BREAKER_FAILURE_THRESHOLD:
        return []
    if _count(times, earlier) < CIRCUIT_BREAKER_FAILURE_THRESHOLD:
        return []
    recent = [t for t in times if now - WINDOW_MS < t <= now]
    opened = next(t for t in recent if _count(times, t) >= CIRCUIT_BREAKER_FAILURE_THRESHOLD)
    return [_finding(inp, clock.iso(opened), inp.as_of, True, _count(times, now), [])]


def _count(times: list[int], at: int) -> int:
    """The breaker's count at ``at``: attempts in ``(at − 30 min, at]``."""
    return sum(1 for t in times if at - WINDOW_MS < t <= at)


def _finding(
    inp: DiagnosisInput, first: str, last: str, is_open: bool, count: int, ticks: list[str]
) -> Finding:
    span = fmt_duration(clock.to_ms(last) - clock.to_ms(first))
    state = "and is still open" if is_open else f"until {when(last)}"
    because = (
        f"The dispatch circuit breaker has been open since {when(first)} ({span}) {state}: "
        f"at least {CIRCUIT_BREAKER_FAILURE_THRESHOLD} beads had a dispatch attempt in "
        f"{CIRCUIT_BREAKER_WINDOW_MINUTES} minutes, so every dispatch is paused."
    )
    meanwhile = fold([(t, "notify_mayor (breaker open)") for t in ticks])
    return inp.finding(
        KIND,
        inp.rig_subject(None),
        first_at=first,
        last_at=last,
        open_at_end=is_open,
        count=count,
        because=because,
        witness_at=ticks,
        meanwhile=meanwhile if ticks else f"{plural(count, 'recent dispatch attempt')} counted",
    )
