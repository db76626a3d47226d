"""One town of a fleet build: a picklable task whose pages go straight to a cache entry on disk.

A fleet build runs one :func:`run_town` per source, in any process or on any
Dask worker. The task loads (replays) the town, renders every page and
writes each one as soon as it is rendered into a directory of its own, then
returns only a small :class:`TownOutcome` (the town's index line, episode
rows and history records). So no process ever holds more than one town's
pages, and the parent's memory does not grow with the pages of the fleet.

The directory is a cache entry (``<cache>/towns/<key>/``: ``files/`` mirrors
the site, ``summary.json`` is the outcome). ``key`` is a sha256 of
everything the town's pages depend on (:func:`town_key`: the source file's
checksum, its path resolved and as given, the reportgen version, the templates,
the window, the loader's options, the asset names); an entry is only reused when the
previous run's episodes of its town (which decide new / persisting and
carried ids) are also the same, which the entry records as
``history_digest``. The parent hard-links the files into the new site, so
an unchanged town costs a few syscalls per page and no disk space.

A task never raises for a bad town: the error (type, message, file) comes
back in the outcome, and the fleet goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen import __version__, gcpause, jsonio
from reportgen.errors import BadInputError
from reportgen.report import history
from reportgen.report.render import AssetRefs
from reportgen.resources import templates_dir
from reportgen.town.db import is_input_error, stray_message
from reportgen.town_run import TownRun

#: ``load_run(source, window_from, window_to) -> TownRun`` (``None`` = the default window).
LoadRun = Callable[[Path, str | None, str | None], TownRun]
#: Bumped when the entry layout, the summary's shape or what pages show changes within one
#: version (old entries are then unused). 2: bidi controls are shown, not obeyed; cached
#: summaries carry the window's reason. 3: towns carry their verdict and findings. 4: the
#: Reproduce commands name the source as the build was told to (the path given, an artefact).
CACHE_FORMAT = 4
SUMMARY = "summary.json"
FILES = "files"


@dataclass(frozen=True)
class FleetContext:
    """What every town task shares: sent once to each worker, not once per town."""

    load_run: LoadRun
    window_from: str | None
    window_to: str | None
    refs: AssetRefs
    #: The previous run's episodes, by town id (``None``: no previous run).
    previous: dict[str, dict[str, dict[str, Any]]] | None
    #: Root of the cache (must be visible to every worker: a shared path for a Dask cluster).
    cache: Path
    #: Digest of the build's options; ``""`` when towns cannot be cached (the loader has no key).
    options_key: str = ""
    #: Reuse entries whose key matches (``False``: rebuild every town, still refreshing entries).
    incremental: bool = True
    #: The previous run's findings, by town id (what decides a finding new or persisting).
    previous_findings: dict[str, dict[str, dict[str, Any]]] | None = None


@dataclass(frozen=True)
class TownTask:
    """One source to build; ``index`` is its position (the order of the index and of errors)."""

    index: int
    source: Path


@dataclass
class TownOutcome:
    """What a task sends back: where its files are, and the town's small results."""

    index: int
    source: str
    #: The directory holding ``files/`` and ``summary.json`` (None when the town failed).
    entry: str | None = None
    #: Whether ``entry`` is a cache entry to keep (False: a staging directory to delete).
    cached: bool = False
    #: Whether the entry was reused without building (inputs unchanged).
    skipped: bool = False
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    #: The error's message (naming the source) when the town failed on bad input.
    bad_input: str = ""


def options_key(
    load_run: LoadRun, window_from: str | None, window_to: str | None, refs: AssetRefs
) -> str:
    """Digest of every build option a town's pages depend on (``""``: not cacheable).

    A loader opts in to caching with a ``cache_key`` attribute (its own
    options, e.g. auto-recovery); an arbitrary function could return anything,
    so towns it loads are always rebuilt.
    """
    loader_key = getattr(load_run, "cache_key", None)
    if not isinstance(loader_key, str):
        return ""
    parts = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "templates": templates_digest(),
        "window": [window_from, window_to],
        "loader": loader_key,
        "assets": [refs.css, refs.js, refs.vega],
    }
    return _sha(jsonio.canonical(parts, compact=False))


