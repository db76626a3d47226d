"""Fleet builds: executors give byte-identical sites, incremental rebuilds, failure isolation.

The towns are real: small simulated towns, replayed by the real
:class:`ReplayLoader` (so tasks are pickled to worker processes and Dask
workers exactly as in production), plus broken sources.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import support.report_fixtures as rf
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.errors import BadInputError
from reportgen.replay import LATEST_ENTITIES_CAVEAT, RECORDED_CAVEAT
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import BuildSummary, build_site
from reportgen.report.executors import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SerialExecutor,
    make_executor,
)
from reportgen.report.fleet import default_cache
from reportgen.report.site import Assets
from reportgen.sim import simulate_town
from reportgen.town_run import TownRun

STUB_ASSETS = Assets(css="/* css */", js="// js", vega="// vega", vega_version="test")
SCENARIOS = ("review-round-stuck", "healthy-day", "working-agent-no-hook")


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 1 h simulated towns and a corrupt database, in one directory."""
    folder = tmp_path_factory.mktemp("towns")
    for i, scenario in enumerate(SCENARIOS):
        result = simulate_town(scenario, seed=20 + i, hours=1, out_dir=folder)
        assert result.path is not None
        result.path.rename(folder / f"town-{i}.sqlite")
    (folder / "zz-corrupt.sqlite").write_bytes(b"this is not a database" * 100)
    return folder


