"""The findings catalogue: every kind a diagnosis can name, its severity and its thresholds.

One :class:`Kind` per finding kind: how bad it is, whether it can be judged
from a town's state alone or needs the window's ticks (its *behaviour*),
the thresholds it uses (with units and defaults taken from the
reconciler's own timeouts where there is one), the upstream incident it
comes from, and a plain explanation. ``docs/diagnosis.md`` is generated
from this module (:func:`markdown`), so the catalogue and the docs cannot
disagree.

Thresholds are judgement, so each one can be overridden by a TOML or JSON
file (:func:`load_config`)::

    [no-progress]
    min_idle = 45        # minutes

Invariant episodes that are *expected* (upstream's checker fires although
nothing is wrong) are declared here too, next to the invariant number
(:data:`EXPECTED_INVARIANTS`).
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen.errors import BadInputError
from reportgen.town import clock
from reportgen.town.config import MAX_DISPATCH_ATTEMPTS
from reportgen.town.reconciler_common import (
    CIRCUIT_BREAKER_FAILURE_THRESHOLD,
    CIRCUIT_BREAKER_WINDOW_MINUTES,
    STALE_IN_PROGRESS_TIMEOUT_MS,
    STUCK_REVIEW_TIMEOUT_MS,
)
from reportgen.town.status import IDLE_ALARM_INTERVAL_MS

CRITICAL = "critical"
WARNING = "warning"
NOTICE = "notice"
#: Severities, worst first. A finding closed before the window's end counts one level lower.
SEVERITIES = (CRITICAL, WARNING, NOTICE)

#: Judged from the town's tables at the window's end (works on a bare upstream dump).
STATE = "state"
#: Judged from the window's ticks (recorded or replayed exactly); not judged without them.
BEHAVIOUR = "behaviour"

#: Threshold units and how many milliseconds one unit is (``count`` has none).
UNITS: dict[str, int | None] = {"min": clock.MINUTE_MS, "s": clock.SECOND_MS, "count": None}


@dataclass(frozen=True)
class Threshold:
    """One overridable setting of a kind: its key, default, unit and meaning."""

    name: str
    default: float
    unit: str
    meaning: str


@dataclass(frozen=True)
class Kind:
    """A finding kind of the catalogue."""

    name: str
    severity: str
    judged_on: str
    summary: str
    explanation: str
    incident: str
    thresholds: tuple[Threshold, ...] = ()

    def threshold(self, name: str) -> Threshold:
        for t in self.thresholds:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no threshold {name!r}")


def _minutes(ms: int) -> float:
    return ms / clock.MINUTE_MS


KINDS: tuple[Kind, ...] = (
    Kind(
        "no-progress",
        CRITICAL,
        STATE,
        "Work is pending in a rig and nothing was closed, merged or submitted for review for "
        "a long time, while nobody is working on it.",
        "Beads of a rig are open, in progress or in review, yet no bead of that rig was closed "
        "or merged and no work was submitted for review for the threshold, and no agent of the "
        "rig shows SDK activity within it. Work waiting on an open pull request is not counted "
        "(the review-loop kind watches it). The finding says when the last productive work "
        "happened. Judged at the window's end from the beads' own times, so it also works on "
        "an upstream dump without ticks; where ticks exist, the town must have kept ticking "
        "after the threshold was crossed (a town that stopped is town-silent).",
        "#1932 (a dead town: zero work for 12 h while ~700 ticks an hour ran)",
        (Threshold("min_idle", 30, "min", "time without productive work"),),
    ),
    Kind(
        "dispatch-loop",
        CRITICAL,
        BEHAVIOUR,
        "The same bead is dispatched again and again: the container refuses it or the agent "
        "dies, and the reconciler resets it and tries once more.",
        "One bead gets the threshold number of `dispatch_agent` actions or more in the window. "
        "Each dispatch that the container refused, or whose agent was lost before finishing "
        "(the bead reset for re-dispatch), is counted as failed. The loop is open at the "
        "window's end while the bead is still open or in progress.",
        "#1653 (a runaway dispatch loop on a dead container, 3,612 failures in 70 h)",
        (Threshold("dispatches", 3, "count", "dispatches of one bead in the window"),),
    ),
    Kind(
        "attempts-exhausted",
        CRITICAL,
        STATE,
        "Beads failed after using every dispatch (or landing) attempt, or sit at the attempt "
        "cap, so the reconciler will never pick them again.",
        'Per rig: beads that failed in the window with "max dispatch attempts exceeded" '
        "(or with their `dispatch_attempts` at the cap), convoys failed after their last "
        "landing-MR attempt, open beads, and idle agents hooked to live work, whose counter "
        "reached the cap. Failed work stays failed until someone slings it again, so the "
        "finding stays open. The cap is the rig's `max_dispatch_attempts` override when it "
        "sets one.",
        "#1932, #4557 (every bead failed after 5 dispatch attempts, two convoys in a row)",
        (Threshold("cap", MAX_DISPATCH_ATTEMPTS, "count", "attempt cap when the rig sets none"),),
    ),
    Kind(
        "stale-in-progress",
        CRITICAL,
        STATE,
        "An issue is in progress with nobody working on it, long past the reconciler's own "
        "stale timeout, and the reconciler did nothing about it.",
        "An issue bead is `in_progress`, its `updated_at` is older than Rule 3's stale timeout "
        "plus a grace period (one idle alarm interval, so a tick had the chance to act), and no "
        "agent hooked to it is working, stalled or heartbeating. Where ticks exist, the finding "
        "also requires that no tick since the timeout emitted an action for the bead.",
        "#1361 (two beads 1.5 h stale, the alarm firing every 5 s, zero actions)",
        (
            Threshold(
                "timeout", _minutes(STALE_IN_PROGRESS_TIMEOUT_MS), "min", "Rule 3's stale timeout"
            ),
            Threshold(
                "grace", _minutes(IDLE_ALARM_INTERVAL_MS), "min", "time a tick has to act on it"
            ),
        ),
    ),
    Kind(
        "town-silent",
        CRITICAL,
        BEHAVIOUR,
        "The town stopped ticking while work was pending: the alarm stopped firing.",
        "Two consecutive ticks are further apart than the threshold while the first of them "
        "saw active work, or the last tick is that far behind the window's end (`--to`). A "
        "healthy town ticks every 5 s with work and every 5 min without, so the default is "
        "three idle alarm intervals.",
        "#1361 (a reconciler silently idle); an alarm that stopped",
        (Threshold("silence", 3 * _minutes(IDLE_ALARM_INTERVAL_MS), "min", "time without a tick"),),
    ),
    Kind(
        "review-loop",
        CRITICAL,
        BEHAVIOUR,
        "A merge request goes round and round: feedback rounds repeat, or it keeps being "
        "polled after feedback began, without merging or closing.",
        "One merge request gets the threshold number of feedback rounds (`gt:pr-feedback`, "
        "`gt:pr-conflict` or `gt:rework` beads under it), or is still open and polled the "
        "threshold time after its first round. Critical while the MR is still open at the "
        "window's end, a warning once it merged or closed. A PR that simply waits for a human "
        "to merge it is not a loop.",
        "#1487 (duplicate MR beads and feedback on one bead), the review-round-stuck scenario",
        (
            Threshold("rounds", 3, "count", "feedback rounds of one MR"),
            Threshold(
                "polled", _minutes(STUCK_REVIEW_TIMEOUT_MS), "min", "polling after the first round"
            ),
        ),
    ),
    Kind(
        "breaker-open",
        CRITICAL,
        STATE,
        "The dispatch circuit breaker stayed open: every dispatch in the town is paused.",
        f"At least {CIRCUIT_BREAKER_FAILURE_THRESHOLD} non-closed beads had a dispatch attempt "
        f"in the last {CIRCUIT_BREAKER_WINDOW_MINUTES} minutes for at least the threshold. From "
        "ticks: consecutive ticks that emitted the breaker's `notify_mayor`; from the state "
        "alone: the breaker is open at the window's end and was already open the threshold "
        "earlier. Critical while open, a warning once it closed.",
        "#1653 (the breaker opening on a failing container)",
        (Threshold("open_for", 5, "min", "time the breaker stays open"),),
    ),
    Kind(
        "hooked-not-dispatched",
        WARNING,
        STATE,
        "An idle agent is hooked to an open bead and nobody dispatches it.",
        "An idle agent's hook points at an `open` bead, the hook is older than the threshold "
        "and the bead had no dispatch attempt since (where ticks exist: no `dispatch_agent` "
        "for it either).",
        "#1574, #1701 (an agent reset to idle and hooked, never dispatched)",
        (Threshold("hooked_for", 2, "min", "time hooked without a dispatch"),),
    ),
    Kind(
        "bead-spawn-loop",
        WARNING,
        BEHAVIOUR,
        "Escalation, triage or feedback beads are created again and again for the same subject.",
        "The threshold number of escalation, triage-request or feedback beads (or more) were "
        "created for one subject (the bead, MR or agent they are about) within the time "
        "threshold. Open while the last one is younger than the time threshold at the "
        "window's end.",
        "#1878, #4132, #1958 (a triage loop: ~25 failed triage beads an hour)",
        (
            Threshold("spawns", 3, "count", "beads created for one subject"),
            Threshold("within", 30, "min", "time the spawns fall within"),
        ),
    ),
    Kind(
        "violation-storm",
        WARNING,
        BEHAVIOUR,
        "One invariant is violated on every tick for a long time.",
        "A violation episode (one invariant, one subject, consecutive ticks) lasts at least "
        "the threshold. Episodes that are expected (see below) are reported as expected and "
        "never change the verdict; a shorter episode never changes it either.",
        "#1487 (31 K violations in 2 days, one per tick)",
        (Threshold("min_duration", 10, "min", "length of the episode"),),
    ),
)

KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
_BY_NAME = {k.name: k for k in KINDS}


def kind(name: str) -> Kind:
    """The catalogue entry called ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class DiagnosisConfig:
    """Threshold values (in each threshold's unit) by kind; defaults where not overridden."""

    overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    origin: str = "defaults"

    def value(self, kind_name: str, name: str) -> float:
        default = kind(kind_name).threshold(name).default
        return float(self.overrides.get(kind_name, {}).get(name, default))

    def ms(self, kind_name: str, name: str) -> int:
        """A time threshold in milliseconds."""
        unit = UNITS[kind(kind_name).threshold(name).unit]
        assert unit is not None, f"{kind_name}.{name} is a count"
        return round(self.value(kind_name, name) * unit)

    def count(self, kind_name: str, name: str) -> int:
        return int(self.value(kind_name, name))


