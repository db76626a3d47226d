"""``stale-in-progress``: an issue in progress with nobody on it, past Rule 3's own timeout.

Rule 3 reopens an ``in_progress`` issue whose ``updated_at`` is older than
5 minutes when no hooked agent is working, stalled or heartbeating. A bead
still in that state a grace period later means the rule did not act (the
reconciler went quiet, as in upstream #1361). Judged from the state; where
ticks exist, a tick that did act on the bead after the timeout clears it.
"""

from __future__ import annotations

from reportgen.diagnose.detectors.common import fmt_duration, quoted, when
from reportgen.diagnose.inputs import DiagnosisInput, ms
from reportgen.diagnose.model import Finding, Subject
from reportgen.town import clock
from reportgen.town.reconciler_common import HEARTBEAT_STALE_MS

KIND = "stale-in-progress"

_STALE_SQL = """
SELECT b.bead_id, b.title, b.updated_at FROM beads b
WHERE b.type = 'issue' AND b.status = 'in_progress' AND b.updated_at <= :cutoff
  AND NOT EXISTS (
    SELECT 1 FROM agent_metadata am WHERE am.current_hook_bead_id = b.bead_id
      AND (am.status IN ('working', 'stalled') OR am.last_activity_at > :fresh))
ORDER BY b.updated_at, b.bead_id
"""


def detect(inp: DiagnosisInput) -> list[Finding]:
    """One finding per issue stale for Rule 3's timeout plus the grace period."""
    timeout = inp.config.ms(KIND, "timeout")
    cutoff = clock.iso(inp.as_of_ms - timeout - inp.config.ms(KIND, "grace"))
    fresh = clock.iso(inp.as_of_ms - HEARTBEAT_STALE_MS)
    found: list[Finding] = []
    for row in inp.rows(_STALE_SQL, {"cutoff": cutoff, "fresh": fresh}):
        updated = ms(row["updated_at"])
        if updated is None:
            continue
        acted = inp.steps([str(row["bead_id"])], after=clock.iso(updated + timeout))
        if acted:
            continue
        updated_at = clock.iso(updated)
        subject = Subject("bead", str(row["bead_id"]))
        because = (
            f"Issue {quoted(row['title'])} has been in progress with no agent working on it "
            f"since {when(updated_at)} ({fmt_duration(inp.as_of_ms - updated)}), past the "
            f"reconciler's {fmt_duration(timeout)} stale timeout, and nothing acted on it."
        )
        found.append(
            inp.finding(
                KIND,
                subject,
                first_at=updated_at,
                last_at=inp.as_of,
                open_at_end=True,
                count=1,
                because=because,
                witness_at=inp.ticks_after(updated + timeout),
            )
        )
    return found