def templates_digest() -> str:
    """Digest of the templates, so a template edited without a version bump rebuilds towns."""
    digest = hashlib.sha256()
    root = templates_dir()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def file_checksum(path: Path) -> str:
    """sha256 of a source file, read in blocks (a town database can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def town_key(ctx: FleetContext, source: Path) -> str | None:
    """The cache key of one town, or None when it cannot be cached (unreadable source)."""
    if not ctx.options_key:
        return None
    try:
        checksum = file_checksum(source)
    except OSError:
        return None  # the loader will report it (or serve something else under that name)
    return _sha(f"{ctx.options_key}\0{source.resolve()}\0{source}\0{checksum}")


def history_digest(ctx: FleetContext, town_id: str) -> str:
    """Digest of the previous run's episodes and findings of one town (what decides
    statuses and ids)."""
    if ctx.previous is None:
        return "no-previous-run"
    findings = (ctx.previous_findings or {}).get(town_id, {})
    return _sha(jsonio.canonical([ctx.previous.get(town_id, {}), findings], compact=False))


def town_history(ctx: FleetContext, town_id: str) -> history.History:
    """A :class:`history.History` holding just what one town needs of the previous run."""
    if ctx.previous is None:
        return history.History([])
    episodes = ctx.previous.get(town_id, {})
    findings = (ctx.previous_findings or {}).get(town_id, {})
    record = history.RunRecord("previous", "", "", [], episodes, {}, findings=findings)
    return history.History([record])


def previous_by_town(
    hist: history.History, *, findings: bool = False
) -> dict[str, dict[str, dict[str, Any]]] | None:
    """The previous run's episodes (or ``findings``) grouped by town id (``None`` when
    there is no previous run)."""
    prev = hist.previous
    if prev is None:
        return None
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for rid, record in sorted((prev.findings if findings else prev.episodes).items()):
        grouped.setdefault(str(record.get("town_id")), {})[rid] = record
    return grouped


def entry_dir(ctx: FleetContext, key: str) -> Path:
    return ctx.cache / "towns" / key[:2] / key


def staging_dir(ctx: FleetContext, task: TownTask) -> Path:
    """A directory only this task writes (pid + index are unique among running tasks)."""
    return ctx.cache / "staging" / f"{task.index}-{os.getpid()}"


#: ``write_town(run, hist, refs, folder) -> result``: renders and writes one town's pages.
WriteTown = Callable[[TownRun, history.History, AssetRefs, Path], dict[str, Any]]


def run_town(ctx: FleetContext, task: TownTask, write_town: WriteTown) -> TownOutcome:
    """Build one town into a cache entry (or reuse it); never raises for a bad town."""
    key = town_key(ctx, task.source)
    if key is not None and ctx.incremental:
        reused = _reuse(ctx, task, key)
        if reused is not None:
            return reused
    folder = staging_dir(ctx, task)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        result = _build(ctx, task, write_town, folder, key)
    except Exception as exc:  # one bad town must not sink a fleet build
        shutil.rmtree(folder, ignore_errors=True)
        bad = error_message(task.source, exc) if isinstance(exc, BadInputError) else ""
        if is_input_error(exc):
            bad = stray_message(str(task.source), exc)
        return TownOutcome(
            task.index, str(task.source), error=describe_error(task.source, exc), bad_input=bad
        )
    finally:
        gcpause.collect()
    outcome = TownOutcome(task.index, str(task.source), str(folder), False, False, "", result)
    if key is not None:
        _publish(outcome, folder, entry_dir(ctx, key))
    return outcome


def _build(
    ctx: FleetContext, task: TownTask, write_town: WriteTown, folder: Path, key: str | None
) -> dict[str, Any]:
    """Load and render one town into ``folder``; its data is garbage when this returns."""
    with gcpause.paused():
        run = ctx.load_run(task.source, ctx.window_from, ctx.window_to)
    with gcpause.frozen():
        result = write_town(run, town_history(ctx, run.town_id), ctx.refs, folder / FILES)
    result.update(key=key, history_digest=history_digest(ctx, run.town_id))
    (folder / SUMMARY).write_text(jsonio.canonical(result, compact=False), encoding="utf-8")
    return result


def describe_error(source: Path, exc: BaseException) -> str:
    """``Type: message`` naming the source file (unless the message already does)."""
    return f"{type(exc).__name__}: {error_message(source, exc)}"


def error_message(source: Path, exc: BaseException) -> str:
    """The exception's message, naming the source file (unless it already does)."""
    message = str(exc)
    if str(source) not in message and source.name not in message:
        message = f"{source}: {message}"
    return message


def _reuse(ctx: FleetContext, task: TownTask, key: str) -> TownOutcome | None:
    """The outcome of an unchanged town from its cache entry, if the entry is complete."""
    entry = entry_dir(ctx, key)
    try:
        result = json.loads((entry / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if result.get("key") != key or result.get("history_digest") != history_digest(
        ctx, str(result.get("town_id"))
    ):
        return None
    return TownOutcome(task.index, str(task.source), str(entry), True, True, "", result)


def _publish(outcome: TownOutcome, staging: Path, entry: Path) -> None:
    """Move a finished staging directory into place as the cache entry (best effort)."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staging, entry)
    except OSError:
        return  # the staging directory still serves this build; it just is not cached
    outcome.entry, outcome.cached = str(entry), True


def prune(cache: Path, keep: Iterable[str]) -> None:
    """Remove cache entries this build did not use, and every staging directory.

    The cache then holds exactly the last build's towns, so it never grows
    beyond one site's worth of (hard-linked) files.
    """
    wanted = {Path(p).resolve() for p in keep}
    towns = cache / "towns"
    if towns.is_dir():
        for shard in towns.iterdir():
            for entry in shard.iterdir() if shard.is_dir() else ():
                if entry.resolve() not in wanted:
                    shutil.rmtree(entry, ignore_errors=True)
    shutil.rmtree(cache / "staging", ignore_errors=True)


def default_cache(out: Path) -> Path:
    """``.<site>.cache`` beside the site: outside the swapped directory and the published tree."""
    out = out.resolve()
    return out.parent / f".{out.name}.cache"


def entry_files(outcome: TownOutcome) -> list[str]:
    """Site-relative paths of a built town's files."""
    return [str(p) for p in outcome.result.get("files", [])]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