DEFAULT_CONFIG = DiagnosisConfig()


def load_config(path: str | Path) -> DiagnosisConfig:
    """Threshold overrides from a TOML file (``.toml``) or JSON (anything else), validated.

    Every problem is a :class:`BadInputError` naming the file and the key.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"{p}: cannot read the diagnosis config ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{p}: not UTF-8 text ({exc.reason})") from exc
    try:
        data: Any = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        what = "TOML" if p.suffix == ".toml" else "JSON"
        raise BadInputError(f"{p}: not valid {what} ({exc})") from exc
    return config_from(data, str(p))


def config_from(data: Any, origin: str) -> DiagnosisConfig:
    """Validate an override mapping ``{kind: {threshold: value}}`` read from ``origin``."""
    if not isinstance(data, dict):
        raise BadInputError(f"{origin}: expected a table of kinds, got {type(data).__name__}")
    overrides: dict[str, dict[str, float]] = {}
    for kind_name, values in data.items():
        if kind_name not in _BY_NAME:
            raise BadInputError(
                f"{origin}: unknown finding kind {kind_name!r} (known: {', '.join(KIND_NAMES)})"
            )
        if not isinstance(values, dict):
            raise BadInputError(f"{origin}: [{kind_name}] must be a table of thresholds")
        overrides[kind_name] = {
            name: _checked(origin, kind(kind_name), name, value) for name, value in values.items()
        }
    return DiagnosisConfig(overrides, origin)


def _checked(origin: str, k: Kind, name: str, value: Any) -> float:
    known = [t.name for t in k.thresholds]
    if name not in known:
        raise BadInputError(
            f"{origin}: [{k.name}] {name}: unknown threshold (known: {', '.join(known)})"
        )
    unit = k.threshold(name).unit
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if unit == "count":
        if not (is_number and float(value).is_integer() and value >= 1):
            raise BadInputError(
                f"{origin}: [{k.name}] {name}: must be a whole number ≥ 1, got {value!r}"
            )
        return float(value)
    if not (is_number and value > 0 and value == value and value != float("inf")):
        raise BadInputError(
            f"{origin}: [{k.name}] {name}: must be a positive number of {_UNIT_WORDS[unit]}, got {value!r}"
        )
    return float(value)


_UNIT_WORDS = {"min": "minutes", "s": "seconds", "count": "occurrences"}


# --------------------------------------------------------------------------- expected episodes

#: ``rule(conn, violation) -> bool``: whether one recorded violation is expected.
ExpectedRule = Callable[[sqlite3.Connection, Mapping[str, Any]], bool]


def _several_prs(conn: sqlite3.Connection, violation: Mapping[str, Any]) -> bool:
    """Invariant 3 is expected when at most one of the rig's in-progress MRs merges directly.

    Rule 5 serialises direct merges only (``pr_url IS NULL``); upstream's
    invariant counts PR-strategy MRs too (quirk 14). A PR URL, once set, is
    never cleared, so the state at the window's end answers for every tick.
    """
    ids = [str(i) for i in violation.get("bead_ids") or ()]
    if not ids:
        return False
    marks = ", ".join("?" for _ in ids)
    row = conn.execute(
        f"""SELECT count(*) FROM beads b LEFT JOIN review_metadata rm ON rm.bead_id = b.bead_id
            WHERE b.bead_id IN ({marks}) AND rm.pr_url IS NULL""",
        ids,
    ).fetchone()
    return int(row[0]) <= 1


@dataclass(frozen=True)
class ExpectedInvariant:
    """When an invariant's violation is expected, in words and as a check."""

    number: int
    condition: str
    rule: ExpectedRule
    #: A few words for where such an episode is listed (``expected: PR-strategy MRs``).
    label: str = ""


