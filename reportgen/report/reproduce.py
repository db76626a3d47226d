"""The file a page's "Reproduce" command names, and where a reader gets it.

Episode and finding pages print ``reportgen replay --db FILE --from … --to …
--ticks``. The town was loaded from a path on the machine that built the
site, which may mean nothing to the reader: a nightly build reads its
sources from a scratch directory of the CI runner, the demo fleet from
reportgen's cache. So the build says how its sources are known
(:class:`SourceNames`) and every town's pages name its file that way, with a
line on where to get it:

* ``--artefact bundles-<run>`` (the nightly): the town's bundle inside the
  artefact of that name, once downloaded into a folder named after it
  (``bundles-<run>/<town>.sqlite``);
* the demo fleet: the file under reportgen's cache folder, where ``reportgen
  build`` with no source simulated it (``demo-fleet-…/<scenario>.sqlite``);
* otherwise the path ``reportgen build`` was given.

:class:`NamingLoader` applies the names as each town is loaded, in the worker
that loads it, so the pages, their JSON twins and the findings' commands all
agree.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reportgen.report.fleet import LoadRun
from reportgen.town_run import TownRun


@dataclass(frozen=True)
class SourceNames:
    """How the sources of a build are known to the readers of its pages."""

    #: The CI artefact the sources are published in (the nightly's ``bundles-<run>``).
    artefact: str = ""
    #: Where that artefact is listed for download (the nightly run's page).
    artefact_url: str = ""
    #: The cache folder the demo fleet was simulated into ("" unless building the demo).
    demo_cache: str = ""

    def db(self, source: Path) -> str:
        """What ``replay --db`` names for ``source``."""
        if self.artefact:
            return f"{self.artefact}/{source.name}"
        demo = self._in_demo_cache(source)
        return str(demo if demo is not None else source)

    def where(self, source: Path) -> str:
        """One line on where the file :meth:`db` names is to be found."""
        if self.artefact:
            link = f" ({self.artefact_url})" if self.artefact_url else ""
            return (
                f"Where to get it: the {self.artefact} artefact of the nightly run{link}, "
                f"downloaded into a folder of that name (gh run download -n {self.artefact} "
                f"-D {self.artefact}); it holds this town's bundle, {source.name}."
            )
        if self._in_demo_cache(source) is not None:
            return (
                "Where to get it: a town of the bundled demo fleet, simulated by reportgen "
                "build (with no source) into reportgen's cache folder ($REPORTGEN_CACHE_DIR, "
                "else ~/.cache/reportgen); run the command there."
            )
        if source.is_absolute():
            return "Where to get it: the path reportgen build was given."
        return "Where to get it: the path reportgen build was given, from the folder it ran in."

    def _in_demo_cache(self, source: Path) -> Path | None:
        if not self.demo_cache:
            return None
        try:
            return source.relative_to(self.demo_cache)
        except ValueError:
            return None


@dataclass(frozen=True)
class NamingLoader:
    """A town loader that names each town's file as its pages should (``TownRun.replay_db``,
    ``replay_where``, and the ``--db`` of every finding's command). Picklable when the
    loader it wraps is, so it travels to worker processes like that loader."""

    loader: LoadRun
    names: SourceNames = SourceNames()

    @property
    def cache_key(self) -> str | None:
        """The wrapped loader's key and the names (``None``: the loader cannot be cached)."""
        inner = getattr(self.loader, "cache_key", None)
        if not isinstance(inner, str):
            return None
        names = self.names
        return f"{inner}:names={names.artefact}\0{names.artefact_url}\0{names.demo_cache}"

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        run = self.loader(source, window_from, window_to)
        run.replay_db = self.names.db(source)
        run.replay_where = self.names.where(source)
        for finding in (run.diagnosis or {}).get("findings") or ():
            finding["replay_command"] = with_db(str(finding.get("replay_command", "")), run)
        return run


def with_db(command: str, run: TownRun) -> str:
    """``command`` (a ``reportgen replay --db X …`` line) with ``--db`` naming
    ``run.replay_db``; any other text is returned as it is."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if "--db" not in words[:-1] or not run.replay_db:
        return command
    at = words.index("--db") + 1
    return shlex.join([*words[:at], run.replay_db, *words[at + 1 :]])


def run_url(env: Mapping[str, str]) -> str:
    """The page of the GitHub Actions run ``env`` describes (its artefacts are listed
    there); "" outside GitHub Actions."""
    parts = [env.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return ""
    server, repository, run_id = parts
    return f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}"
