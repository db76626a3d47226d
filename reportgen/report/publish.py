"""``reportgen publish PAGES_DIR``: retention and stable permalinks over the published tree.

The published tree (docs/nightly.md) holds dated runs under ``runs/``. Every
night, after the new run is built, :func:`publish`:

1. brings the permalink ledger (:mod:`~reportgen.report.ledger`) up to every
   kept run, before any run is thinned or deleted, so nothing a run showed
   is forgotten;
2. deletes the runs beyond ``keep_runs`` and thins those older than the
   newest ``full_runs`` (:mod:`~reportgen.report.retention`);
3. rewrites ``permalinks/`` (:mod:`~reportgen.report.permalinks`): built
   beside the old folder and swapped in, refused when the folder exists and
   reportgen did not write it (the site marker rules of
   :mod:`~reportgen.report.site`).

Nothing here reads the clock: the same tree gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reportgen.errors import BadInputError
from reportgen.report import ledger as ledgers
from reportgen.report.permalinks import FOLDER, permalink_files
from reportgen.report.render import AssetRefs
from reportgen.report.retention import delete_run, thin_run
from reportgen.report.site import SITE_MARKER, Assets, SiteWriter, check_replaceable, owned

#: Defaults of the nightly: full sites for the newest 4 runs, 90 runs kept in all.
FULL_RUNS = 4
KEEP_RUNS = 90


@dataclass
class PublishResult:
    """What one publish did, for the command's summary line."""

    runs: list[str] = field(default_factory=list)
    thinned: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: Runs under ``runs/`` that reportgen did not write: never thinned nor deleted.
    foreign: list[str] = field(default_factory=list)
    episodes: int = 0
    findings: int = 0
    files: int = 0


def kept_runs(pages: Path) -> tuple[list[str], list[str]]:
    """``(reportgen's runs oldest first, other folders)`` under ``pages/runs``."""
    folder = pages / "runs"
    if not folder.is_dir():
        return [], []
    names = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    ours = [n for n in names if owned(folder / n, SITE_MARKER)]
    return ledgers.sort_runs(ours), sorted(set(names) - set(ours))


def publish(
    pages: Path,
    *,
    full_runs: int = FULL_RUNS,
    keep_runs: int = KEEP_RUNS,
    force: bool = False,
) -> PublishResult:
    """Retention and permalinks over ``pages`` (see the module docstring)."""
    if not pages.is_dir():
        raise BadInputError(f"PAGES_DIR {pages}: no such directory")
    if full_runs < 1 or keep_runs < 1:
        raise BadInputError(
            f"--full-runs {full_runs} --keep-runs {keep_runs}: both must be at least 1"
        )
    out = pages / FOLDER
    check_replaceable(out, f"PAGES_DIR {pages}: {FOLDER}/", SITE_MARKER, force=force)
    result = PublishResult()
    result.runs, result.foreign = kept_runs(pages)
    ledger = _updated_ledger(pages, result.runs)
    gone = result.runs[: max(0, len(result.runs) - keep_runs)]
    kept = result.runs[len(gone) :]
    result.deleted = [r for r in gone if delete_run(pages / "runs" / r)]
    result.thinned = [
        r for r in kept[: max(0, len(kept) - full_runs)] if thin_run(pages / "runs" / r)
    ]
    result.runs = kept
    result.files = _write_permalinks(pages, ledger, kept[-1] if kept else "", force)
    result.episodes, result.findings = len(ledger.episodes), len(ledger.findings)
    return result


def _updated_ledger(pages: Path, runs: list[str]) -> ledgers.Ledger:
    """The previous ledger brought up to every kept run, oldest first."""
    ledger = ledgers.read_ledger(pages / FOLDER / ledgers.FILE_NAME)
    for label in runs:
        index = pages / "runs" / label / "index.json"
        if index.is_file():  # a run without one (a hand-made stub) shows nothing
            ledgers.apply_run(ledger, ledgers.read_run(label, index))
    return ledger


def _write_permalinks(pages: Path, ledger: ledgers.Ledger, latest: str, force: bool) -> int:
    """Write ``permalinks/`` whole, beside the old one, and swap it in; returns the file count."""
    assets = Assets.load(with_vega=False)
    names = assets.names()
    refs = AssetRefs(css=f"{FOLDER}/{names['css']}", js=f"{FOLDER}/{names['js']}")

    def exists(href: str) -> bool:
        return (pages / href).is_file()

    with SiteWriter(pages / FOLDER, force=force) as writer:
        writer.write(names["css"], assets.css)
        writer.write(names["js"], assets.js)
        for relpath, text in permalink_files(ledger, latest, exists, refs):
            writer.write(relpath, text)
        writer.write(ledgers.FILE_NAME, ledger.dump())
        writer.commit()
        return writer.files
