"""Findings and verdicts: what a diagnosis says about one town.

A :class:`Finding` is one named problem (a kind of the catalogue in
:mod:`reportgen.diagnose.registry`) about one subject (a bead, an agent, a
rig or the town), with when it started and ended, whether it was still
going at the window's end, one plain sentence saying why, and the command
that replays it. Its id hashes (town, kind, subject, first time) with the
same helper as violation episodes, and the first time comes from the data
(a bead's ``updated_at``, a tick), never from ``--to``, so the same problem
keeps its id from one window to the next.

The town's :class:`Verdict` follows from the findings alone
(:func:`town_verdict`). Deliberately dependency-light (standard library and
the episode hashing helper) so that alerting and the report can import it.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reportgen.diagnose.episodes import stable_id
from reportgen.diagnose.registry import CRITICAL, NOTICE, SEVERITIES, WARNING
from reportgen.humanize import clean, fmt_duration
from reportgen.town import clock

#: What a finding's ``status`` is until history says otherwise (new / persisting / resolved).
NEW = "new"
#: How many witness ticks a finding keeps.
MAX_WITNESS = 5
#: How far before a finding's first time its replay command starts.
REPLAY_LEAD_MS = clock.MINUTE_MS


class Verdict(StrEnum):
    """A town's verdict, worst first."""

    STUCK = "stuck"
    DEGRADED = "degraded"
    HEALTHY = "healthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, order=True)
class Subject:
    """What a finding is about: ``kind`` is ``bead``, ``agent``, ``rig`` or ``town``."""

    kind: str
    id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


@dataclass(frozen=True)
class Finding:
    """One named problem of one town (see the module docstring).

    ``severity`` is the effective one: the catalogue's, one level lower when
    the finding was over before the window's end, ``notice`` when expected.
    ``witness`` holds the times of up to :data:`MAX_WITNESS` ticks that show
    it (none for a finding judged from the state alone); ``meanwhile`` folds
    what the reconciler kept doing meanwhile ("dispatch_agent → container
    refused start ×37 over 2 h").
    """

    id: str
    kind: str
    severity: str
    expected: bool
    subject: Subject
    subject_name: str
    first_at: str
    last_at: str
    open_at_end: bool
    count: int
    because: str
    replay_command: str
    witness: tuple[str, ...] = ()
    meanwhile: str | None = None
    status: str = NEW

    @property
    def href(self) -> str:
        """The finding's page, relative to the site root."""
        return f"findings/{self.id}.html"

    def to_json(self) -> dict[str, Any]:
        """The finding in the JSON contract (what ``--json`` prints and the site will store)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "expected": self.expected,
            "subject": self.subject.to_json(),
            "subject_name": self.subject_name,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "open_at_end": self.open_at_end,
            "status": self.status,
            "count": self.count,
            "because": self.because,
            "replay_command": self.replay_command,
            "href": self.href,
        }

    def to_record(self) -> dict[str, Any]:
        """:meth:`to_json` plus what a finding's page shows: its witness tick times and
        the folded loop of what the reconciler did meanwhile."""
        return {**self.to_json(), "witness": list(self.witness), "meanwhile": self.meanwhile}


def finding_id(town_id: str, kind: str, subject: Subject, first_at: str) -> str:
    """The stable id of a finding: a hash of (town, kind, subject, first time)."""
    return stable_id([town_id, kind, subject.kind, subject.id, first_at])


def lower(severity: str) -> str:
    """One level lower: critical → warning → notice (notice stays notice)."""
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


def effective_severity(base: str, *, open_at_end: bool, expected: bool) -> str:
    """The catalogue severity, lowered once for a finding over before the window's end."""
    if expected:
        return NOTICE
    return base if open_at_end else lower(base)


def town_verdict(findings: Iterable[Finding], *, judged: bool = True) -> Verdict:
    """``stuck``: any critical finding; ``degraded``: any warning; ``healthy``: neither.

    Expected findings never count. ``unknown`` when nothing could be judged.
    """
    counted = {f.severity for f in findings if not f.expected}
    if CRITICAL in counted:
        return Verdict.STUCK
    if WARNING in counted:
        return Verdict.DEGRADED
    return Verdict.HEALTHY if judged else Verdict.UNKNOWN


def worst_first(findings: Iterable[Finding]) -> list[Finding]:
    """Findings ordered for people: unexpected first, by severity, open first, then by time."""
    return sorted(
        findings,
        key=lambda f: (
            f.expected,
            SEVERITIES.index(f.severity),
            not f.open_at_end,
            f.first_at,
            f.kind,
            f.subject,
        ),
    )


def replay_command(source: str, start: str, end: str) -> str:
    """``reportgen replay … --ticks`` over a finding (its times already clamped to the window)."""
    return shlex.join(
        ["reportgen", "replay", "--db", clean(source), "--from", start, "--to", end, "--ticks"]
    )


def witness(times: Iterable[str]) -> tuple[str, ...]:
    """The first :data:`MAX_WITNESS` distinct tick times, in order."""
    return tuple(sorted(set(times)))[:MAX_WITNESS]


def fold(steps: Sequence[tuple[str, str]], *, limit: int = 3) -> str | None:
    """Fold ``(time, what the reconciler did)`` steps into one line.

    ``dispatch_agent → container refused start ×37, transition_bead → open ×36 over 2 h``:
    the most frequent steps first (ties in order of first appearance), the
    time from the first to the last step. ``None`` when there is nothing.
    """
    if not steps:
        return None
    counts = Counter(what for _, what in steps)
    first_seen = {what: i for i, (_, what) in reversed(list(enumerate(steps)))}
    ordered = sorted(counts, key=lambda w: (-counts[w], first_seen[w]))
    parts = [f"{what} ×{counts[what]}" for what in ordered[:limit]]
    if len(ordered) > limit:
        parts.append(f"{len(ordered) - limit} more")
    times = sorted(at for at, _ in steps)
    span = clock.to_ms(times[-1]) - clock.to_ms(times[0])
    return ", ".join(parts) + (f" over {fmt_duration(span)}" if span > 0 else "")
