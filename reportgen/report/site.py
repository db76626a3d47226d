"""Writing the site: a temporary directory swapped in at the end, hashed assets, JSON twins.

A build writes every file into ``.<out>.tmp-<pid>`` next to the output and
only when everything succeeded swaps it in (``os.replace`` of the old site
to a sibling, the new one into place, then the old one is deleted). A build
that fails or is killed leaves the previous site untouched; its leftover
temporary directory is removed by the next build.

reportgen only ever deletes or replaces a directory it wrote: every site
carries a marker file, :data:`SITE_MARKER`, at its root (and the
incremental-build cache beside it :data:`CACHE_MARKER`). ``--out`` may name
a missing or empty directory, or one holding the marker; anything else is
refused (:func:`check_replaceable`) unless the caller forces it. An output
never is, contains or sits inside a source (:func:`check_apart`).

Assets are written once per site with a content hash in their names
(``assets/site-<hash>.css``), like coverage.py, so a browser or a Pages CDN
never serves a stale stylesheet. The Vega / Vega-Lite / Vega-Embed bundle
comes from ``vl_convert.javascript_bundle()``, generated once per
vl-convert version and cached in the user's cache directory, so builds stay
fast and need no network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from reportgen.errors import BadInputError
from reportgen.report.render import AssetRefs
from reportgen.resources import templates_dir

ASSET_SOURCES = ("site.css", "site.js", "timeline.js")
#: The file at a site's root that says reportgen wrote the directory (so may replace it).
SITE_MARKER = ".reportgen-site"
#: The same for the incremental-build cache beside a site (docs/fleet.md).
CACHE_MARKER = ".reportgen-cache"
#: What a site built before the marker existed holds at its root (recognised as reportgen's).
LEGACY_SITE = frozenset(
    {"index.html", "index.json", "history.jsonl", "assets", "towns", "violations"}
)
#: The same for a cache built before its marker existed.
LEGACY_CACHE = frozenset({"towns", "staging"})


def write_marker(folder: Path, marker: str) -> None:
    """Mark ``folder`` as written by reportgen (short JSON, the same bytes every build)."""
    kind = "site" if marker == SITE_MARKER else "cache"
    text = f'{{"generator": "reportgen", "kind": "{kind}"}}\n'
    (folder / marker).write_text(text, encoding="utf-8")


def owned(folder: Path, marker: str) -> bool:
    """Whether reportgen may delete ``folder``: empty, marked, or a pre-marker site or cache.

    A pre-marker directory counts only when every entry at its root is one
    that reportgen writes there (a user's file beside them makes it not ours).
    """
    names = {p.name for p in folder.iterdir()}
    if not names or marker in names:
        return True
    if marker == SITE_MARKER:
        return {"index.html", "history.jsonl"} <= names <= LEGACY_SITE
    return names <= LEGACY_CACHE


def check_replaceable(path: Path, what: str, marker: str, *, force: bool = False) -> None:
    """Refuse (bad input) to replace ``path`` unless it is missing, empty or reportgen's.

    A regular file (or anything else that is not a directory) is refused even
    when forced: a site never replaces a file. ``what`` names the option in
    the message, e.g. ``"--out site"``.
    """
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise BadInputError(
            f"{what}: {path} is a file, not a site directory: refusing to replace it"
        )
    if force or owned(path, marker):
        return
    raise BadInputError(
        f"{what}: {path} is not empty and was not written by reportgen (no {marker}): "
        "refusing to replace it; choose another directory or pass --force"
    )


def _relation(target: Path, source: Path) -> str | None:
    """How ``target`` overlaps ``source`` (both resolved): ``is``, ``contains``, ``is inside``."""
    if target == source:
        return "is"
    if target in source.parents:
        return "contains"
    if source in target.parents:
        return "is inside"
    return None


def check_apart(option: str, target: Path, sources: Iterable[Path]) -> None:
    """Refuse (bad input) an output that is, contains or sits inside a source (file or folder).

    Paths are compared resolved, so ``.``, ``..`` and symbolic links do not
    hide an overlap. The message names both paths (and what they resolve to).
    """
    resolved = target.resolve()
    for source in sources:
        relation = _relation(resolved, source.resolve())
        if relation is not None:
            raise BadInputError(
                f"{option} {_named(target)} {relation} the source {_named(source)}: "
                "refusing to write there"
            )


def _named(path: Path) -> str:
    """``path``, followed by its resolved form when that differs (``. (/home/me/towns)``)."""
    resolved = path.resolve()
    return str(path) if str(path) == str(resolved) else f"{path} ({resolved})"


def cache_dir() -> Path:
    """``$REPORTGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/reportgen``, else ``~/.cache/reportgen``."""
    explicit = os.environ.get("REPORTGEN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reportgen"


def vega_bundle() -> tuple[str, str]:
    """``(version, javascript)`` of the Vega/Vega-Lite/Vega-Embed bundle, cached per version.

    The bundle defines ``vegaEmbed``, ``vega`` and ``vegaLite`` on ``window``
    as a classic script, which works from ``file://``.
    """
    import vl_convert

    version = str(getattr(vl_convert, "__version__", "unknown"))
    cached = cache_dir() / f"vega-bundle-{version}.js"
    if cached.exists():
        return version, cached.read_text(encoding="utf-8")
    # the stub marks the snippet required; at runtime it defaults to the window.* snippet
    text = vl_convert.javascript_bundle()  # type: ignore[call-arg]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.part")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, cached)
    except OSError:
        pass  # an unwritable cache only costs time
    return version, text


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class Assets:
    """The shared static files of a site, by name, with their text."""

    css: str
    js: str
    vega: str
    vega_version: str
    #: The timeline viewer (``templates/assets/timeline.js``).
    timeline: str = ""

    @classmethod
    def load(cls, *, with_vega: bool = True) -> Assets:
        folder = templates_dir() / "assets"
        css = (folder / "site.css").read_text(encoding="utf-8")
        js = (folder / "site.js").read_text(encoding="utf-8")
        timeline = (folder / "timeline.js").read_text(encoding="utf-8")
        version, vega = vega_bundle() if with_vega else ("none", "")
        return cls(css=css, js=js, vega=vega, vega_version=version, timeline=timeline)

    def names(self) -> dict[str, str]:
        """Site-relative asset paths, hashed by content."""
        return {
            "css": f"assets/site-{_hash(self.css)}.css",
            "js": f"assets/site-{_hash(self.js)}.js",
            "vega": f"assets/vega-{self.vega_version}-{_hash(self.vega)}.js",
            "timeline": f"assets/timeline-{_hash(self.timeline)}.js",
        }

    def refs(self) -> AssetRefs:
        n = self.names()
        return AssetRefs(css=n["css"], js=n["js"], vega=n["vega"], timeline=n["timeline"])

    def inline_refs(self) -> AssetRefs:
        """Asset text for ``<style>`` / ``<script>`` blocks in a single file."""
        return AssetRefs(
            css_text=Markup(self.css.replace("</", "<\\/")),
            js_text=Markup(_script_safe(self.js)),
            vega_text=Markup(_script_safe(self.vega)),
            timeline_text=Markup(_script_safe(self.timeline)),
            inline=True,
        )


def _script_safe(js: str) -> str:
    """JavaScript that cannot end its ``<script>`` element early."""
    return js.replace("</script", "<\\/script").replace("<!--", "<\\!--")


class SiteWriter:
    """Writes files under a temporary directory; :meth:`commit` swaps it in as ``out``.

    Use as a context manager: leaving the block with an exception removes the
    temporary directory and keeps the previous site. ``out`` must be missing,
    empty or a site reportgen wrote (:func:`check_replaceable`) unless ``force``.
    """

    def __init__(self, out: Path, *, force: bool = False) -> None:
        self.out = out.resolve()
        check_replaceable(self.out, f"--out {out}", SITE_MARKER, force=force)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.out)
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        write_marker(self.tmp, SITE_MARKER)
        self.bytes_written = 0
        self.files = 0
        self.committed = False
        self._dirs: set[Path] = set()

    def __enter__(self) -> SiteWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, relpath: str, text: str) -> int:
        """Write UTF-8 text at ``relpath`` (a POSIX path inside the site); returns its size."""
        path = self.tmp / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        path.write_bytes(data)
        self.bytes_written += len(data)
        self.files += 1
        return len(data)

    def link(self, relpath: str, source: Path) -> int:
        """Put an existing file at ``relpath``: a hard link (no copy), else a copy; its size.

        Town pages are written once into their cache entry by whichever worker
        built them; linking them costs no disk space and no bytes copied.
        """
        path = self.tmp / relpath
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        try:
            os.link(source, path)
        except OSError:  # another filesystem, or one without hard links
            shutil.copyfile(source, path)
        size = path.stat().st_size
        self.bytes_written += size
        self.files += 1
        return size

    def remove(self, relpath: str) -> None:
        """Take a file out of the new site again (a town that turned out to be a duplicate)."""
        path = self.tmp / relpath
        size = path.stat().st_size
        path.unlink()
        self.bytes_written -= size
        self.files -= 1

    def write_assets(self, assets: Assets) -> None:
        names = assets.names()
        self.write(names["css"], assets.css)
        self.write(names["js"], assets.js)
        self.write(names["vega"], assets.vega)
        self.write(names["timeline"], assets.timeline)

    def commit(self) -> None:
        """Swap the new site in: old site aside, new site in place, old site removed."""
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        self.committed = True
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)


def _ours(folder: Path) -> bool:
    """A leftover sibling reportgen may delete: a site or a staging cache it marked, or empty."""
    return folder.is_dir() and (owned(folder, SITE_MARKER) or owned(folder, CACHE_MARKER))


def _remove_stale(out: Path) -> None:
    """Remove temporary / old directories left by builds that were killed (only reportgen's)."""
    for sibling in out.parent.glob(f".{out.name}.tmp-*"):
        if _ours(sibling) and not _pid_alive(sibling.name.rsplit("-", 1)[-1]):
            shutil.rmtree(sibling, ignore_errors=True)
    for sibling in sorted(out.parent.glob(f".{out.name}.old-*")):
        if not sibling.is_dir():
            continue
        if not out.exists():  # killed between the two renames of a commit: put it back
            os.replace(sibling, out)
        elif _ours(sibling):
            shutil.rmtree(sibling, ignore_errors=True)


def _pid_alive(text: str) -> bool:
    try:
        pid = int(text)
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def write_file_atomic(path: Path, text: str) -> int:
    """Write one file (the single-file bundle) via a temporary sibling and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = text.encode("utf-8")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)
