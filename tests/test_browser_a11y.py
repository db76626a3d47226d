"""Accessibility and permalinks in a real browser: axe-core in every kind of page, copy-link.

axe-core comes from npm (``package.json`` at the repository root pins it;
``npm ci`` installs it, as ``.ci/run`` and the CI workflow do) and runs
inside each page, as a person's browser would load it. The pages checked
are not listed here: every page a build writes is grouped by its kind
(``<body class="page-<kind>">``) and one page of each kind is checked, so a
kind added later is checked too. The builds are the demo fleet, a run that
resolves the scripted town's episodes (the stubs left at their permalinks)
and the single-file bundle.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from support.browser import chromium

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.single_file import build_single_file
from reportgen.report.site import cache_dir
from reportgen.sim.demo import demo_sources

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The kinds of page that must be among those checked (more may come).
KINDS = {"index", "town", "violation", "finding", "entity", "resolved", "glossary", "bundle"}
#: What fails the check: axe's two worst impacts.
SERIOUS = ("serious", "critical")
_KIND = re.compile(r'<body class="page-([\w-]+)"')


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def axe() -> str:
    if not AXE.exists():
        # CI installs it (npm ci in .ci/run and the workflow): there a missing axe is a failure.
        if os.environ.get("CI"):
            pytest.fail(f"{AXE} is missing; .ci/run should have run `npm ci`")
        pytest.skip("axe-core is not installed: run `npm ci` at the repository root")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The demo site, a site whose previous run's episodes resolved, and a bundle."""
    root = tmp_path_factory.mktemp("a11y")
    build_site(
        demo_sources(cache_dir()), root / "demo", jobs=2, load_run=DiagnosingLoader(ReplayLoader())
    )
    first = {"t.sqlite": rf.scripted_town("town-alpha")}
    later = rf.scripted_town("town-alpha", violations=False)
    later.window_to = "2026-03-01T00:10:00.000Z"
    build_site([Path("t.sqlite")], root / "one", load_run=rf.loader(first))
    build_site(
        [Path("t.sqlite")],
        root / "two",
        load_run=rf.loader({"t.sqlite": later}),
        history_path=root / "one",
    )
    build_single_file([Path("t.sqlite")], root / "incident.html", load_run=rf.loader(first))
    return [root / "demo", root / "two", root / "incident.html"]


def one_page_per_kind(paths: list[Path]) -> dict[str, Path]:
    """The smallest page of every kind the builds wrote (axe's time grows with the page)."""
    found: dict[str, Path] = {}
    for path in paths:
        for page in sorted(path.rglob("*.html")) if path.is_dir() else [path]:
            match = _KIND.search(page.read_text(encoding="utf-8"))
            kind = match.group(1) if match else ""
            if kind and (kind not in found or _size(page) < _size(found[kind])):
                found[kind] = page
    return found


def _size(page: Path) -> tuple[int, str]:
    return page.stat().st_size, str(page)


def serious_violations(browser: Any, axe: str, page_path: Path) -> list[str]:
    """axe's serious and critical violations on one page (charts drawn first), one line each."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function(
        "[...document.querySelectorAll('.chart[data-spec]')]"
        ".every(c => c.dataset.rendered === 'true')",
        timeout=15_000,
    )
    page.add_script_tag(content=axe)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    context.close()
    return [
        f"{v['id']} ({v['impact']}) ×{len(v['nodes'])}: {v['nodes'][0]['html'][:160]}"
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]


def test_axe_finds_nothing_serious_on_any_kind_of_page(
    browser: Any, axe: str, built: list[Path]
) -> None:
    pages = one_page_per_kind(built)
    assert set(pages) >= KINDS, f"kinds not built: {KINDS - set(pages)}"
    problems = {kind: serious_violations(browser, axe, path) for kind, path in pages.items()}
    assert {kind: found for kind, found in problems.items() if found} == {}


def test_axe_is_pinned_and_ci_installs_it_before_the_tests() -> None:
    """The test's axe-core is the one the lock file names, and both CI entry points run
    ``npm ci`` (which installs exactly it) before pytest."""
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    pinned = package["devDependencies"]["axe-core"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned)
    assert lock["packages"]["node_modules/axe-core"]["version"] == pinned
    for script in (ROOT / ".ci" / "run", ROOT / ".github" / "workflows" / "ci.yml"):
        text = script.read_text(encoding="utf-8")
        assert -1 < text.find("npm ci") < text.find("python -m pytest"), script.name


# ── Copy-link buttons ────────────────────────────────────────────────────


def _copied(page: Any, button: Any) -> str:
    """What a copy-link button gave the reader: the clipboard's text, else the URL it selected."""
    page.wait_for_function(
        "b => b.textContent !== 'copy link'", arg=button.element_handle(), timeout=5_000
    )
    if button.inner_text() == "copied":
        return str(page.evaluate("navigator.clipboard.readText()"))
    box = button.locator("xpath=following-sibling::input[@class='copy-url']")
    assert page.evaluate("document.activeElement.className") == "copy-url"
    selected = page.evaluate(
        "[document.activeElement.selectionStart, document.activeElement.selectionEnd]"
    )
    value = str(box.input_value())
    assert selected == [0, len(value)]
    return value


@pytest.mark.parametrize("clipboard", [True, False], ids=["clipboard", "fallback"])
def test_copy_link_puts_the_absolute_permalink_on_the_clipboard(
    browser: Any, built: list[Path], clipboard: bool
) -> None:
    site = built[1].parent / "one"
    context = browser.new_context()
    if clipboard:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
    else:  # no clipboard at all: the button shows the URL, selected, to copy by hand
        context.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page = context.new_page()
    town = site / "towns" / "town-alpha" / "index.html"
    page.goto(town.as_uri())
    episode = page.locator("tr.episode-row button.copy-link").first
    eid = str(page.locator("tr.episode-row").first.get_attribute("id"))[len("ep-") :]
    assert episode.get_attribute("aria-label") == f"Copy link to episode {eid}"
    episode.focus()
    page.keyboard.press("Enter")  # a button: the keyboard works as the mouse does
    assert _copied(page, episode) == (site / "violations" / f"{eid}.html").as_uri()
    town_button = page.locator('button.copy-link[aria-label="Copy link to this town"]')
    town_button.click()
    assert _copied(page, town_button) == town.as_uri()
    context.close()
