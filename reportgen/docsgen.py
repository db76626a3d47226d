"""Generate the reference docs from the code they describe, so they cannot go stale.

``docs/cli.md`` comes from the click commands, ``docs/invariants.md`` from the
invariant registry, ``docs/diagnosis.md`` from the findings catalogue and
``docs/schema.md`` from the table definitions (created
in an in-memory database and read back, so the columns are the ones SQLite
really makes). ``tests/test_docs.py`` fails when a committed file differs from
what this module generates; the fix is always::

    .venv/bin/python -m reportgen.docsgen

``--check`` compares instead of writing and exits 1 when a file is stale (CI
runs it as a separate step so the log names the fix). The output depends on
nothing but the code: no terminal width, no clock, no environment.
"""

from __future__ import annotations

import argparse
import inspect
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import click

from reportgen.town.schema import table_names

#: The repository's docs folder (this module lives in ``reportgen/`` of a checkout).
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
REGENERATE = ".venv/bin/python -m reportgen.docsgen"


def _header(title: str, source: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"<!-- Generated from {source} by `{REGENERATE}`; do not edit by hand. -->",
        "",
    ]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


# --------------------------------------------------------------------------- CLI


def _help_markdown(text: str) -> list[str]:
    """A click docstring as Markdown: paragraphs joined, ``\\b`` blocks kept as code.

    click rewraps paragraphs to the terminal, except those that start with a
    ``\\b`` line; those are examples, so they become fenced code here.
    """
    out: list[str] = []
    for block in inspect.cleandoc(text).split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            body = [line for line in lines[1:] if line.strip()]
            title = body[0] if body and not body[0].startswith(" ") else None
            code = inspect.cleandoc("\n".join(body[1:] if title else body))
            if title:
                out += [title, ""]
            out += ["```", code, "```", ""]
        else:
            out += [" ".join(block.split()), ""]
    return out


