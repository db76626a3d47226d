"""The stable permalinks of the published tree: one page per episode and finding, never pruned.

``permalinks/episodes/<id>.html`` and ``permalinks/findings/<id>.html`` (each
with its JSON twin) show the latest state of what they name, from the
:mod:`~reportgen.report.ledger`: open, ended, or resolved in run X; its town
by name; when it was last seen; and a link to each dated run that showed it,
for as long as that run's page exists (a deleted run is named, not linked).
``permalinks/index.html`` lists them all. The pages are rendered from the
ledger alone, so the same ledger and the same kept runs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reportgen.report.format import compact
from reportgen.report.ledger import ENDED, OPEN, Entry, Ledger
from reportgen.report.render import AssetRefs, Url, render, site_url

#: The folder under the published tree's root.
FOLDER = "permalinks"
#: Where a kind's pages go, and what one of them is called on a page.
WHAT = {"episodes": "episode", "findings": "finding"}
#: The dated run's own page of an entry of each kind (its permalink within that run).
RUN_PAGE = {"episodes": "violations", "findings": "findings"}
#: Index order: what still holds first.
STATE_ORDER = {OPEN: 0, ENDED: 1}


def permalink_href(kind: str, entry_id: str) -> str:
    """An entry's permalink, relative to the published tree's root."""
    return f"{FOLDER}/{kind}/{entry_id}.html"


def permalink_url(base: str, kind: str, entry_id: str) -> str:
    """The absolute permalink under ``base`` (the published tree's URL)."""
    return f"{base.rstrip('/')}/{permalink_href(kind, entry_id)}"


@dataclass(frozen=True)
class RunLink:
    """A dated run as a permalink page names it: linked while its page exists."""

    label: str
    #: Relative to the published tree's root; "" when the run's page is gone.
    href: str


@dataclass(frozen=True)
class PermalinkPage:
    """The permalink page of one episode or finding."""

    kind: str
    title: str
    root: str
    id: str
    what: str
    heading: str
    town_id: str
    town_name: str
    #: Whether the town's id is worth showing under its name (it has a name of its own).
    id_differs: bool
    state: str
    #: The state in words, before and after the run it names (``state_run``).
    lead: str
    tail: str
    state_run: RunLink
    last_seen: RunLink
    first_at: str
    last_at: str
    detail: str
    runs: list[RunLink]
    runs_gone: int
    index_href: str = f"{FOLDER}/index.html"


@dataclass(frozen=True)
class PermalinkRow:
    """One line of the permalinks index."""

    id: str
    href: str
    heading: str
    town_name: str
    state: str
    last_at: str
    last_run: str
    #: Shown in small print under the name when they differ.
    town_id: str = ""


@dataclass(frozen=True)
class PermalinksIndex:
    """``permalinks/index.html``: every episode and finding ever published, what holds first."""

    kind: str
    title: str
    root: str
    episodes: list[PermalinkRow]
    findings: list[PermalinkRow]
    latest: RunLink


#: Whether the published tree holds a file (a path relative to its root).
Exists = Callable[[str], bool]


def _run_link(
    label: str, kind: str, entry_id: str, exists: Exists, *, index: bool = False
) -> RunLink:
    """The run's page of the entry while it exists (else, with ``index``, the run's index:
    a run that resolved an entry has no page of it when it was built without history)."""
    pages = [f"runs/{label}/{RUN_PAGE[kind]}/{entry_id}.html"]
    pages += [f"runs/{label}/index.html"] if index else []
    return RunLink(label, next((href for href in pages if exists(href)), ""))


def _state_words(entry: Entry) -> tuple[str, str]:
    """``(lead, tail)`` around the run that set the state."""
    if entry.state == OPEN:
        return "Open: still there at the end of the newest run to show it, run", "."
    if entry.state == ENDED:
        return (
            f"Ended at {entry.last_at}, inside the window of run",
            "; no later run of its town has been published yet.",
        )
    return (
        "Resolved in run",
        f": its town was built again without it. Last seen at {entry.last_at}.",
    )


def permalink_page(kind: str, entry: Entry, exists: Exists) -> PermalinkPage:
    """The page of one ledger entry."""
    runs = [_run_link(label, kind, entry.id, exists) for label in reversed(entry.runs)]
    state_label = entry.resolved_in or entry.last_run
    lead, tail = _state_words(entry)
    return PermalinkPage(
        kind="permalink",
        title=entry.heading,
        root="../../",
        id=entry.id,
        what=WHAT[kind],
        heading=entry.heading,
        town_id=entry.town_id,
        town_name=entry.town_name,
        id_differs=entry.town_name != entry.town_id,
        state=entry.state,
        lead=lead,
        tail=tail,
        state_run=_run_link(state_label, kind, entry.id, exists, index=True),
        last_seen=_run_link(entry.last_run, kind, entry.id, exists),
        first_at=entry.first_at,
        last_at=entry.last_at,
        detail=entry.detail,
        runs=[r for r in runs if r.href],
        runs_gone=sum(1 for r in runs if not r.href),
    )


def _rows(kind: str, entries: dict[str, Entry]) -> list[PermalinkRow]:
    """Index rows: open, then ended, then resolved; newest last tick first."""
    ordered = sorted(entries.values(), key=lambda e: e.id)
    ordered.sort(key=lambda e: e.last_at, reverse=True)
    ordered.sort(key=lambda e: STATE_ORDER.get(e.state, 2))
    return [
        PermalinkRow(
            e.id,
            permalink_href(kind, e.id),
            e.heading,
            e.town_name,
            e.state,
            e.last_at,
            e.last_run,
            town_id=e.town_id,
        )
        for e in ordered
    ]


def index_page(ledger: Ledger, latest_run: str, exists: Exists) -> PermalinksIndex:
    """The permalinks index."""
    href = f"runs/{latest_run}/index.html"
    return PermalinksIndex(
        kind="permalinks",
        title="Permalinks",
        root="../",
        episodes=_rows("episodes", ledger.episodes),
        findings=_rows("findings", ledger.findings),
        latest=RunLink(latest_run, href if latest_run and exists(href) else ""),
    )


def permalink_files(
    ledger: Ledger, latest_run: str, exists: Exists, assets: AssetRefs
) -> Iterator[tuple[str, str]]:
    """``(path under permalinks/, text)`` of every page and JSON twin."""
    index = index_page(ledger, latest_run, exists)
    yield from _files(index, "index.html", assets)
    for kind in ("episodes", "findings"):
        for entry_id, entry in sorted(ledger.of(kind).items()):
            yield from _files(
                permalink_page(kind, entry, exists), f"{kind}/{entry_id}.html", assets
            )


def _files(
    page: PermalinkPage | PermalinksIndex, path: str, assets: AssetRefs
) -> Iterator[tuple[str, str]]:
    """A page's HTML and its JSON twin; links are relative to the published tree's root."""
    json_path = path[: -len(".html")] + ".json"
    yield (
        path,
        render(
            page,
            assets=assets,
            url=_url(f"permalinks/{path}"),
            json_href=json_path.rsplit("/", 1)[-1],
        ),
    )
    yield json_path, compact(page) + "\n"


def _url(path: str) -> Url:
    """Links from the page at ``path`` of the published tree, whose root holds no glossary
    (each run has one)."""
    inside = site_url(path)
    return lambda href: "" if href == "glossary.html" else inside(href)
