"""The generated docs are current, and the generators cover what they claim to.

Stale reference docs are worse than none, so CI fails when ``docs/cli.md``,
``docs/invariants.md`` or ``docs/schema.md`` differ from what
``reportgen.docsgen`` makes from the code (the message says how to fix it).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reportgen import docsgen
from reportgen.cli import main
from reportgen.town.invariants import INVARIANTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.mark.parametrize("name", sorted(docsgen.GENERATORS))
def test_generated_doc_is_current(name: str) -> None:
    path = DOCS / name
    expected = docsgen.GENERATORS[name]()
    assert path.exists(), f"{path} is missing: run `{docsgen.REGENERATE}`"
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path} is out of date: run `{docsgen.REGENERATE}` and commit the result"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert docsgen.main(["--docs", str(tmp_path)]) == 0
    assert docsgen.main(["--docs", str(tmp_path), "--check"]) == 0
    (tmp_path / "cli.md").write_text("old\n", encoding="utf-8")
    assert docsgen.stale(tmp_path) == ["cli.md"]
    assert docsgen.main(["--docs", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_and_option_is_in_the_cli_reference(name: str) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    command = main.commands[name]
    assert command.help, f"reportgen {name} has no help text"
    assert f"## reportgen {name}\n" in text
    section = text.split(f"## reportgen {name}\n", 1)[1].split("\n## ", 1)[0]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert f"`{param.opts[0]}`" in section, f"{param.opts[0]} of {name} is not documented"


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    narrow = docsgen.cli_reference()
    monkeypatch.setenv("COLUMNS", "200")
    assert docsgen.cli_reference() == narrow


def test_cli_reference_matches_the_help_the_commands_print() -> None:
    """The usage line in the docs is the one ``--help`` prints (same click machinery)."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in main.commands:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0
        usage = result.output.splitlines()[0].removeprefix("Usage: ")
        assert usage.replace("main ", "reportgen ", 1) in text


def test_every_invariant_is_catalogued() -> None:
    text = (DOCS / "invariants.md").read_text(encoding="utf-8")
    for inv in INVARIANTS:
        assert f"## {inv.number}. {inv.title}\n" in text
        assert " ".join(inv.description.split()) in text


def test_every_table_is_described() -> None:
    """A table added to a ``*_DDL`` without a description in ``docsgen.TABLES`` fails here."""
    names = [name for _, _, ddl in docsgen._ddl_groups() for name, _ in docsgen._columns(ddl)]
    assert names, "no tables found"
    assert [n for n in names if n not in docsgen.TABLES] == []
    assert [n for n in docsgen.TABLES if n not in names] == [], "described tables that no DDL makes"


def test_bundle_manifest_keys_are_documented(tmp_path: Path) -> None:
    """A real export's manifest has exactly the keys the schema doc lists."""
    from reportgen.replay import open_source
    from reportgen.replay.export import export

    demo = ROOT / "tests" / "fixtures" / "example-town.sqlite"
    data = open_source(demo).data_range()
    assert data is not None
    first, last = data
    out = tmp_path / "bundle.sqlite"
    export(demo, first, last, out)
    conn = sqlite3.connect(out)
    keys = {row[0] for row in conn.execute("SELECT key FROM manifest")}
    assert json.loads(conn.execute("SELECT value FROM manifest WHERE key='format'").fetchone()[0])
    conn.close()
    assert keys == set(docsgen.MANIFEST_KEYS)


def test_docs_reference_the_files_they_promise() -> None:
    """README and docs/ link to pages that exist (a renamed doc breaks a link here, not later)."""
    import re

    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|png))\)", text):
            base = ROOT if doc.name == "README.md" else DOCS
            assert (base / target).exists(), f"{doc.name} links to missing {target}"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_teaches_by_example(name: str) -> None:
    """Each --help shows two or three runnable examples, and every time option an example value."""
    text = CliRunner().invoke(main, [name, "--help"], terminal_width=200).output
    examples = text.split("Example", 1)[1].split("Options:", 1)[0] if "Example" in text else ""
    runs = [line for line in examples.splitlines() if "reportgen " in line]
    assert 2 <= len(runs) <= 3, (name, runs)
    command = main.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and {"--from", "--to", "--now"} & set(param.opts):
            assert "e.g. 20" in (param.help or ""), (name, param.opts)