def sources(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.sqlite"))


def build(folder: Path, out: Path, executor: Executor, **kw: object) -> BuildSummary:
    kw.setdefault("load_run", ReplayLoader())
    return build_site(
        sources(folder),
        out,
        executor=executor,
        assets=STUB_ASSETS,
        **kw,  # type: ignore[arg-type]
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def pool_site(towns: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pool") / "site"
    summary = build(towns, out, ProcessExecutor(2), incremental=False)
    assert (summary.towns, summary.towns_failed) == (4, 1)
    return out


def test_pool_and_serial_build_byte_identical_sites(
    towns: Path, pool_site: Path, tmp_path: Path
) -> None:
    build(towns, tmp_path / "serial", SerialExecutor(), incremental=False)
    assert tree(tmp_path / "serial") == tree(pool_site)
    assert rf.broken_links(pool_site) == []


def test_dask_cluster_builds_the_same_site_as_the_local_pool(
    towns: Path, pool_site: Path, tmp_path: Path
) -> None:
    if os.environ.get("CI"):  # CI installs the dask extra: a missing package is a failure
        import distributed
    else:
        distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        summary = build(towns, tmp_path / "dask", DaskExecutor(cluster.scheduler_address))
    assert (summary.towns, summary.towns_failed) == (4, 1)
    assert tree(tmp_path / "dask") == tree(pool_site)


def test_a_broken_town_is_listed_with_its_file_and_the_others_build(pool_site: Path) -> None:
    index = json.loads((pool_site / "index.json").read_text(encoding="utf-8"))
    states = {t["town_id"]: t["state"] for t in index["towns"]}
    assert states.pop("zz-corrupt") == "failed"
    assert len(states) == 3 and "failed" not in states.values()
    failed = next(t for t in index["towns"] if t["state"] == "failed")
    assert "zz-corrupt.sqlite" in failed["error"] and failed["error"].split(":")[0].endswith(
        "Error"
    )
    assert "zz-corrupt.sqlite" in (pool_site / "index.html").read_text(encoding="utf-8")


def test_a_missing_source_fails_alone(towns: Path, tmp_path: Path) -> None:
    missing = towns / "gone.sqlite"
    summary = build_site(
        [*sources(towns)[:1], missing],
        tmp_path / "s",
        jobs=1,
        assets=STUB_ASSETS,
        load_run=ReplayLoader(),
    )
    assert (summary.towns, summary.towns_failed) == (2, 1)
    assert summary.failures[0][0] == str(missing) and "gone.sqlite" in summary.failures[0][1]


def test_incremental_rebuild_skips_unchanged_towns(towns: Path, tmp_path: Path) -> None:
    folder = tmp_path / "towns"
    shutil.copytree(towns, folder)
    out = tmp_path / "site"
    first = build(folder, out, ProcessExecutor(2))
    assert (first.skipped, first.towns_failed) == (0, 1)
    before = tree(out)
    again = build(folder, out, ProcessExecutor(2))
    assert again.skipped == 3 and again.towns_failed == 1  # a failed town is always retried
    assert "3 skipped as unchanged, 1 failed" in again.text()
    assert tree(out) == before
    # one town's database changes: only that town is rebuilt
    other = simulate_town("multi-pr-rig", seed=99, hours=1, out_dir=tmp_path)
    assert other.path is not None
    other.path.replace(folder / "town-1.sqlite")
    changed = build(folder, out, SerialExecutor())
    assert changed.skipped == 2
    assert tree(out) != before
    # --no-incremental rebuilds everything, and the result is the same site
    full = build(folder, out, SerialExecutor(), incremental=False)
    assert full.skipped == 0
    rebuilt = tree(out)
    assert build(folder, out, SerialExecutor()).skipped == 3
    assert tree(out) == rebuilt


def test_history_and_options_are_part_of_the_key(towns: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    build(towns, one, SerialExecutor())
    build(towns, two, SerialExecutor())
    # the previous run's episodes decide new / persisting: a town with episodes is rebuilt
    with_history = build(towns, two, SerialExecutor(), history_path=one)
    assert with_history.persisting > 0 and with_history.new == 0
    assert with_history.skipped < 3
    assert build(towns, two, SerialExecutor(), history_path=one).skipped == 3
    recover = build_site(
        sources(towns),
        two,
        executor=SerialExecutor(),
        assets=STUB_ASSETS,
        load_run=ReplayLoader(auto_recover=frozenset({7})),
        history_path=one,
    )
    assert recover.skipped == 0


def test_cache_lives_beside_the_site_and_holds_only_the_last_build(
    towns: Path, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build(towns, out, SerialExecutor())
    cache = default_cache(out)
    assert cache.parent == out.parent and not (out / ".cache").exists()
    entries = sorted(cache.glob("towns/*/*"))
    assert len(entries) == 3 and not (cache / "staging").exists()
    build_site(
        sources(towns)[:1],
        out,
        executor=SerialExecutor(),
        assets=STUB_ASSETS,
        load_run=ReplayLoader(),
    )
    assert len(list(cache.glob("towns/*/*"))) == 1
    # pages are hard links into the cache: no second copy on disk
    page = next(out.glob("towns/*/index.html"))
    assert page.stat().st_nlink == 2


def test_uncacheable_loader_leaves_nothing_beside_the_site(tmp_path: Path) -> None:
    runs = {"a.sqlite": rf.scripted_town("town-alpha")}
    build_site([Path("a.sqlite")], tmp_path / "site", load_run=rf.loader(runs))
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_cli_executor_options_and_partial_failure_exit_code(towns: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["build", str(towns), "--out", str(tmp_path / "site"), "--jobs", "2"]
    first = runner.invoke(main, args)
    assert first.exit_code == 4, first.output
    assert "0 skipped as unchanged, 1 failed" in first.output
    second = runner.invoke(main, args)
    assert "3 skipped as unchanged, 1 failed" in second.output
    assert runner.invoke(main, [*args, "--no-incremental"]).output.count("0 skipped") == 1
    bad = runner.invoke(main, [*args, "--executor", "dask"])
    assert bad.exit_code == 2 and "--scheduler" in bad.output


def test_make_executor_defaults_to_a_pool_of_every_core() -> None:
    executor = make_executor("local", None, None)
    assert executor == ProcessExecutor(len(os.sched_getaffinity(0)))
    assert make_executor("dask", None, "tcp://h:1") == DaskExecutor("tcp://h:1")


@dataclasses.dataclass(frozen=True)
class KillingLoader:
    """Replays every town, except that loading ``victim`` kills the worker process outright."""

    victim: str

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        if source.name == self.victim:
            os._exit(9)  # what the OOM killer does: no exception, no cleanup
        return ReplayLoader()(source, window_from, window_to)


def test_a_worker_killed_mid_town_fails_that_town_only(towns: Path, tmp_path: Path) -> None:
    summary = build_site(
        sources(towns),
        tmp_path / "site",
        executor=ProcessExecutor(2),
        assets=STUB_ASSETS,
        load_run=KillingLoader("town-1.sqlite"),
    )
    assert [(Path(s).name, "died" in why) for s, why in summary.failures] == [
        ("town-1.sqlite", True),
        ("zz-corrupt.sqlite", False),
    ]
    assert summary.towns - summary.towns_failed == 2


def test_a_source_listed_twice_is_built_once(towns: Path, tmp_path: Path) -> None:
    first = sources(towns)[0]
    summary = build_site(
        [first, first],
        tmp_path / "site",
        executor=ProcessExecutor(2),
        assets=STUB_ASSETS,
        load_run=ReplayLoader(),
    )
    assert (summary.towns, summary.towns_failed) == (2, 1)
    assert "listed more than once" in summary.failures[0][1]


def test_two_sources_of_one_town_keep_the_first_listed(towns: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(sources(towns)[0], copy)
    out = tmp_path / "site"
    summary = build_site(
        [copy, sources(towns)[0]],
        out,
        executor=ProcessExecutor(2),
        assets=STUB_ASSETS,
        load_run=ReplayLoader(),
    )
    assert [Path(s).name for s, _ in summary.failures] == ["town-0.sqlite"]
    assert "appears in more than one source" in summary.failures[0][1]
    assert rf.broken_links(out) == []


def _town_page(site: Path, town_id: str) -> dict[str, object]:
    page = site / "towns" / town_id / "index.json"
    loaded: dict[str, object] = json.loads(page.read_text(encoding="utf-8"))
    return loaded


#: Where the ticks come from: the fidelity, its caveat, the compared ticks, and the chart
#: captions (each says whether its figures are recorded or replayed).
PROVENANCE = {"fidelity", "caveat", "compared_ticks", "caption"}


def _without(value: object, keys: set[str]) -> object:
    """``value`` with ``keys`` removed from every object, at any depth."""
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def test_ticks_auto_shows_a_complete_record_and_replay_verifies_it(tmp_path: Path) -> None:
    """``--ticks auto`` (the default) shows the record; ``replay`` re-runs and compares it.

    Both give the same ticks, totals and episodes: only the fidelity, the caveat
    and the count of compared ticks differ.
    """
    towns = tmp_path / "towns"
    towns.mkdir()
    result = simulate_town("multi-pr-rig", hours=0.5, out_dir=towns)
    pages = {}
    for name, extra in (
        ("auto", []),
        ("recorded", ["--ticks", "recorded"]),
        ("replay", ["--ticks", "replay"]),
    ):
        run = CliRunner().invoke(
            main, ["build", str(towns), "--out", str(tmp_path / name), "--jobs", "1", *extra]
        )
        assert run.exit_code == 0, run.output
        shown = "0 towns from their record, 1 replayed" if name == "replay" else "1 town from"
        assert shown in run.output
        pages[name] = _town_page(tmp_path / name, result.town_id)
    auto, recorded, replayed = pages["auto"], pages["recorded"], pages["replay"]
    assert auto == recorded
    assert (replayed["fidelity"], auto["fidelity"]) == ("exact", "recorded")
    assert replayed["divergence"] is None and replayed["compared_ticks"] > 0
    assert auto["caveat"] == RECORDED_CAVEAT and auto["compared_ticks"] == 0
    assert _without(auto, PROVENANCE) == _without(replayed, PROVENANCE)
    bad = CliRunner().invoke(
        main, ["build", str(towns), "--ticks", "recorded", "--auto-recover", "7"]
    )
    assert bad.exit_code == 2 and "cannot be combined with --ticks recorded" in bad.stderr


@pytest.fixture(scope="module")
def recorded_town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recorded")
    result = simulate_town("healthy-day", seed=3, hours=1, out_dir=folder)
    assert result.path is not None
    return result.path


def _altered(source: Path, copy: Path, sql: str) -> Path:
    """A copy of ``source`` with one statement run on it."""
    shutil.copy(source, copy)
    with closing(sqlite3.connect(copy)) as conn:
        conn.execute(sql)
        conn.commit()
    return copy


def test_ticks_auto_replays_when_the_record_cannot_stand_for_a_replay(
    recorded_town: Path, tmp_path: Path
) -> None:
    """A missing tick record, an earlier window, a bundle or auto-recovery: replay."""
    from reportgen.replay import open_source
    from reportgen.replay.export import export

    auto = ReplayLoader()
    assert auto(recorded_town, None, None).fidelity == "recorded"
    first, last = open_source(recorded_town, copy=False).journal_range() or ("", "")
    earlier = auto(recorded_town, first, "2026-03-16T08:30:00.000Z")
    assert earlier.fidelity == "exact" and earlier.compared_ticks > 0
    assert ReplayLoader(auto_recover=frozenset({7}))(recorded_town, None, None).fidelity == "exact"

    gap = _altered(recorded_town, tmp_path / "gap.sqlite",
                   "DELETE FROM rg_ticks WHERE seq = (SELECT max(seq) FROM rg_ticks)")  # fmt: skip
    assert auto(gap, None, None).fidelity == "exact"

    bundle = tmp_path / "window.bundle.sqlite"
    export(recorded_town, first, last, bundle)
    without_end = _altered(bundle, tmp_path / "old.bundle.sqlite", "DROP TABLE rg_end_state")
    assert auto(without_end, None, None).fidelity == "exact"
    forced = ReplayLoader(ticks="recorded")(without_end, None, None)
    assert forced.fidelity == "recorded"
    assert forced.caveat == RECORDED_CAVEAT + LATEST_ENTITIES_CAVEAT


def test_a_bundle_with_its_end_state_shows_its_record_like_a_replay(
    recorded_town: Path, tmp_path: Path
) -> None:
    """An exported window carries its end state: ``auto`` shows the record with the
    entities as they were at the window's end, the same as a replay would."""
    from reportgen.replay import open_source
    from reportgen.replay.export import export

    last = (open_source(recorded_town, copy=False).journal_range() or ("", ""))[1]
    window_to = "2026-03-16T08:40:00.000Z"  # inside the town's hour: entities change after it
    bundle = tmp_path / "window.bundle.sqlite"
    export(recorded_town, "2026-03-16T08:10:00.000Z", window_to, bundle)
    shown = ReplayLoader()(bundle, None, None)
    replayed = ReplayLoader(ticks="replay")(bundle, None, None)
    assert (shown.fidelity, replayed.fidelity) == ("recorded", "exact")
    assert shown.caveat == RECORDED_CAVEAT
    assert shown.ticks == replayed.ticks
    assert shown.entities == replayed.entities and shown.bead_events == replayed.bead_events
    latest = ReplayLoader(ticks="recorded")(recorded_town, "2026-03-16T08:10:00.000Z", window_to)
    assert latest.entities != replayed.entities  # the town file is at its end, not at --to
    assert last > window_to


def test_the_tick_source_is_part_of_the_incremental_key() -> None:
    keys = {ReplayLoader(ticks=t).cache_key for t in ("auto", "recorded", "replay")}
    assert len(keys) == 3
    with pytest.raises(BadInputError, match="ticks must be one of"):
        ReplayLoader(ticks="sometimes")


@dataclasses.dataclass(frozen=True)
class _Renamed:
    """Loads ``town-K.sqlite`` for any source ``N-K.sqlite``, as its own town ``town-N``."""

    folder: Path

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        number, k = source.stem.split("-")
        run = ReplayLoader()(self.folder / f"town-{k}.sqlite", window_from, window_to)
        run.town_id = f"town-{number}"
        return run


def test_building_town_after_town_does_not_grow_the_process(towns: Path, tmp_path: Path) -> None:
    """Loads pause the garbage collector and rendering freezes the loaded data; the
    cycles that leaves must be collected after each town, or a worker building a
    thousand towns grows by a megabyte per town."""
    import gc

    sources = []
    for n in range(12):
        source = tmp_path / f"{n:02d}-{n % 3}.sqlite"
        source.write_text("placeholder\n", encoding="utf-8")
        sources.append(source)
    alive: list[int] = []
    build_site(
        sources,
        tmp_path / "site",
        executor=SerialExecutor(),
        assets=STUB_ASSETS,
        load_run=_Renamed(towns),
        progress=lambda done, total, label: alive.append(len(gc.get_objects())),
    )
    assert len(alive) == 12
    per_town = (alive[-1] - alive[2]) / 9
    assert per_town < 100, alive  # about 12 (the index rows kept); 480 without collecting