def _param_type(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    if isinstance(param.type, click.Choice):
        return " \\| ".join(f"`{c}`" for c in param.type.choices)
    if param.metavar:
        return param.metavar
    name = param.type.name.upper()
    return {"PATH": "PATH", "TEXT": "TEXT", "INTEGER": "INTEGER"}.get(name, name)


def _param_default(param: click.Parameter) -> str:
    """The default as ``--help`` would show it; "" for none (click's info dict hides its sentinel)."""
    if isinstance(param, click.Option) and param.is_flag:
        return ""
    default = param.to_info_dict().get("default")
    if default is None or default in ((), []) or callable(default):
        return ""
    return f"`{default}`"


def _options_table(command: click.Command) -> list[str]:
    rows = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = ", ".join(f"`{n}`" for n in (*param.opts, *param.secondary_opts))
        note = " (repeatable)" if param.multiple else ""
        note += " (required)" if param.required else ""
        rows.append(
            f"| {names} | {_param_type(param)} | {_param_default(param)} | "
            f"{_cell(param.help or '')}{note} |"
        )
    if not rows:
        return []
    return ["| option | value | default | meaning |", "| --- | --- | --- | --- |", *rows, ""]


def _usage(command: click.Command, path: str) -> str:
    ctx = click.Context(command, info_name=path)
    return f"{path} {' '.join(command.collect_usage_pieces(ctx))}"


def _walk(group: click.Group, prefix: str) -> Iterable[tuple[str, click.Command]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _walk(command, f"{prefix} {name}")


def cli_reference(group: click.Group | None = None, prog: str = "reportgen") -> str:
    """``docs/cli.md``: every command's usage, help text and options, in name order."""
    if group is None:
        from reportgen.cli import main as group
    assert group is not None
    lines = _header("Command-line reference", "the click commands in `reportgen/cli/`")
    lines += _help_markdown(group.help or "")
    lines += ["```", _usage(group, prog), "```", ""]
    lines += _options_table(group)
    lines += ["Commands:", ""]
    lines += [
        f"- [`{path}`](#{path.replace(' ', '-')}): {command.get_short_help_str(limit=200)}"
        for path, command in _walk(group, prog)
    ]
    lines.append("")
    for path, command in _walk(group, prog):
        lines += [f"## {path}", "", "```", _usage(command, path), "```", ""]
        lines += _help_markdown(command.help or "")
        lines += _options_table(command)
    lines += ["Exit codes: see the README.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- invariants


def invariants_reference() -> str:
    """``docs/invariants.md``: the registry, in upstream's numbering."""
    from reportgen.town.invariants import INVARIANTS

    lines = _header("Invariant catalogue", "`reportgen/town/invariants.py` (`INVARIANTS`)")
    lines += [
        "The reconciler checks these after every tick. A violation that holds",
        "over consecutive ticks for the same entities is one *episode*: one row",
        "on the report, one permalink, one Sentry issue.",
        "",
        "| # | invariant |",
        "| ---: | --- |",
    ]
    ordered = sorted(INVARIANTS, key=lambda inv: inv.number)
    lines += [
        f"| {inv.number} | [{_cell(inv.title)}](#invariant-{inv.number}) |" for inv in ordered
    ]
    lines.append("")
    for inv in ordered:
        check = getattr(inv.check, "__qualname__", repr(inv.check))
        lines += [
            f'<a id="invariant-{inv.number}"></a>',
            "",
            f"## {inv.number}. {inv.title}",
            "",
            " ".join(inv.description.split()),
            "",
            f"Checked by `{inv.check.__module__}.{check}`.",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- diagnosis


def diagnosis_reference() -> str:
    """``docs/diagnosis.md``: the findings catalogue and what each named scenario is judged."""
    from reportgen.diagnose import registry, scenarios

    lines = _header(
        "Diagnosis: verdicts and findings",
        "`reportgen/diagnose/registry.py` (`KINDS`) and `reportgen/diagnose/scenarios.py`",
    )
    return "\n".join(lines) + "\n" + registry.markdown(scenarios.rows(), scenarios.NOT_SIMULATED)


# --------------------------------------------------------------------------- schema

#: What each table holds, in words. Every table the code creates must be here
#: (a new table without a description fails ``--check`` and the docs test).
TABLES: dict[str, str] = {
    "beads": "Upstream: work items (issues, merge requests, convoys, escalations) and their status.",
    "bead_events": "Upstream: the history of each bead (status changes, hooks, reviews).",
    "bead_dependencies": "Upstream: which bead depends on which (`blocks` by default).",
    "agent_metadata": "Upstream: one row per agent bead: role, identity, status, the bead it is hooked to, last activity.",
    "review_metadata": "Upstream: merge-request details of review beads (branch, PR URL, retries).",
    "escalation_metadata": "Upstream: escalation details (severity, acknowledgement).",
    "convoy_metadata": "Upstream: convoy progress.",
    "rigs": "Upstream: rigs: a name, a git URL and a default branch each.",
    "town_events": "Upstream: the event queue the reconciler drains each tick.",
    "agent_nudges": "Upstream: nudges queued for agents, with delivery state.",
    "rg_meta": "reportgen: key/value facts about the file: `schema_version`, `town_name`.",
    "rg_town_state": "reportgen: what upstream keeps in Durable Object KV (town config, draining flag).",
    "rg_container_last": "reportgen: the last container status observed per agent (the status-change filter).",
    "rg_quarantine": "reportgen: event rows that could not be parsed, kept out of the drain with the reason.",
    "rg_journal": "reportgen: every direct call into the town (sling, heartbeat, agent done, …) with its time and JSON arguments, so a window can be replayed exactly.",
    "rg_ticks": "reportgen: one JSON record per tick (events drained, actions, side effects, violations, metrics); the report's timeline and what a replay is compared with.",
    "rg_analytics": "reportgen: upstream's `reconciler_tick` and `invariant_violations` analytics rows, column for column.",
    "rg_world_log": "reportgen: the world's answers (container status, PR status, …) per tick and call, replayed verbatim.",
    "rg_checkpoints": "reportgen: periodic full-state snapshots, so the state at a time T is rebuilt from the newest checkpoint before T.",
    "rg_open_episodes": "reportgen: violation episodes open in a live run; kept in a database file, a restarted process does not alert twice (`simulate` keeps it in memory: a simulation always starts from an empty town).",
    "manifest": "Bundle only: `key`/`value` rows (JSON values) describing the bundle; see below.",
    "rg_end_state": "Bundle only: the state after the window's last journal row (a checkpoint), so the recorded ticks can be shown with the entities as they were at the window's end without a replay.",
    "rg_window_events": "Bundle only: the source's `town_events` rows created in the window, as they were at export.",
}

#: The keys of a bundle's ``manifest`` table.
MANIFEST_KEYS: dict[str, str] = {
    "format": 'always `"reportgen-bundle"`',
    "bundle_version": "version of this layout (bumped on incompatible changes)",
    "town_id": "the town the bundle was cut from",
    "town_name": "the name a person knows that town by (stored with it, else its file's stem)",
    "from": "window start (ISO, UTC, milliseconds)",
    "to": "window end",
    "base_seq": "journal sequence number of the base state (0: the empty town)",
    "base_at": 'time of the base state (`""`: the empty town)',
    "fidelity": "`exact` (journaled town) or `approximate` (no journal: current state)",
    "caveat": "why an approximate replay may differ, or null",
    "source_kind": "`town` or `bundle` (a bundle cut from a bundle)",
    "source_name": "file name of the source database",
    "source_sha256": "SHA-256 of the source file at export",
    "schema_version": "version of the `rg_*` tables",
    "reportgen_version": "the reportgen that wrote it",
    "counts": "rows per table (`journal`, `ticks`, `window_events`, …)",
}

MANIFEST_DDL = "CREATE TABLE manifest (key text primary key, value text)"


def _ddl_groups() -> list[tuple[str, str, Sequence[str]]]:
    """(section title, intro, DDL statements) for a town database and for a bundle."""
    from reportgen.observability import sentry
    from reportgen.replay import export
    from reportgen.town import record, schema

    return [
        (
            "Upstream tables",
            "Upstream's schema, unchanged, so an upstream dump opens as is "
            "(`reportgen/town/schema.py`, `UPSTREAM_DDL`).",
            [schema.UPSTREAM_DDL],
        ),
        (
            "reportgen's tables in a town database",
            "Created on demand next to upstream's, all prefixed `rg_` so they never "
            "collide. Times are ISO strings in UTC with milliseconds (`…T08:00:00.000Z`); "
            "JSON columns are text.",
            [
                schema.REPORTGEN_DDL,
                schema.JOURNAL_DDL,
                schema.TICKS_DDL,
                record.ANALYTICS_DDL,
                schema.WORLD_LOG_DDL,
                schema.CHECKPOINTS_DDL,
                sentry.OPEN_EPISODES_DDL,
            ],
        ),
        (
            "Bundle-only tables",
            "`reportgen export` writes a bundle: itself a town database (every command "
            "opens it like one) holding the base state in the tables above, the journal, "
            "world answers and tick records after the base up to `to`, and these.",
            [MANIFEST_DDL, export.WINDOW_EVENTS_DDL, schema.END_STATE_DDL],
        ),
    ]


def _columns(ddl: Iterable[str]) -> list[tuple[str, list[tuple[str, str, bool, int]]]]:
    """Tables and columns as SQLite creates them from ``ddl`` (name, type, not null, pk)."""
    conn = sqlite3.connect(":memory:")
    try:
        before = set(table_names(conn))
        for script in ddl:
            conn.executescript(script)
        names = [n for n in table_names(conn) if n not in before and not n.startswith("sqlite_")]
        return [
            (
                name,
                [
                    (str(c[1]), str(c[2]), bool(c[3]), int(c[5]))
                    for c in conn.execute(f'PRAGMA table_info("{name}")')
                ],
            )
            for name in names
        ]
    finally:
        conn.close()


def schema_reference() -> str:
    """``docs/schema.md``: the report store (a town database) and the bundle, table by table."""
    lines = _header(
        "Report store and bundle schema", "the table definitions in `reportgen/` (`*_DDL`)"
    )
    lines += [
        "A *town database* is upstream's SQLite schema plus reportgen's `rg_*` tables;",
        "every report is derived from it. A *bundle* (`reportgen export`) is a",
        "self-contained, byte-reproducible window of one town in the same format.",
        "The site's own store across runs is `history.jsonl` (one JSON line per run;",
        "see `reportgen/report/history.py`).",
        "",
    ]
    missing: list[str] = []
    for title, intro, ddl in _ddl_groups():
        lines += [f"## {title}", "", intro, ""]
        for name, columns in _columns(ddl):
            if name not in TABLES:
                missing.append(name)
            lines += [f"### `{name}`", "", TABLES.get(name, "(undocumented)"), ""]
            lines += ["| column | type | not null | key |", "| --- | --- | --- | --- |"]
            lines += [
                f"| `{col}` | {typ or '—'} | {'yes' if notnull else ''} | {'pk' if pk else ''} |"
                for col, typ, notnull, pk in columns
            ]
            lines.append("")
    if missing:
        raise ValueError(
            "tables without a description in reportgen.docsgen.TABLES: " + ", ".join(missing)
        )
    lines += ["## The bundle manifest", "", "| key | meaning |", "| --- | --- |"]
    lines += [f"| `{key}` | {_cell(text)} |" for key, text in MANIFEST_KEYS.items()]
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- files

GENERATORS: dict[str, Callable[[], str]] = {
    "cli.md": cli_reference,
    "diagnosis.md": diagnosis_reference,
    "invariants.md": invariants_reference,
    "schema.md": schema_reference,
}


def generate() -> dict[str, str]:
    """File name (inside ``docs/``) → its generated text."""
    return {name: make() for name, make in GENERATORS.items()}


def stale(docs: Path = DOCS_DIR) -> list[str]:
    """Names of the generated files in ``docs`` that are missing or differ from the code."""
    out = []
    for name, text in generate().items():
        path = docs / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reportgen.docsgen", description="Regenerate the reference docs."
    )
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="docs folder")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.docs)
        for name in names:
            print(f"{args.docs / name} is out of date: run `{REGENERATE}`", file=sys.stderr)
        return 1 if names else 0
    args.docs.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        path = args.docs / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