EXPECTED_INVARIANTS: dict[int, ExpectedInvariant] = {
    3: ExpectedInvariant(
        3,
        "at most one of the rig's `in_progress` merge requests has `pr_url IS NULL` (the other "
        "MRs are pull requests waiting on GitHub, which the refinery does not serialise)",
        _several_prs,
        "PR-strategy MRs",
    ),
}


def is_expected(conn: sqlite3.Connection, violation: Mapping[str, Any]) -> bool:
    """Whether a violation record is an expected one (see :data:`EXPECTED_INVARIANTS`)."""
    entry = EXPECTED_INVARIANTS.get(int(violation.get("invariant", 0)))
    return entry is not None and entry.rule(conn, violation)


# --------------------------------------------------------------------------- docs


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _threshold_text(t: Threshold) -> str:
    value = f"{t.default:g}"
    unit = "" if t.unit == "count" else f" {t.unit}"
    return f"`{t.name}` = {value}{unit} ({t.meaning})"


def markdown(
    scenarios: Sequence[tuple[str, str, Sequence[str], str]] = (),
    not_simulated: Mapping[str, str] | None = None,
) -> str:
    """``docs/diagnosis.md``: the catalogue, the thresholds, the override file, the scenarios.

    ``scenarios`` rows are ``(name, verdict, kinds, note)``; ``not_simulated``
    names incident patterns no scenario reproduces, and why.
    """
    lines = [
        "A diagnosis gives every town a verdict and names what is wrong: `reportgen diagnose`",
        "judges one town database or bundle over a window (by default its last 24 h).",
        "",
        "Verdicts: **stuck** — any critical finding; **degraded** — any warning; **healthy** —",
        "neither; **unknown** — nothing could be judged. A finding that was over before the",
        "window's end counts one level lower (critical → warning → notice); expected findings",
        "never count.",
        "",
        "*State* kinds are judged from the town's tables at the window's end, so they work on",
        "an upstream dump with no journal and no tick records. *Behaviour* kinds need the",
        "window's ticks (recorded, or replayed exactly from a journal); on an approximate",
        "source they are listed as not judged, never as passed. The state judged is the one",
        "rebuilt at `--to` for a journaled town or bundle, else the file's tables as stored;",
        "ages are measured from `--to` when given (even past the file's newest time), else",
        "from the newest time in the file.",
        "",
        "| kind | severity | judged on | what it means |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| [`{k.name}`](#{k.name}) | {k.severity} | {k.judged_on} | {_cell(k.summary)} |"
        for k in KINDS
    ]
    lines.append("")
    for k in KINDS:
        lines += [f"## {k.name}", "", _cell(k.explanation), "", f"Seen upstream: {k.incident}.", ""]
        lines += [f"- {_threshold_text(t)}" for t in k.thresholds] + [""]
    lines += _override_section() + _expected_section()
    lines += _scenario_section(scenarios, not_simulated or {})
    return "\n".join(lines)


