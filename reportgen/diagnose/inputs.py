"""What every detector reads: one town's window, its ticks (when judged on them) and its state.

A :class:`DiagnosisInput` is plain data plus a read-only SQLite connection
holding the town's state at the window's end, so every detector is a pure
function of it. The helpers here are the facts several detectors share:
names of subjects, the reconciler's steps per bead (from the ticks), the
work a rig has pending, and time parsing that tolerates the odd timestamp
of an upstream dump.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from reportgen.diagnose.model import (
    REPLAY_LEAD_MS,
    Finding,
    Subject,
    effective_severity,
    finding_id,
    replay_command,
    witness,
)
from reportgen.diagnose.registry import DEFAULT_CONFIG, DiagnosisConfig, kind
from reportgen.humanize import clean
from reportgen.town import clock


def ms(ts: object) -> int | None:
    """Epoch ms of a timestamp, ``None`` for a missing or unparseable one."""
    value = clock.try_ms(ts)
    return None if value != value else int(value)


@dataclass(frozen=True)
class Step:
    """One thing the reconciler did about a bead in one tick (an action and its outcome)."""

    at: str
    type: str
    label: str
    action: Mapping[str, Any]
    ok: bool | None = None


#: Beads that wait on the reconciler (not on a human or a pull request): rig work that is
#: open, in progress or in review, not a triage request, not held, not in a staged convoy,
#: not an MR with a pull request, not an issue whose live MR is a pull request.
PENDING_SQL = """
SELECT b.bead_id, b.rig_id, b.created_at FROM beads b
LEFT JOIN review_metadata rm ON rm.bead_id = b.bead_id
WHERE b.rig_id IS NOT NULL AND b.type IN ('issue', 'merge_request')
  AND b.status IN ('open', 'in_progress', 'in_review')
  AND b.labels NOT LIKE '%"gt:triage-request"%' AND b.labels NOT LIKE '%"gt:held"%'
  AND NOT (b.type = 'merge_request' AND rm.pr_url IS NOT NULL)
  AND NOT EXISTS (
    SELECT 1 FROM bead_dependencies d JOIN convoy_metadata cm ON cm.bead_id = d.depends_on_bead_id
    WHERE d.bead_id = b.bead_id AND d.dependency_type = 'tracks' AND cm.staged = 1)
  AND NOT (b.status = 'in_review' AND EXISTS (
    SELECT 1 FROM bead_dependencies d JOIN beads mr ON mr.bead_id = d.bead_id
    JOIN review_metadata r2 ON r2.bead_id = mr.bead_id
    WHERE d.depends_on_bead_id = b.bead_id AND d.dependency_type = 'tracks'
      AND mr.status IN ('open', 'in_progress') AND r2.pr_url IS NOT NULL))
