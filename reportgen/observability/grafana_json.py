"""The parts of Grafana's dashboard JSON model that both the generator and the checker read.

Kept apart so that :mod:`.grafana` (which builds the reconciler row) and
:mod:`.grafana_check` (which validates any dashboard) share one reading of
panels, rows, variables and datasource references.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from reportgen.errors import BadInputError

JSONDict = dict[str, Any]

#: Width of Grafana's dashboard grid.
GRID_COLUMNS = 24

#: Datasource uids (and legacy names) Grafana always resolves.
BUILTIN_DATASOURCES = frozenset(
    {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "__expr__"}
)

_VAR_REF = re.compile(r"^\$\{(\w+)(?::[\w-]+)?\}$|^\$(\w+)$|^\[\[(\w+)\]\]$")


def panels_of(dashboard: JSONDict) -> list[Any]:
    """The top-level ``panels`` list (an error for a dashboard whose panels are not a list)."""
    panels = dashboard.get("panels", [])
    if not isinstance(panels, list):
        raise BadInputError("dashboard 'panels' is not a list")
    return panels


def walk_panels(panels: list[Any]) -> Iterator[JSONDict]:
    """Every panel dict, including the children of collapsed rows."""
    for panel in panels:
        if isinstance(panel, dict):
            yield panel
            children = panel.get("panels")
            if isinstance(children, list):
                yield from walk_panels(children)


def variables_of(dashboard: JSONDict) -> list[Any]:
    """The template variables (``templating.list``), or none when the model has no such list."""
    templating = dashboard.get("templating")
    if not isinstance(templating, dict):
        return []
    variables = templating.get("list", [])
    return variables if isinstance(variables, list) else []


def is_id(value: Any) -> bool:
    """An integer that is not a bool (JSON ``true`` would pass ``isinstance(x, int)``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def var_name(uid: str) -> str | None:
    """The variable a ``${name}``, ``$name`` or ``[[name]]`` reference names, else ``None``."""
    match = _VAR_REF.match(uid)
    if match is None:
        return None
    return next(g for g in match.groups() if g)


def panel_label(panel: Any) -> str:
    """How a message names a panel: ``panel <id> "<title>"``."""
    if not isinstance(panel, dict):
        return f"panel {panel!r}"
    pid = panel.get("id")
    title = panel.get("title")
    name = f"panel {pid}" if is_id(pid) else "panel (no id)"
    return f'{name} "{title}"' if isinstance(title, str) else name
