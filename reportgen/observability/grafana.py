"""Grafana: add the reconciler row to a dashboard, emit alert rules, check dashboards.

The input is upstream's "Gastown Operations" dashboard (classic JSON model,
Grafana 12.4 export). Its one datasource is the Altinity ClickHouse plugin
(``vertamedia-clickhouse-datasource``) over the Cloudflare Workers Analytics
Engine SQL API; the dataset is ``gastown_events``. The engine writes one
``reconciler_tick`` row per tick and town with upstream's column mapping:

========  ===================================================
blob6     town id
blob10    actions by type, a JSON object ``{"type": count}``
double1   reconcile wall clock (ms)
double2   events drained
double3   actions emitted
double4   side effects attempted
double5   side effects succeeded
double6   side effects failed
double7   invariant violations
double8   pending event count
========  ===================================================

Analytics Engine samples rows, so sums are ``SUM(_sample_interval * x)`` and
averages ``SUM(_sample_interval * x) / SUM(_sample_interval)``.

Everything is hand-written JSON built by small functions (no Grafana SDK):
the generated objects are sorted by key the way Grafana exports them, and the
rest of the dashboard keeps its key order, so output is byte-stable.

This module is the entry point (files in, files out) and re-exports the
parts: the panels and queries (:mod:`.grafana_panels`), placing them in a
dashboard (:mod:`.grafana_row`), the alert rules (:mod:`.alerts`) and the
dashboard checks (:mod:`.grafana_check`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reportgen.errors import BadInputError
from reportgen.observability.alerts import alert_rules, alerts_yaml
from reportgen.observability.grafana_check import WARNING, check_dashboard, is_warning
from reportgen.observability.grafana_panels import MARKER, SPAN_NULLS_MS
from reportgen.observability.grafana_row import (
    add_reconciler_row,
    dashboard_datasource,
    reconciler_panels,
)

__all__ = [
    "MARKER",
    "SPAN_NULLS_MS",
    "WARNING",
    "add_reconciler_row",
    "alert_rules",
    "alerts_yaml",
    "check_dashboard",
    "check_dashboard_file",
    "dashboard_datasource",
    "dashboard_json",
    "is_warning",
    "load_dashboard",
    "reconciler_panels",
    "update_dashboard_file",
    "write_atomic",
]


def load_dashboard(path: Path) -> dict[str, Any]:
    """Read a dashboard JSON file; :class:`BadInputError` names the file and problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path}: cannot read: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInputError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: top level is a JSON {type(data).__name__}, not an object")
    if not isinstance(data.get("panels", []), list):
        raise BadInputError(f"{path}: 'panels' is not a list")
    return data


def dashboard_json(dashboard: dict[str, Any]) -> str:
    """Grafana-style JSON: key order kept, indent 2, trailing newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise BadInputError(f"{path}: cannot write: {err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BadInputError(f"{path}: cannot write: {err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_dashboard_file(in_path: Path, out_path: Path, alerts_path: Path | None = None) -> None:
    """``reportgen dashboard --in --out [--alerts]``: add the row, optionally write rules."""
    dashboard = load_dashboard(in_path)
    try:
        updated = add_reconciler_row(dashboard)
        rules = alert_rules(updated) if alerts_path is not None else None
    except BadInputError as err:
        raise BadInputError(f"{in_path}: {err}") from None
    write_atomic(out_path, dashboard_json(updated))
    if alerts_path is not None and rules is not None:
        write_atomic(alerts_path, alerts_yaml(rules))


def check_dashboard_file(path: Path) -> list[str]:
    """``reportgen dashboard --check FILE``: the problems :func:`check_dashboard` finds."""
    return check_dashboard(load_dashboard(path))