ORDER BY b.rig_id, b.created_at, b.bead_id
"""


@dataclass(frozen=True)
class DiagnosisInput:
    """One town's window as the detectors see it.

    ``ticks`` are the window's tick records (:func:`reportgen.town.record.tick_record`
    shape), ``None`` when the source has none that can be trusted (an
    approximate source: behaviour kinds are then not judged). ``conn`` holds
    the state at the window's end, read-only. ``as_of`` is the time ages
    are measured from (``--to``, else the newest time in the file).
    """

    town_id: str
    source: str
    window_from: str
    window_to: str
    as_of: str
    fidelity: str
    conn: sqlite3.Connection
    ticks: Sequence[Mapping[str, Any]] | None = None
    config: DiagnosisConfig = field(default=DEFAULT_CONFIG)

    @property
    def as_of_ms(self) -> int:
        return clock.to_ms(self.as_of)

    def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params).fetchall())

    # ------------------------------------------------------------------ names

    def name(self, subject: Subject) -> str:
        """A subject's human name: bead title, agent name, rig name, the town id."""
        if subject.kind == "town":
            return clean(self.town_id or subject.id)
        if subject.kind == "rig":
            row = self.conn.execute("SELECT name FROM rigs WHERE id = ?", (subject.id,)).fetchone()
        else:
            row = self.conn.execute(
                "SELECT title FROM beads WHERE bead_id = ?", (subject.id,)
            ).fetchone()
        return clean(str(row[0])) if row is not None and row[0] is not None else subject.id

    def bead_subject(self, bead_id: str) -> Subject:
        """A bead id as a subject: ``agent`` when it is an agent's bead, else ``bead``."""
        row = self.conn.execute(
            "SELECT 1 FROM agent_metadata WHERE bead_id = ?", (bead_id,)
        ).fetchone()
        return Subject("agent" if row is not None else "bead", bead_id)

    def rig_subject(self, rig_id: str | None) -> Subject:
        return Subject("rig", rig_id) if rig_id else Subject("town", self.town_id)

    # ------------------------------------------------------------------ findings

    def finding(
        self,
        kind_name: str,
        subject: Subject,
        *,
        first_at: str,
        last_at: str,
        open_at_end: bool,
        count: int,
        because: str,
        witness_at: Sequence[str] = (),
        meanwhile: str | None = None,
        expected: bool = False,
    ) -> Finding:
        """A finding of this town, its id, effective severity and replay command filled in."""
        start = self._clamp(clock.to_ms(first_at) - REPLAY_LEAD_MS)
        end = max(start, self._clamp(clock.to_ms(last_at)))
        return Finding(
            id=finding_id(self.town_id, kind_name, subject, first_at),
            kind=kind_name,
            severity=effective_severity(
                kind(kind_name).severity, open_at_end=open_at_end, expected=expected
            ),
            expected=expected,
            subject=subject,
            subject_name=self.name(subject),
            first_at=first_at,
            last_at=last_at,
            open_at_end=open_at_end,
            count=count,
            because=clean(because),
            replay_command=replay_command(self.source, clock.iso(start), clock.iso(end)),
            witness=witness(witness_at),
            meanwhile=meanwhile,
        )

    def _clamp(self, t: int) -> int:
        return min(max(t, clock.to_ms(self.window_from)), clock.to_ms(self.window_to))

    # ------------------------------------------------------------------ ticks

    @cached_property
    def steps_by_bead(self) -> dict[str, list[Step]]:
        """Per bead, every action the window's ticks emitted about it, with its outcome."""
        out: dict[str, list[Step]] = {}
        for tick in self.ticks or ():
            at = str(tick["at"])
            outcomes = {
                o.get("index"): o for o in ((tick.get("side_effects") or {}).get("outcomes") or ())
            }
            for i, action in enumerate(tick.get("actions") or ()):
                bead_id = action.get("bead_id")
                if not bead_id:
                    continue
                outcome = outcomes.get(i)
                ok = None if outcome is None else bool(outcome.get("ok"))
                step = Step(at, str(action["type"]), _label(action, outcome), action, ok)
                out.setdefault(str(bead_id), []).append(step)
        return out

    def steps(self, bead_ids: Sequence[str], after: str = "") -> list[Step]:
        """The steps of several beads at or after ``after``, in time order."""
        found = [s for b in bead_ids for s in self.steps_by_bead.get(b, ()) if s.at >= after]
        return sorted(found, key=lambda s: s.at)

    def ticks_after(self, at_ms: int) -> list[str]:
        """Times of the window's ticks at or after ``at_ms``."""
        return [str(t["at"]) for t in self.ticks or () if clock.to_ms(str(t["at"])) >= at_ms]

    # ------------------------------------------------------------------ state

    @cached_property
    def pending(self) -> dict[str, list[sqlite3.Row]]:
        """Per rig, the beads that wait on the reconciler (:data:`PENDING_SQL`)."""
        out: dict[str, list[sqlite3.Row]] = {}
        for row in self.rows(PENDING_SQL):
            out.setdefault(str(row["rig_id"]), []).append(row)
        return out


def _label(action: Mapping[str, Any], outcome: Mapping[str, Any] | None) -> str:
    """``dispatch_agent → container refused start``, ``transition_bead → open``, ``poll_pr``."""
    kind_ = str(action["type"])
    if kind_ == "transition_bead":
        return f"{kind_} → {action.get('to')}"
    if kind_ == "dispatch_agent" and outcome is not None:
        return f"{kind_} → {outcome.get('detail') or ('ok' if outcome.get('ok') else 'failed')}"
    return kind_