def _override_section() -> list[str]:
    return [
        "## Overriding thresholds",
        "",
        "`reportgen diagnose --diagnosis-config FILE` (and `reportgen build`, which judges",
        "every town it builds) reads a TOML file (`.toml`) or JSON (anything else) of",
        "`{kind: {threshold: value}}` in the units above; an unknown",
        "kind or threshold, or a value that is not a positive number (a whole number for",
        "counts), is refused naming the file and the key.",
        "",
        "```toml",
        "[no-progress]",
        "min_idle = 45",
        "",
        "[violation-storm]",
        "min_duration = 20",
        "```",
        "",
    ]


def _expected_section() -> list[str]:
    lines = [
        "## Expected invariant episodes",
        "",
        "An episode of these invariants is expected (it is reported, marked expected, and",
        "never changes the verdict) when:",
        "",
    ]
    lines += [f"- invariant {e.number}: {_cell(e.condition)}" for e in EXPECTED_INVARIANTS.values()]
    return [*lines, ""]


def _scenario_section(
    rows: Sequence[tuple[str, str, Sequence[str], str]], not_simulated: Mapping[str, str]
) -> list[str]:
    if not rows:
        return []
    lines = [
        "## The named scenarios",
        "",
        "What a diagnosis of each simulated scenario (`reportgen simulate --scenario NAME`)",
        "says, checked by `tests/test_diagnose_scenarios.py`: the verdict and the kinds that",
        "must be among the findings.",
        "",
        "| scenario | verdict | findings | note |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{name}` | {verdict} | {', '.join(kinds) or '—'} | {_cell(note)} |"
        for name, verdict, kinds, note in rows
    ]
    lines.append("")
    for name, why in not_simulated.items():
        lines += [f"Not simulated: `{name}`: {_cell(why)}", ""]
    return lines
