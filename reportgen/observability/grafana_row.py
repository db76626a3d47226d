"""Place the Reconciler row in a dashboard, replacing a previous run's objects.

:mod:`.grafana_panels` builds the row; this module finds where it goes (below
every other panel, on free ids), which datasource it reuses, and which
objects a previous run left (they carry :data:`~.grafana_panels.MARKER`), so
that running it again on its own output changes nothing.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from reportgen.errors import BadInputError
from reportgen.observability.grafana_json import (
    JSONDict,
    is_id,
    panel_label,
    panels_of,
    var_name,
    variables_of,
    walk_panels,
)
from reportgen.observability.grafana_panels import (
    MARKER,
    PLUGIN_TYPE,
    PREFERRED_BASE_ID,
    ROW_TITLE,
    TOWN_VARIABLE,
    row_and_panels,
    sorted_keys,
    town_variable,
)


def _is_own(obj: Any) -> bool:
    return isinstance(obj, dict) and MARKER in str(obj.get("description", ""))


def dashboard_datasource(dashboard: JSONDict) -> JSONDict:
    """The ClickHouse-plugin datasource reference the dashboard's panels use most.

    Ties go to the first one seen. A dashboard whose panels name none, but that
    has a datasource variable for the plugin, gets ``${VARIABLE}``.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for panel in walk_panels(panels_of(dashboard)):
        if _is_own(panel):
            continue
        refs = [panel.get("datasource")]
        targets = panel.get("targets")
        if isinstance(targets, list):
            refs += [t.get("datasource") for t in targets if isinstance(t, dict)]
        for ref in refs:
            if (
                isinstance(ref, dict)
                and ref.get("type") == PLUGIN_TYPE
                and isinstance(ref.get("uid"), str)
            ):
                counts[(PLUGIN_TYPE, ref["uid"])] += 1
    if counts:
        (ds_type, uid), _ = counts.most_common(1)[0]
        return {"type": ds_type, "uid": uid}
    for var in variables_of(dashboard):
        if (
            isinstance(var, dict)
            and var.get("type") == "datasource"
            and var.get("query") == PLUGIN_TYPE
            and isinstance(var.get("name"), str)
        ):
            return {"type": PLUGIN_TYPE, "uid": "${" + var["name"] + "}"}
    raise BadInputError(
        f"dashboard has no {PLUGIN_TYPE} datasource (on a panel or as a datasource "
        "variable) to reuse for the reconciler panels"
    )


def concrete_uid(dashboard: JSONDict, datasource: JSONDict) -> str:
    """Resolve ``${VAR}`` to the variable's current uid (alert rules need one)."""
    uid = str(datasource["uid"])
    name = var_name(uid)
    if name is None:
        return uid
    for var in variables_of(dashboard):
        if isinstance(var, dict) and var.get("name") == name:
            current = var.get("current")
            value = current.get("value") if isinstance(current, dict) else None
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, str) and value and var_name(value) is None:
                return value
    raise BadInputError(
        f"datasource {uid} has no concrete uid (variable {name!r} has no current value)"
    )


def _own_base_id(panels: list[Any]) -> int | None:
    ids = [p["id"] for p in walk_panels(panels) if _is_own(p) and is_id(p.get("id"))]
    return min(ids) - 1 if ids else None


def _strip_own(panels: list[Any], own_row_id: int | None) -> list[Any]:
    kept: list[Any] = []
    for panel in panels:
        if _is_own(panel):
            continue
        if (
            isinstance(panel, dict)
            and panel.get("type") == "row"
            and panel.get("title") == ROW_TITLE
            and own_row_id is not None
            and panel.get("id") == own_row_id
        ):
            continue
        if isinstance(panel, dict) and isinstance(panel.get("panels"), list):
            children = _strip_own(panel["panels"], own_row_id)
            if children != panel["panels"]:
                panel = {**panel, "panels": children}
        kept.append(panel)
    return kept


def _bottom(panels: list[Any]) -> int:
    bottom = 0
    for panel in panels:
        grid = panel.get("gridPos") if isinstance(panel, dict) else None
        if not isinstance(grid, dict):
            raise BadInputError(f"{panel_label(panel)} has no gridPos")
        y, h = grid.get("y", 0), grid.get("h", 0)
        if not (is_id(y) and is_id(h)):
            raise BadInputError(f"{panel_label(panel)} has a non-integer gridPos y/h")
        bottom = max(bottom, y + h)
    return bottom


def _pick_base_id(panels: list[Any]) -> int:
    used = {p["id"] for p in walk_panels(panels) if is_id(p.get("id"))}
    base = PREFERRED_BASE_ID
    if any(base + i in used for i in range(7)):
        base = (max(used) // 100 + 1) * 100
    return base


def _plugin_version(panels: list[Any]) -> str | None:
    versions = Counter(
        p["pluginVersion"]
        for p in walk_panels(panels)
        if p.get("type") != "row" and isinstance(p.get("pluginVersion"), str)
    )
    return versions.most_common(1)[0][0] if versions else None


def add_reconciler_row(dashboard: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``dashboard`` with the Reconciler row and ``town`` variable.

    The row goes below every other panel; ids start at 200 unless any of
    200–206 is taken, then at the next free hundred. Panels and the variable
    carry :data:`MARKER`, and a previous run's objects are removed first, so
    running this on its own output returns an equal dashboard.
    """
    if not isinstance(dashboard, dict):
        raise BadInputError("dashboard JSON is not an object")
    result = copy.deepcopy(dashboard)
    panels = panels_of(result)
    kept = _strip_own(panels, _own_base_id(panels))
    datasource = dashboard_datasource({**result, "panels": kept})
    base_id = _pick_base_id(kept)
    new = row_and_panels(base_id, _bottom(kept), datasource)
    version = _plugin_version(kept)
    if version is not None:
        for panel in new[1:]:
            panel["pluginVersion"] = version
    result["panels"] = kept + [sorted_keys(p) for p in new]

    templating = result.get("templating")
    if templating is None:
        templating = result["templating"] = {"list": []}
    if not isinstance(templating, dict) or not isinstance(templating.get("list", []), list):
        raise BadInputError("dashboard 'templating.list' is not a list")
    variables: list[Any] = templating.setdefault("list", [])
    variable = sorted_keys(town_variable(datasource))
    for index, var in enumerate(variables):
        if isinstance(var, dict) and var.get("name") == TOWN_VARIABLE:
            if not _is_own(var):
                raise BadInputError(
                    f"dashboard already has a template variable {TOWN_VARIABLE!r} "
                    "that reportgen did not create; rename or remove it"
                )
            variables[index] = variable
            break
    else:
        variables.append(variable)
    return result


def reconciler_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The generated row and panels in a dashboard (as after :func:`add_reconciler_row`)."""
    panels = panels_of(dashboard)
    base = _own_base_id(panels)
    return [
        p
        for p in walk_panels(panels)
        if _is_own(p) or (base is not None and p.get("type") == "row" and p.get("id") == base)
    ]
