"""The wheel: it holds the templates and assets, no test-only code, and works away from the checkout.

A checkout hides packaging mistakes (the templates sit next to the package,
an editable install imports from the repository), so this test builds a real
wheel from a clean copy of the sources, installs it into a fresh virtualenv
and runs ``reportgen`` from a directory that is not the repository.

The fresh virtualenv gets the dependencies from the test's own environment
through a ``.pth`` line (a plain path entry: the editable install's import
hook there is not run), so nothing is downloaded to install the wheel.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import reportgen

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "reportgen", "templates")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (a stale ``build/`` in the checkout can't leak in)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=IGNORED)
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], src)
    (built,) = dist.glob("reportgen-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_holds_every_template_and_asset(names: set[str]) -> None:
    # hidden files (placeholders such as assets/.keep.css) are not shipped, by design
    expected = {
        f"reportgen/templates/{n}"
        for n in _files(ROOT / "templates")
        if not any(part.startswith(".") for part in n.split("/"))
    }
    shipped = {n for n in names if n.startswith("reportgen/templates/")}
    assert any(n.startswith("reportgen/templates/assets/") for n in expected)
    assert shipped == expected


def test_wheel_holds_every_module(names: set[str]) -> None:
    package = ROOT / "reportgen"
    modules = {f"reportgen/{n}" for n in _files(package) if n.endswith(".py")}
    assert modules - names == set(), "a subpackage is missing from [tool.setuptools] packages"
    assert "reportgen/py.typed" in names


#: Code and data only the tests use, which live under tests/ and must not ship.
TEST_ONLY = ("RecordingWorld", "readback", "example-town", "townbuilder", "report_fixtures")


def test_wheel_holds_no_test_only_code_or_data(wheel: Path, names: set[str]) -> None:
    shipped = [n for n in names if any(word in n for word in TEST_ONLY)]
    assert shipped == []
    assert not [n for n in names if n.endswith(".sqlite")], "a database in the wheel"
    with zipfile.ZipFile(wheel) as zf:
        sources = {n: zf.read(n).decode("utf-8") for n in names if n.endswith(".py")}
    assert [n for n, text in sources.items() if "class RecordingWorld" in text] == []
    assert [n for n, text in sources.items() if "def town_start(" in text] == []


def test_wheel_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(meta_name))
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta["Version"] == reportgen.__version__
    assert {"serve", "dask", "dev"} <= set(meta.get_all("Provides-Extra") or [])
    core = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    heavy = ("fastapi", "uvicorn", "dask", "pytest", "playwright", "mypy")
    assert [r for r in core if r.split()[0].split(">")[0] in heavy] == []
    assert "reportgen = reportgen.cli:main" in entry_points


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; dependencies come from this environment."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv
        ).strip()
    )
    deps = sysconfig.get_paths()["purelib"]
    (site / "_reportgen_test_deps.pth").write_text(deps + "\n", encoding="utf-8")
    _run(
        [
            sys.executable,
            *("-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"),
            str(wheel),
        ],
        venv,
    )
    return venv


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | {"PYTHONDONTWRITEBYTECODE": "1", "HOME": os.environ.get("HOME", str(tmp))}


def test_installed_wheel_imports_from_the_venv(installed: Path, tmp_path: Path) -> None:
    code = (
        "import reportgen, reportgen.resources as r; "
        "print(reportgen.__file__); print(r.templates_dir())"
    )
    out = _run([str(installed / "bin" / "python"), "-c", code], tmp_path, _env(tmp_path))
    module, templates = out.splitlines()
    assert Path(module).is_relative_to(installed)
    assert Path(templates).is_relative_to(installed)
    assert not Path(module).is_relative_to(ROOT)


def test_installed_reportgen_runs_away_from_the_checkout(installed: Path, tmp_path: Path) -> None:
    reportgen_bin = str(installed / "bin" / "reportgen")
    env = _env(tmp_path)
    version = _run([reportgen_bin, "--version"], tmp_path, env)
    assert version.strip() == f"reportgen, version {reportgen.__version__}"
    _run([reportgen_bin, "build", "--out", str(tmp_path / "site")], tmp_path, env)
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "assets/site-" in index
    assert list((tmp_path / "site" / "assets").glob("site-*.css"))
    assert list((tmp_path / "site" / "towns").glob("*/index.html"))
