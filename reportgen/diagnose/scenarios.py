"""What a diagnosis of each named simulated scenario says: its verdict and the kinds it must find.

One row per scenario of :data:`reportgen.sim.scenarios.SCENARIOS`, for the
scenario's default length and seed 0 (``healthy-day``: 4 h in the test
suite, the full day over five seeds in ``benchmarks/bench_diagnose.py``).
``tests/test_diagnose_scenarios.py`` simulates every scenario and checks
its row; ``docs/diagnosis.md`` prints the table (:func:`rows`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    """A scenario's verdict, the kinds among its counted findings, and its expected ones."""

    verdict: str
    kinds: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    note: str = ""


EXPECTATIONS: dict[str, Expectation] = {
    "healthy-day": Expectation(
        "healthy", note="no warning and no critical finding, over 24 h and five seeds"
    ),
    "review-round-stuck": Expectation(
        "stuck",
        ("review-loop",),
        note="the MR still open after many feedback rounds; the rounds also spawn beads fast",
    ),
    "container-crash-loop": Expectation(
        "stuck",
        ("dispatch-loop", "attempts-exhausted"),
        note="each bead loops five times (warnings once it failed), then fails for good",
    ),
    "working-agent-no-hook": Expectation(
        "stuck",
        ("dispatch-loop", "attempts-exhausted"),
        note="the refinery is re-dispatched on every crash until the MR fails",
    ),
    "double-hook": Expectation(
        "healthy",
        note="invariant 6 holds ~15 min, then clears: a violation-storm notice at most",
    ),
    "multi-pr-rig": Expectation(
        "healthy",
        expected=("violation-storm",),
        note="invariant 3 for hours, expected: every MR in progress is a pull request",
    ),
    "in-review-without-mr": Expectation(
        "degraded",
        ("dispatch-loop",),
        note="an issue whose PRs 404 is dispatched again and again",
    ),
    "circuit-breaker-open": Expectation(
        "stuck",
        ("attempts-exhausted", "breaker-open", "dispatch-loop"),
        note="every start refused: beads fail, the breaker opens and closes",
    ),
    "convoy-landing-exhausted": Expectation(
        "stuck",
        ("attempts-exhausted",),
        note="the convoy failed after its fifth landing MR",
    ),
    "eviction-during-work": Expectation(
        "healthy", note="the drain and the re-dispatch of the interrupted beads are normal"
    ),
    "gupp-escalation": Expectation(
        "stuck",
        ("no-progress",),
        note="the hung polecat makes no SDK progress and nothing else moves",
    ),
    "attempts-exhausted": Expectation(
        "stuck",
        ("attempts-exhausted", "dispatch-loop"),
        note="the container came back but every bead slung during the outage stays failed",
    ),
    "alarm-stopped": Expectation(
        "degraded",
        ("town-silent",),
        note="30 min without a tick, then the alarm resumes; stuck when judged inside the gap",
    ),
}

#: Patterns of the incident guide no scenario reproduces, and why.
NOT_SIMULATED = {
    "triage-loop": "the engine models upstream's LATEST reconciler, where triage requests are "
    "never dispatched to polecats (Rule 1 skips `gt:triage-request` beads, `hookBead` refuses "
    "them, escalations are not issues) and the triage agent is dispatched by housekeeping, "
    "which is not modelled; so no faithful simulation produces the loop. The "
    "`bead-spawn-loop` detector is tested on hand-built towns instead.",
}


def rows() -> list[tuple[str, str, tuple[str, ...], str]]:
    """``(scenario, verdict, kinds, note)`` for the docs: kinds as Markdown, expected ones marked."""
    return [
        (
            name,
            e.verdict,
            (*(f"`{k}`" for k in e.kinds), *(f"`{k}` (expected)" for k in e.expected)),
            e.note,
        )
        for name, e in EXPECTATIONS.items()
    ]
