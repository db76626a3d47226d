"""Verdicts and findings as the site lists them: the rows of the JSON contract, and their order.

A town's diagnosis (:attr:`reportgen.town_run.TownRun.diagnosis`, made by
:class:`reportgen.diagnose.loader.DiagnosingLoader`) arrives as plain JSON;
here it becomes typed rows. Every entry of ``index.json``'s ``towns`` and
every town's ``index.json`` carry the same :class:`FindingRow` list, worst
first. A town without a diagnosis (it failed, or its loader judges nothing)
has the verdict ``unknown`` and no findings.

The index lists towns stuck → degraded → healthy → unknown, then by their
worst counted finding's severity, then by name (:func:`town_order`).
``reportgen build --fail-on`` asks :func:`fails`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reportgen.diagnose.model import Verdict
from reportgen.diagnose.registry import EXPECTED_INVARIANTS, SEVERITIES
from reportgen.report.format import clean

#: Verdicts, worst first (the index's order).
VERDICTS: tuple[str, ...] = tuple(str(v) for v in Verdict)
UNKNOWN = str(Verdict.UNKNOWN)
#: ``reportgen build --fail-on`` values.
FAIL_ON = ("stuck", "degraded", "violations")
#: A finding's status when history has nothing to say (as episodes).
NEW = "new"


def finding_href(finding_id: str) -> str:
    """The permalink of a finding: its id only, so it survives nightly rebuilds."""
    return f"findings/{finding_id}.html"


@dataclass(frozen=True)
class SubjectRef:
    """What a finding is about: ``kind`` is ``bead``, ``agent``, ``rig`` or ``town``."""

    kind: str
    id: str


@dataclass(frozen=True)
class FindingRow:
    """One finding in the site's JSON contract (``index.json`` and each town's)."""

    id: str
    kind: str
    severity: str
    expected: bool
    subject: SubjectRef
    subject_name: str
    first_at: str
    last_at: str
    open_at_end: bool
    status: str
    count: int
    because: str
    replay_command: str
    href: str

    @property
    def counted(self) -> bool:
        """Whether it counts for the verdict (expected findings never do)."""
        return not self.expected

    def record(self, town_id: str) -> dict[str, Any]:
        """The finding as ``history.jsonl`` keeps it: the row and its town."""
        return {**asdict(self), "town_id": town_id}


def finding_row(raw: Mapping[str, Any], status: str | None = None) -> FindingRow:
    """A row from a finding's JSON (the diagnosis, a summary or a history record)."""
    subject = raw.get("subject") or {}
    return FindingRow(
        id=clean(str(raw["id"])),
        kind=clean(str(raw["kind"])),
        severity=clean(str(raw["severity"])),
        expected=bool(raw.get("expected")),
        subject=SubjectRef(clean(str(subject.get("kind", ""))), clean(str(subject.get("id", "")))),
        subject_name=clean(str(raw.get("subject_name", ""))),
        first_at=clean(str(raw["first_at"])),
        last_at=clean(str(raw["last_at"])),
        open_at_end=bool(raw.get("open_at_end")),
        status=clean(status or str(raw.get("status") or NEW)),
        count=int(raw.get("count", 0)),
        because=clean(str(raw.get("because", ""))),
        replay_command=clean(str(raw.get("replay_command", ""))),
        href=finding_href(clean(str(raw["id"]))),
    )


def verdict_of(diagnosis: Mapping[str, Any] | None) -> str:
    """A diagnosis's verdict; ``unknown`` without one."""
    if not diagnosis:
        return UNKNOWN
    verdict = str(diagnosis.get("verdict", UNKNOWN))
    return verdict if verdict in VERDICTS else UNKNOWN


