"""What a build produced, in words: the command line's one-screen summary and the CI step summary.

:class:`BuildSummary` is filled as the build goes (failures, windows) and
at its end (:func:`fill_summary`); the CLI prints :meth:`BuildSummary.text`,
writes :meth:`BuildSummary.markdown` to ``$GITHUB_STEP_SUMMARY``, and picks
its exit code from it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen.report.format import clean
from reportgen.report.permalinks import permalink_url
from reportgen.report.verdicts import (
    VerdictLine,
    finding_href,
    ordered_lines,
    verdict_counts,
    verdict_line,
    verdict_markdown,
)
from reportgen.report.views_index import TownSummary
from reportgen.report.views_shared import EpisodeRow


@dataclass
class BuildSummary:
    """What a build produced, for the CLI's one-screen summary and its exit code."""

    out: Path
    towns: int = 0
    towns_failed: int = 0
    #: Towns whose inputs had not changed since the last build: their pages were reused.
    skipped: int = 0
    ticks: int = 0
    actions: int = 0
    episodes: int = 0
    new: int = 0
    persisting: int = 0
    resolved: int = 0
    #: Episodes carried forward from towns this run did not build (failed or missing).
    not_rebuilt: int = 0
    files: int = 0
    bytes: int = 0
    window_from: str = ""
    window_to: str = ""
    #: Built towns by fidelity: ``recorded`` (shown from their record), ``exact``
    #: (replayed and compared), ``approximate`` (no journal: their own history, no
    #: ticks), ``simulated`` (no journal: ticks simulated on today's state).
    fidelities: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Each built town's window and why (``source``, ``from``, ``to``, ``reason``).
    town_windows: list[dict[str, str]] = field(default_factory=list)
    #: Stored timestamps set aside as implausible when choosing a town's window
    #: (``source``, ``table``, ``key``, ``column``, ``value``).
    ignored_times: list[dict[str, str]] = field(default_factory=list)
    new_episodes: list[dict[str, Any]] = field(default_factory=list)
    #: History records (:func:`history.episode_record`) of the new episodes, by id: what
    #: alerting needs (message, entities, extent) without the towns' Episode objects.
    new_episode_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: New episodes that the diagnosis does not mark expected (``--fail-on violations``).
    new_unexpected: int = 0
    #: Each built town's verdict and worst finding (``--fail-on stuck|degraded``).
    verdicts: list[VerdictLine] = field(default_factory=list)
    #: History records of the new critical findings that count, by id (Sentry alerts).
    new_finding_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The published tree's URL (``--permalink-base``): new episodes and findings are then
    #: linked at their stable permalinks (``<base>/permalinks/episodes/<id>.html``).
    permalink_base: str = ""

    def episode_link(self, episode: dict[str, Any]) -> str:
        """A new episode's link: its stable permalink under :attr:`permalink_base`, else its
        page in this site."""
        if self.permalink_base:
            return permalink_url(self.permalink_base, "episodes", str(episode["id"]))
        return str(episode["href"])

    def finding_lines(self) -> list[tuple[str, str]]:
        """``(what, link)`` of each new critical finding, by id: its permalink or its page."""
        lines = []
        for fid, f in sorted(self.new_finding_records.items()):
            link = (
                permalink_url(self.permalink_base, "findings", fid)
                if self.permalink_base
                else finding_href(fid)
            )
            lines.append((f"{_town(f)} {f['kind']} ({f.get('subject_name', '')})", link))
        return lines

    def _sources(self) -> str:
        """`` (4 towns from their record, 1 replayed)``: where the ticks came from, and how
        many towns had none (no journal: their own history) or simulated ones."""
        replayed = self.fidelities.get("exact", 0)
        recorded = self.fidelities.get("recorded", 0)
        parts = [] if not recorded and not replayed else [
            f"{recorded} {'town' if recorded == 1 else 'towns'} from their record",
            f"{replayed} replayed",
        ]  # fmt: skip
        if dumps := self.fidelities.get("approximate", 0):
            parts.append(f"{dumps} with no journal shown by their history")
        if simulated := self.fidelities.get("simulated", 0):
            parts.append(f"{simulated} simulated on today's state")
        return f" ({', '.join(parts)})" if parts else ""

    def _carried(self) -> str:
        """``; 3 carried from towns not rebuilt this run`` (empty when none)."""
        if not self.not_rebuilt:
            return ""
        return f"; {self.not_rebuilt} carried from towns not rebuilt this run"

    def text(self) -> str:
        """The one-screen summary printed at the end of ``reportgen build``."""
        lines = [
            f"towns      {self.towns} ({self.skipped} skipped as unchanged, "
            f"{self.towns_failed} failed)",
            f"window     {self.window_from or '-'} → {self.window_to or '-'}",
            f"ticks      {self.ticks}" + self._sources(),
            f"actions    {self.actions}",
            f"violations {self.episodes} episodes: {self.new} new, {self.persisting} "
            f"persisting, {self.resolved} resolved" + self._carried(),
        ]
        lines += [
            f"  new: {_town(e)} invariant {e['invariant']} ({e['title']}) "
            f"{e['first_at']} → {self.episode_link(e)}"
            for e in self.new_episodes[:10]
        ]
        if len(self.new_episodes) > 10:
            lines.append(f"  … and {len(self.new_episodes) - 10} more")
        lines += [f"  new finding: {what} → {link}" for what, link in self.finding_lines()]
        lines += [f"  failed: {src}: {why}" for src, why in self.failures]
        lines.append(f"verdicts   {verdict_counts(self.verdicts)}")
        lines += [
            f"  {v.verdict}: {v.name} — {v.worst}"
            for v in ordered_lines(self.verdicts)
            if v.verdict in ("stuck", "degraded")
        ]
        lines.append(
            f"site       {self.out / 'index.html'} ({self.files} files, {self.bytes / 1e6:.1f} MB)"
        )
        return "\n".join(lines)

    def window_line(self) -> str:
        """The window the build used and why, in one line: the town's, or the fleet's span."""
        if len(self.town_windows) == 1:
            only = self.town_windows[0]
            return f"window {only['from']} .. {only['to']} ({only['reason']})"
        reasons = {w["reason"] for w in self.town_windows}
        why = reasons.pop() if len(reasons) == 1 else "each town's own, chosen from its data"
        return (
            f"window {self.window_from or '-'} .. {self.window_to or '-'} over "
            f"{len(self.town_windows)} towns ({why})"
        )

    def markdown(self) -> str:
        """A GitHub step summary (Markdown)."""
        out = [
            "## Reconciler report",
            "",
            "| towns | failed | ticks | actions | new | persisting | resolved | not rebuilt |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {self.towns} | {self.towns_failed} | {self.ticks} | {self.actions} | "
            f"{self.new} | {self.persisting} | {self.resolved} | {self.not_rebuilt} |",
            "",
            *verdict_markdown(self.verdicts, _md),
        ]
        if self.new_episodes:
            out += ["### New violation episodes", ""]
            out += [
                f"- `{_md(_town(e))}` invariant {e['invariant']} ({_md(e['title'])}) "
                f"from {e['first_at']} — {_md_link(self.episode_link(e))}"
                for e in self.new_episodes
            ]
        if self.new_finding_records:
            out += ["", "### New critical findings", ""]
            out += [f"- {_md(what)} — {_md_link(link)}" for what, link in self.finding_lines()]
        out += [f"- failed: `{_md(src)}`: {_md(why)}" for src, why in self.failures]
        return "\n".join(out) + "\n"


