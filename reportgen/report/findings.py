"""A town's diagnosis on its pages: the verdict banner, findings first, one page per finding.

Computed once per town in the worker (:func:`town_findings`) from the
diagnosis its loader attached (:attr:`reportgen.town_run.TownRun.diagnosis`)
and the finding statuses history gives (new / persisting), then:

* :func:`with_findings` puts the verdict and the findings, worst first, at
  the top of the town page, each with a sentence saying what is stuck and
  since when and a link to the tick permalink of its first witness tick
  (where the looping actions are);
* :func:`finding_pages` makes ``findings/<id>.html`` (and its JSON twin):
  kind, severity, the subject linked to its entity section, since when, the
  *because* sentence, what the reconciler did meanwhile, the subject's lane,
  every item from the finding's first to its last time (folded), the witness
  ticks as tick permalinks and the replay command;
* :func:`expected_reasons` names the violation episodes the diagnosis marks
  expected (invariant 3 on pull-request MRs), muted so they never drive a red banner;
* :func:`summarize` gives the index its verdict, findings and headline.

Run-level: :func:`finding_stubs` keeps a page at the permalink of a finding
that resolved, or whose town was not rebuilt this run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from typing import Any

from reportgen.diagnose.episodes import Episode
from reportgen.diagnose.registry import KIND_NAMES, kind
from reportgen.report.entity_fields import ids_in
from reportgen.report.format import clean, fmt_duration, fmt_time
from reportgen.report.lanes import Fold, Lane, span_folds
from reportgen.report.ordering import findings_order
from reportgen.report.town_data import TownData
from reportgen.report.verdicts import (
    UNKNOWN,
    FindingRow,
    FindingView,
    TownDiagnosis,
    expected_label,
    finding_href,
    finding_row,
    verdict_of,
    worst_finding,
)
from reportgen.report.views_detail import entity_lanes
from reportgen.report.views_index import TownSummary
from reportgen.report.views_shared import town_href, town_name
from reportgen.report.views_town import TownPage
from reportgen.town import clock
from reportgen.town_run import TownRun

#: How many of a witness tick's actions about the subject its link lists.
MAX_WITNESS_ACTIONS = 6
#: A verdict in words, for the banner.
VERDICT_WORDS = {
    "stuck": "Stuck",
    "degraded": "Degraded",
    "healthy": "Healthy",
    "unknown": "Not judged",
}


def _time(ts: str) -> str:
    """A time as the pages show it, or the text as stored when it is not a time."""
    try:
        return fmt_time(ts)
    except ValueError:
        return clean(ts)


def _span(first: str, last: str) -> str:
    """``2 h 5 min`` between two times ("" when either is not a time)."""
    a, b = clock.try_ms(first), clock.try_ms(last)
    if a != a or b != b:
        return ""
    return fmt_duration(max(0, int(b - a)))


# ── One town ─────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class TownFindings:
    """One town's diagnosis as its pages use it (computed once per town)."""

    verdict: str
    rows: tuple[FindingRow, ...]
    #: Whether the town came with a diagnosis at all (its loader judges towns).
    judged: bool
    #: The time the town was judged as of (the window's end).
    as_of: str
    #: A finding's witness tick times and its folded loop, by finding id.
    witness: Mapping[str, tuple[str, ...]]
    meanwhile: Mapping[str, str]
    fidelity: str
    caveat: str
    not_judged: tuple[str, ...]

    def records(self, town_id: str) -> dict[str, dict[str, Any]]:
        """The town's findings as ``history.jsonl`` keeps them, by id."""
        return {r.id: r.record(town_id) for r in self.rows}


