"""Every page of the site and where it goes: a town's pages one by one, and each page's two files.

A page is written twice: its HTML, and beside it its JSON twin (the
view-model's fields as canonical JSON, :func:`~reportgen.report.format.compact`).
"""

from __future__ import annotations

from collections.abc import Iterator

from reportgen.report.findings import (
    FindingPage,
    FindingStubPage,
    TownFindings,
    finding_pages,
    with_findings,
)
from reportgen.report.format import compact
from reportgen.report.glossary import GlossaryPage
from reportgen.report.render import AssetRefs, render, site_url
from reportgen.report.timeline_files import build_timeline
from reportgen.report.town_data import TownData
from reportgen.report.views_detail import EntityPage, ViolationPage, entity_pages, violation_pages
from reportgen.report.views_index import IndexPage, ResolvedPage
from reportgen.report.views_shared import town_href
from reportgen.report.views_town import TownPage, town_page

#: Every kind of page the site holds (the single-file bundle has its own, ``BundlePage``).
SitePage = (
    IndexPage
    | TownPage
    | EntityPage
    | ViolationPage
    | ResolvedPage
    | FindingPage
    | FindingStubPage
    | GlossaryPage
)


def page_files(page: SitePage, path: str, assets: AssetRefs) -> list[tuple[str, str]]:
    """``(path, text)`` of the page's HTML at ``path`` (site-relative) and of its JSON twin."""
    json_path = path[: -len(".html")] + ".json"
    html = render(page, assets=assets, url=site_url(path), json_href=json_path.rsplit("/", 1)[-1])
    return [(path, html), (json_path, compact(page) + "\n")]


def town_pages(data: TownData, found: TownFindings, assets: AssetRefs) -> Iterator[tuple[str, str]]:
    """Every file of one town, rendered one page at a time: the town page (opening with its
    verdict and findings), its timeline's data files, its entities' pages, its episodes'
    pages and its findings' pages."""
    timeline = build_timeline(data)
    town = with_findings(town_page(data, timeline.summary), data, found)
    yield from page_files(town, town_href(data.run.town_id), assets)
    yield from timeline.files
    for path, entity in entity_pages(data):
        yield from page_files(entity, path, assets)
    for vpage in violation_pages(data):
        yield from page_files(vpage, vpage.episode.href, assets)
    for fpage in finding_pages(data, found):
        yield from page_files(fpage, fpage.finding.href, assets)