def _md_link(link: str) -> str:
    """A URL as a Markdown link; a site-relative path as code (it only means something locally)."""
    if link.startswith(("https://", "http://")):
        return f"[{_md(link)}]({link.replace(' ', '%20').replace(')', '%29')})"
    return f"`{_md(link)}`"


def _town(episode: dict[str, Any]) -> str:
    """A town as the summary names it: ``name (id)``, or its id when it has no other name."""
    name, town_id = str(episode.get("town_name") or ""), str(episode.get("town_id", ""))
    return f"{name} ({town_id})" if name and name != town_id else town_id


def _md(text: str) -> str:
    return clean(text).replace("|", "\\|").replace("`", "'").replace("\n", " ")


def fill_summary(
    summary: BuildSummary, summaries: list[TownSummary], rows: list[EpisodeRow]
) -> None:
    """The totals of a finished build, from the towns' index lines and episode rows."""
    ok = [s for s in summaries if s.state != "failed"]
    summary.towns = len(summaries)
    summary.towns_failed = len(summaries) - len(ok)
    summary.ticks = sum(s.ticks for s in ok)
    summary.fidelities = dict(sorted(Counter(s.fidelity for s in ok).items()))
    summary.actions = sum(s.actions for s in ok)
    summary.episodes = len(rows)
    summary.new = sum(1 for r in rows if r.status == "new")
    summary.new_unexpected = sum(1 for r in rows if r.status == "new" and not r.expected)
    summary.verdicts = [verdict_line(s.town_id, s.name, s.verdict, s.findings) for s in ok]
    summary.persisting = sum(1 for r in rows if r.status == "persisting")
    froms = sorted(s.window_from for s in ok)
    tos = sorted(s.window_to for s in ok)
    summary.window_from, summary.window_to = (froms[0] if froms else ""), (tos[-1] if tos else "")
    summary.new_episodes = [
        {
            "id": r.id,
            "town_id": r.town_id,
            "town_name": r.town_name,
            "invariant": r.invariant,
            "title": r.title,
            "first_at": r.first_at,
            "href": r.href,
        }
        for r in sorted(rows, key=lambda r: (r.first_at, r.town_id, r.id))
        if r.status == "new"
    ]
