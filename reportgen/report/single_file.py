"""The single-file incident bundle: one town's window in one self-contained HTML file.

Everything is inline (CSS, JS, the Vega bundle, the data), so the file opens
from disk, from a ticket attachment or from an unzipped CI artefact with no
server and no network. It holds the town page with its timeline (the same
viewer as the site's, its data files inline, scrolled inside a fixed-height
viewport), every violation episode with its explanation and witness, and the
entities those episodes involve; links between them are in-page anchors, and
links to pages the bundle does not hold are printed as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from reportgen.diagnose.episodes import find_episodes
from reportgen.errors import BadInputError
from reportgen.report.build import LoadRun
from reportgen.report.charts import Chart, TownDatasets
from reportgen.report.findings import (
    expected_episodes,
    expected_reasons,
    town_findings,
    with_findings,
)
from reportgen.report.format import slug
from reportgen.report.glossary import GLOSSARY_HREF
from reportgen.report.render import Url, render
from reportgen.report.site import Assets, write_file_atomic
from reportgen.report.timeline_files import build_timeline
from reportgen.report.town_data import compute_town
from reportgen.report.views_detail import (
    EntitySection,
    ViolationPage,
    entity_pages,
    violation_pages,
)
from reportgen.report.views_town import TownPage, town_page
from reportgen.town_run import TownRun


@dataclass(frozen=True)
class BundlePage:
    """The bundle's view-model: the town page plus its episodes and involved entities."""

    kind: str
    title: str
    root: str
    town: TownPage
    violations: list[ViolationPage]
    entities: list[EntitySection]
    #: The timeline's data files (index first), inline in the bundle.
    timeline: list[str]

    @property
    def charts(self) -> list[Chart]:
        return self.town.charts

    @property
    def datasets(self) -> TownDatasets:
        return self.town.datasets


def bundle_url(town_id: str, entity_anchors: set[str]) -> Url:
    """``url()`` mapping site hrefs to anchors inside the bundle ("" when not held)."""
    town_prefix = f"towns/{slug(town_id)}/"

    def url(href: str) -> str:
        path, _, fragment = href.partition("#")
        if fragment.startswith("tick-"):
            return f"#{fragment}"
        if path.startswith("violations/"):
            return "#v-" + path[len("violations/") : -len(".html")]
        if fragment in entity_anchors:
            return f"#{fragment}"
        if path == f"{town_prefix}index.html":
            return "#top"
        if path == GLOSSARY_HREF:  # the glossary is a section at the bundle's end
            return f"#{fragment or 'glossary'}"
        return ""

    return url


def bundle_page(run: TownRun) -> tuple[BundlePage, set[str]]:
    """The bundle view-model and the anchors of the entity sections it holds."""
    episodes = find_episodes(run.town_id, run.ticks)
    expected = expected_reasons(expected_episodes(run, episodes))
    data = compute_town(run, episodes, expected=expected)
    involved = {(link.kind, link.id) for row in data.rows.values() for link in row.entities}
    entities = [
        s
        for _, p in entity_pages(data)
        for s in p.sections
        if (s.lane.entity.kind, s.lane.entity.id) in involved
    ]
    anchors = {s.anchor for s in entities}
    timeline = build_timeline(data, bundle_url(run.town_id, anchors))
    town_view = town_page(data, timeline.summary)
    town = with_findings(town_view, data, town_findings(run, lambda _id: "new"))
    page = BundlePage(
        kind="bundle",
        title=f"Incident bundle · {town.title}",
        root="",
        town=town,
        violations=list(violation_pages(data)),
        entities=entities,
        timeline=[Markup(text) for _, text in timeline.files],  # script-safe JSON
    )
    return page, anchors


def build_single_file(
    sources: Sequence[Path],
    out_file: Path,
    *,
    town: str | None = None,
    window_from: str | None = None,
    window_to: str | None = None,
    load_run: LoadRun,
    assets: Assets | None = None,
) -> int:
    """Write the bundle for ``town`` (or the only source) to ``out_file``; returns its size."""
    load = load_run
    if town is None and len(sources) != 1:
        raise BadInputError("--single-file needs --town when there is more than one source")
    run = _find_run(sources, town, window_from, window_to, load)
    page, anchors = bundle_page(run)
    assets = assets or Assets.load()
    html = render(page, assets=assets.inline_refs(), url=bundle_url(run.town_id, anchors))
    return write_file_atomic(out_file, html)


def _find_run(
    sources: Sequence[Path], town: str | None, wf: str | None, wt: str | None, load: LoadRun
) -> TownRun:
    seen = []
    for source in sources:
        run = load(source, wf, wt)
        if town is None or run.town_id == town:
            return run
        seen.append(run.town_id)
    raise BadInputError(f"--town {town}: not among the sources (found: {', '.join(seen)})")