def town_findings(run: TownRun, status: Any) -> TownFindings:
    """The town's findings with their history status (``status(id) -> str``)."""
    d = run.diagnosis or {}
    raw = list(d.get("findings") or ())
    return TownFindings(
        verdict=verdict_of(run.diagnosis),
        rows=tuple(findings_order(finding_row(f, status(str(f["id"]))) for f in raw)),
        judged=run.diagnosis is not None,
        as_of=str(d.get("as_of") or run.window_to),
        witness={str(f["id"]): tuple(str(t) for t in f.get("witness") or ()) for f in raw},
        meanwhile={str(f["id"]): clean(str(f["meanwhile"])) for f in raw if f.get("meanwhile")},
        fidelity=clean(str(d.get("fidelity", ""))),
        caveat=clean(str(d.get("caveat", ""))),
        not_judged=tuple(clean(str(k)) for k in d.get("not_judged") or ()),
    )


def expected_episodes(run: TownRun, episodes: Sequence[Episode]) -> list[Episode]:
    """The episodes the diagnosis marks expected. Ask before ``History.adopt``, which may
    give an episode continuing from the previous window that window's id."""
    ids = set((run.diagnosis or {}).get("expected_episodes") or ())
    return [ep for ep in episodes if ep.id in ids]


def expected_reasons(expected: Sequence[Episode]) -> dict[str, str]:
    """Why each expected episode is expected, by its id (ask after ``History.adopt``, so the
    ids are those the pages show): :func:`~reportgen.report.town_data.compute_town` mutes
    their rows."""
    return {ep.id: expected_label(ep.invariant) for ep in expected}


def sentence(row: FindingRow, as_of: str) -> str:
    """What is wrong, with what, and since when (until ``as_of``, the window's end)."""
    what = f"{row.kind.replace('-', ' ')} on {_subject_words(row)}"
    if row.open_at_end:
        lead = "Expected" if row.expected else _LEADS.get(row.severity, "Notice")
        span = _span(row.first_at, as_of)
        for_how_long = f" ({span} by the window's end)" if span else ""
        return f"{lead}: {what} since {_time(row.first_at)}{for_how_long}."
    return f"Was: {what} from {_time(row.first_at)} to {_time(row.last_at)}, over before the window's end."


_LEADS = {"critical": "Stuck", "warning": "Degraded", "notice": "Notice"}


def _subject_words(row: FindingRow) -> str:
    if row.subject.kind == "town":
        return "the town"
    return f"{row.subject.kind} “{row.subject_name}”"


def _view(data: TownData, tf: TownFindings, row: FindingRow) -> FindingView:
    """A finding on the town page: the link goes to its first witness tick, where the loop
    shows (a finding of the state alone: the first tick at or after it began)."""
    first = (tf.witness.get(row.id) or (row.first_at,))[0]
    return FindingView(
        id=row.id,
        sentence=sentence(row, tf.as_of),
        tick_href=_tick_href(data, first),
        tick_label=_time(first),
        subject_href=subject_href(data, row),
        meanwhile=tf.meanwhile.get(row.id, ""),
    )


def _tick_href(data: TownData, at: str) -> str:
    """The permalink of the tick at (or next after) ``at``; "" without ticks or a time."""
    ms = clock.try_ms(at)
    return data.tick_href(at) if data.run.ticks and ms == ms else ""


def subject_href(data: TownData, row: FindingRow) -> str:
    """The subject's page: the town page, or its entity page when the town has one."""
    subject = row.subject
    if subject.kind == "town":
        return town_href(data.run.town_id)
    # "" when nothing in the window touched it: it has no section
    return data.entities.link(subject.kind, subject.id).href


def headline(tf: TownFindings) -> str:
    """The banner's sentence: the verdict, and the worst finding that counts."""
    top = worst_finding(tf.rows)
    if tf.verdict == "healthy":
        return "Healthy: no warning and no critical finding in this window."
    if tf.verdict == UNKNOWN:
        return "Not judged: this town has no diagnosis."
    if top is None:
        return f"{VERDICT_WORDS.get(tf.verdict, tf.verdict)}."
    return sentence(top, tf.as_of)


def town_diagnosis(data: TownData, tf: TownFindings) -> TownDiagnosis:
    """What the top of the town page shows: the verdict banner and one view per finding."""
    return TownDiagnosis(
        verdict=tf.verdict,
        headline=headline(tf),
        fidelity=tf.fidelity,
        caveat=tf.caveat,
        not_judged=tf.not_judged,
        views=tuple(_view(data, tf, r) for r in tf.rows),
        replay_where=clean(data.run.replay_where),
    )


