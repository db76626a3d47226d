"""``bead-spawn-loop``: the town keeps creating escalation, triage or feedback beads for one subject.

Each such bead names what it is about: a feedback or conflict bead its MR
(``parent_bead_id``), a triage request the bead or agent in its metadata,
an escalation the MR or source bead in its metadata (else its parent). A
burst of them for one subject within the time threshold is a loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from reportgen.diagnose.detectors.common import fmt_duration, plural, when
from reportgen.diagnose.inputs import DiagnosisInput, ms
from reportgen.diagnose.model import Finding
from reportgen.town import clock

KIND = "bead-spawn-loop"


def _meta(key: str) -> str:
    return f"CASE WHEN json_valid(b.metadata) THEN json_extract(b.metadata, '$.{key}') END"


_SPAWNED_SQL = f"""
SELECT b.bead_id, b.created_at, CASE
  WHEN b.labels LIKE '%"gt:triage-request"%'
    THEN coalesce({_meta("hooked_bead_id")}, {_meta("agent_bead_id")}, b.parent_bead_id)
  WHEN b.type = 'escalation'
    THEN coalesce({_meta("mr_bead_id")}, {_meta("source_bead_id")}, b.parent_bead_id)
  ELSE b.parent_bead_id END AS about
FROM beads b
WHERE b.created_at >= :start AND b.created_at <= :as_of AND (
  b.type = 'escalation' OR b.labels LIKE '%"gt:triage-request"%'
  OR (b.parent_bead_id IS NOT NULL AND (b.labels LIKE '%"gt:pr-feedback"%'
      OR b.labels LIKE '%"gt:pr-conflict"%' OR b.labels LIKE '%"gt:rework"%'
      OR b.labels LIKE '%"gt:pr-fixup"%')))
ORDER BY b.created_at, b.bead_id
"""


def detect(inp: DiagnosisInput) -> list[Finding]:
    """One finding per subject with ``spawns`` beads created within ``within``."""
    spawns = inp.config.count(KIND, "spawns")
    within = inp.config.ms(KIND, "within")
    by_subject: dict[str, list[int]] = {}
    for row in inp.rows(_SPAWNED_SQL, {"start": inp.window_from, "as_of": inp.as_of}):
        created = ms(row["created_at"])
        if row["about"] is not None and created is not None:
            by_subject.setdefault(str(row["about"]), []).append(created)
    found = []
    for about, times in sorted(by_subject.items()):
        burst = _first_burst(times, spawns, within)
        if burst is not None:
            found.append(_finding(inp, about, times, burst, within))
    return found


def _first_burst(times: Sequence[int], spawns: int, within: int) -> int | None:
    """The index of the first spawn that starts ``spawns`` spawns within ``within``."""
    for i in range(len(times) - spawns + 1):
        if times[i + spawns - 1] - times[i] <= within:
            return i
    return None


def _finding(inp: DiagnosisInput, about: str, times: list[int], burst: int, within: int) -> Finding:
    subject = inp.bead_subject(about)
    first, last = times[burst], times[-1]
    because = (
        f"{plural(len(times) - burst, 'escalation, triage or feedback bead', 'escalation, triage or feedback beads')} "
        f"were created for {subject.kind} {inp.name(subject)} since {when(clock.iso(first))}, "
        f"at least {inp.config.count(KIND, 'spawns')} of them within {fmt_duration(within)}."
    )
    return inp.finding(
        KIND,
        subject,
        first_at=clock.iso(first),
        last_at=clock.iso(last),
        open_at_end=inp.as_of_ms - last < within,
        count=len(times) - burst,
        because=because,
        witness_at=[a for a in inp.ticks_after(first) if clock.to_ms(a) <= last][:1],
    )