def severity_rank(severity: str) -> int:
    """0 for critical, 1 for warning, …; past the end for anything else."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def worst_severity(findings: Iterable[FindingRow]) -> int:
    """The rank of the worst finding that counts (``len(SEVERITIES)`` when none does)."""
    return min((severity_rank(f.severity) for f in findings if f.counted), default=len(SEVERITIES))


def worst_finding(findings: Sequence[FindingRow]) -> FindingRow | None:
    """The first counted finding (rows come worst first), else ``None``."""
    return next((f for f in findings if f.counted), None)


def verdict_rank(verdict: str) -> int:
    return VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS)


def town_order(verdict: str, findings: Sequence[FindingRow], name: str, town_id: str) -> tuple[
    int, int, str, str
]:  # fmt: skip
    """The index's order: verdict, then worst severity, then name (and id, to be total)."""
    return (verdict_rank(verdict), worst_severity(findings), name, town_id)


def expected_label(invariant: int) -> str:
    """``PR-strategy MRs``: why an invariant's episode is expected, in a few words."""
    entry = EXPECTED_INVARIANTS.get(invariant)
    return entry.label if entry is not None else ""


@dataclass(frozen=True)
class FindingView:
    """What the town page shows of a finding beside its row: the sentence and its links."""

    id: str
    sentence: str
    #: The tick permalink of the first witness tick (site-relative), and its time.
    tick_href: str
    tick_label: str
    subject_href: str
    meanwhile: str


@dataclass(frozen=True)
class TownDiagnosis:
    """The top of a town page: the verdict in words and one view per finding."""

    verdict: str
    headline: str
    fidelity: str
    caveat: str
    not_judged: tuple[str, ...]
    views: tuple[FindingView, ...]
    #: Where to get the file the findings' replay commands name (an incident file is
    #: read away from the site: its findings carry their commands).
    replay_where: str = ""


# ── The command line's view ──────────────────────────────────────────────


@dataclass(frozen=True)
class VerdictLine:
    """One built town's verdict and its worst finding, for the summaries and ``--fail-on``."""

    town_id: str
    name: str
    verdict: str
    worst: str


def verdict_line(
    town_id: str, name: str, verdict: str, findings: Sequence[FindingRow]
) -> VerdictLine:
    """A town's line: its worst finding as ``kind: subject (since …)``."""
    top = worst_finding(findings)
    worst = f"{top.kind}: {top.subject_name} (since {top.first_at})" if top is not None else ""
    return VerdictLine(town_id, name, verdict, worst)


def ordered_lines(lines: Iterable[VerdictLine]) -> list[VerdictLine]:
    """Stuck towns first, then degraded, healthy, unknown; by name within each."""
    return sorted(lines, key=lambda v: (verdict_rank(v.verdict), v.name, v.town_id))


def verdict_counts(lines: Iterable[VerdictLine]) -> str:
    """``2 stuck, 1 degraded, 2 healthy`` (only the verdicts present, worst first)."""
    found = [v.verdict for v in lines]
    return ", ".join(f"{found.count(v)} {v}" for v in VERDICTS if v in found) or "none"


def verdict_markdown(lines: Sequence[VerdictLine], md: Any) -> list[str]:
    """The step summary's verdict table: stuck towns first, each with its worst finding.

    ``md`` escapes a cell (the summary's own helper).
    """
    if not lines:
        return []
    out = ["### Verdicts", "", "| town | verdict | worst finding |", "| --- | --- | --- |"]
    out += [
        f"| `{md(v.name)}` | **{v.verdict}** | {md(v.worst) or '—'} |" for v in ordered_lines(lines)
    ]
    return [*out, ""]


def fails(fail_on: Iterable[str], lines: Iterable[VerdictLine], new_unexpected: int) -> bool:
    """Whether ``--fail-on`` fails the build: ``stuck`` (a town stuck at the window's end),
    ``degraded`` (degraded or stuck), ``violations`` (a new episode that is not expected)."""
    wanted = set(fail_on)
    verdicts = {v.verdict for v in lines}
    return bool(
        ("violations" in wanted and new_unexpected)
        or ("stuck" in wanted and "stuck" in verdicts)
        or ("degraded" in wanted and verdicts & {"stuck", "degraded"})
    )