def with_findings(page: TownPage, data: TownData, tf: TownFindings) -> TownPage:
    """The town page with its verdict, its findings and how the page shows them."""
    shown = town_diagnosis(data, tf) if tf.judged else None
    return replace(page, verdict=tf.verdict, findings=list(tf.rows), diagnosis=shown)


def summarize(summary: TownSummary, run: TownRun, tf: TownFindings, data: TownData) -> TownSummary:
    """The index line with the town's name, source, verdict, findings and headline.

    A town whose every violation episode is expected is not listed as "violations".
    """
    rows = list(data.rows.values())
    state = summary.state
    if rows and all(r.expected for r in rows):
        state = "expected"
    return replace(
        summary,
        name=town_name(run.source, run.town_id, run.town_name),
        source=clean(run.source),
        verdict=tf.verdict,
        findings=list(tf.rows),
        headline=headline(tf) if tf.verdict != UNKNOWN else "",
        state=state,
    )


def summary_from(raw: Mapping[str, Any]) -> TownSummary:
    """An index line from its JSON (a town's result, possibly from the cache)."""
    return TownSummary(**{**raw, "findings": [finding_row(f) for f in raw.get("findings") or ()]})


# ── Finding pages ────────────────────────────────────────────────────────


@dataclass(frozen=True)
class WitnessTick:
    """A tick that shows a finding: its permalink and what the reconciler did about the subject."""

    at: str
    label: str
    href: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class FindingPage:
    """``findings/<id>.html``: one finding, the incident permalink of a diagnosis."""

    kind: str
    title: str
    root: str
    finding: FindingRow
    town_id: str
    town_name: str
    town_href: str
    verdict: str
    summary: str
    sentence: str
    since: str
    until: str
    subject_href: str
    meanwhile: str
    witness: tuple[WitnessTick, ...]
    fidelity: str
    caveat: str
    docs_anchor: str
    #: Where to get the file the finding's replay command names.
    replay_where: str
    #: The subject's lane (none for the town, or a subject nothing in the window touched).
    lanes: tuple[Lane, ...] = ()
    #: Every item between the finding's first and last time, folded by type and subject.
    activity: tuple[Fold, ...] = ()
    activity_more: str = ""


def _actions_about(tick: Mapping[str, Any], subject_id: str) -> tuple[str, ...]:
    """The types of a tick's actions that name the subject (``transition_bead → open``)."""
    found = []
    for action in tick.get("actions") or ():
        if any(i == subject_id for _, i in ids_in(action)):
            label = clean(str(action.get("type")))
            if action.get("to") is not None:
                label += f" → {clean(str(action['to']))}"
            found.append(label)
    return tuple(found[:MAX_WITNESS_ACTIONS])


def witness_ticks(data: TownData, tf: TownFindings, row: FindingRow) -> tuple[WitnessTick, ...]:
    """The finding's witness ticks as tick permalinks (none for a finding of the state alone)."""
    out = []
    for at in tf.witness.get(row.id, ()):
        i = data.tick_index.get(at)
        tick = data.run.ticks[i] if i is not None else {}
        actions = _actions_about(tick, row.subject.id)
        out.append(WitnessTick(at, _time(at), _tick_href(data, at), actions))
    return tuple(out)


def finding_pages(data: TownData, tf: TownFindings) -> Iterator[FindingPage]:
    """One page per finding of the town, worst first."""
    town = clean(data.run.town_id)
    for row in tf.rows:
        known = row.kind in KIND_NAMES
        subject = (
            []
            if row.subject.kind == "town"
            else [data.entities.link(row.subject.kind, row.subject.id)]
        )
        about = [(link.kind, link.id) for link in subject]
        activity, more = span_folds(data, row.first_at, row.last_at, keep=about)
        yield FindingPage(
            kind="finding",
            title=f"{row.kind} · {row.subject_name}",
            root="../",
            finding=row,
            town_id=town,
            town_name=town_name(data.run.source, data.run.town_id, data.run.town_name),
            town_href=town_href(data.run.town_id),
            verdict=tf.verdict,
            summary=kind(row.kind).summary if known else "",
            sentence=sentence(row, tf.as_of),
            since=_time(row.first_at),
            until=_time(row.last_at),
            subject_href=subject_href(data, row),
            meanwhile=tf.meanwhile.get(row.id, ""),
            witness=witness_ticks(data, tf, row),
            fidelity=tf.fidelity,
            caveat=tf.caveat,
            docs_anchor=row.kind if known else "",
            replay_where=clean(data.run.replay_where),
            lanes=tuple(entity_lanes(data, subject)),
            activity=tuple(activity),
            activity_more=more,
        )


# ── Run level ────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class FindingStubPage:
    """The page kept at a finding's permalink when this run does not show it."""

    kind: str
    title: str
    root: str
    id: str
    href: str
    finding_kind: str
    severity: str
    town_id: str
    subject_name: str
    first_at: str
    last_at: str
    because: str
    last_run: str
    #: ``resolved`` (gone from its town), or ``not rebuilt`` (its town failed this run).
    state: str
    #: The town's name as the history recorded it (its id when the history has none), and
    #: its page when this run built it ("" otherwise).
    town_name: str = ""
    town_href: str = ""


def finding_stub(
    fid: str,
    record: Mapping[str, Any],
    last_run: str,
    state: str,
    names: Mapping[str, str] | None = None,
    built: Set[str] = frozenset(),
) -> FindingStubPage:
    """The stub at a finding's permalink, from its history record, so ticket links keep working;
    its town by the name the history recorded (``names``), linked when this run ``built`` it."""
    row = finding_row({**record, "id": fid})
    town = str(record.get("town_id", ""))
    return FindingStubPage(
        kind="finding-stub",
        title=f"{row.kind} · {row.subject_name}",
        root="../",
        id=row.id,
        href=finding_href(row.id),
        finding_kind=row.kind,
        severity=row.severity,
        town_id=clean(town),
        subject_name=row.subject_name,
        first_at=row.first_at,
        last_at=row.last_at,
        because=row.because,
        last_run=clean(last_run),
        state=state,
        town_name=clean((names or {}).get(town, town)),
        town_href=town_href(town) if town in built else "",
    )


def finding_stubs(
    gone: Sequence[tuple[str, dict[str, Any], str]],
    carried: Mapping[str, Mapping[str, Any]],
    not_rebuilt: Mapping[str, str],
    resolved_state: str,
    not_rebuilt_state: str,
    *,
    names: Mapping[str, str] | None = None,
    built: Set[str] = frozenset(),
) -> list[FindingStubPage]:
    """Stub pages for findings gone from the run and for those carried from towns not rebuilt
    (their towns by ``names``, linked when this run ``built`` them)."""
    stubs = [finding_stub(fid, r, run, resolved_state, names, built) for fid, r, run in gone]
    stubs += [
        finding_stub(
            fid, r, not_rebuilt.get(str(r.get("town_id")), ""), not_rebuilt_state, names, built
        )
        for fid, r in carried.items()
    ]
    return sorted(stubs, key=lambda s: s.id)


def run_findings(
    summaries: Sequence[TownSummary], carried: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Every finding of the run as ``history.jsonl`` keeps it: the built towns' and those
    carried from towns not rebuilt."""
    found: dict[str, dict[str, Any]] = dict(carried)
    for s in summaries:
        for f in s.findings:
            found[f.id] = f.record(s.town_id)
    return dict(sorted(found.items()))


def new_critical(records: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run's new critical findings that count (what Sentry is told about), by id."""
    return {
        fid: dict(r)
        for fid, r in sorted(records.items())
        if r.get("status") == "new" and r.get("severity") == "critical" and not r.get("expected")
    }
