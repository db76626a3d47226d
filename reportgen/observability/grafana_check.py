"""``reportgen dashboard --check``: what makes a Grafana dashboard broken or suspect.

Unique panel ids, unique ``refId`` per panel, every panel inside the
24-column grid, no overlaps, ascending thresholds (a non-null base step is a
warning: Grafana ignores its value), and every datasource reference
resolvable from the file itself.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from reportgen.observability.grafana_json import (
    BUILTIN_DATASOURCES,
    GRID_COLUMNS,
    JSONDict,
    is_id,
    panel_label,
    var_name,
    variables_of,
    walk_panels,
)

# --------------------------------------------------------------------------- #
# Checker
# --------------------------------------------------------------------------- #


def _check_thresholds(where: str, thresholds: Any) -> list[str]:
    if not isinstance(thresholds, dict):
        return [f"{where}: thresholds is not an object"]
    steps = thresholds.get("steps")
    if not isinstance(steps, list) or not steps:
        return [f"{where}: thresholds has no steps"]
    problems: list[str] = []
    values = [s.get("value") if isinstance(s, dict) else None for s in steps]
    if values[0] is not None:
        # Grafana ignores the base step's value (it is -Infinity whatever it says), so
        # this is a warning: upstream's own dashboard has 24 of them.
        problems.append(
            f"{WARNING}{where}: thresholds base step has value {json.dumps(values[0])}; "
            "the first step should be null (-Infinity)"
        )
    previous: float | None = None
    for index, value in enumerate(values[1:], start=2):
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{where}: thresholds step {index} has value {json.dumps(value)}")
            continue
        if previous is not None and value <= previous:
            problems.append(
                f"{where}: thresholds not ascending: step {index} ({value}) "
                f"is not above step {index - 1} ({previous})"
            )
        previous = value
    return problems


def _datasource_index(dashboard: JSONDict) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(variable or input name -> plugin type, concrete uid or name -> plugin type)."""
    by_var, by_uid = _variable_index(dashboard)
    by_var.update(_input_index(dashboard))
    return by_var, by_uid


def _variable_index(dashboard: JSONDict) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The datasource variables: name -> plugin type, and each current value -> plugin type."""
    by_var: dict[str, str | None] = {}
    by_uid: dict[str, str | None] = {}
    for var in variables_of(dashboard):
        if not isinstance(var, dict) or var.get("type") != "datasource":
            continue
        plugin = var.get("query") if isinstance(var.get("query"), str) else None
        if isinstance(var.get("name"), str):
            by_var[var["name"]] = plugin
        current = var.get("current")
        if isinstance(current, dict):
            for key in ("value", "text"):
                value = current.get(key)
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, str) and v:
                        by_uid[v] = plugin
    return by_var, by_uid


def _input_index(dashboard: JSONDict) -> dict[str, str | None]:
    """The datasource ``__inputs`` of an exported dashboard: name -> plugin type."""
    inputs = dashboard.get("__inputs")
    by_name: dict[str, str | None] = {}
    for item in inputs if isinstance(inputs, list) else []:
        if (
            isinstance(item, dict)
            and item.get("type") == "datasource"
            and isinstance(item.get("name"), str)
        ):
            plugin_id = item.get("pluginId")
            by_name[item["name"]] = plugin_id if isinstance(plugin_id, str) else None
    return by_name


def _ref_uid(where: str, ref: Any) -> tuple[str | None, str | None, list[str]]:
    """(uid, type, problems) of a datasource reference that is not ``None``.

    No uid and no problem is a reference by type alone, which needs no checking.
    """
    if isinstance(ref, str):
        return ref, None, []
    if not isinstance(ref, dict):
        return None, None, [f"{where}: datasource reference {json.dumps(ref)} is not an object"]
    raw_uid = ref.get("uid")
    ds_type = ref.get("type") if isinstance(ref.get("type"), str) else None
    if raw_uid is None:
        problem = [] if ds_type else [f"{where}: datasource reference has neither uid nor type"]
        return None, ds_type, problem
    if not isinstance(raw_uid, str):
        return None, ds_type, [f"{where}: datasource uid {json.dumps(raw_uid)} is not a string"]
    return raw_uid, ds_type, []


def _check_ref(
    where: str,
    ref: Any,
    by_var: dict[str, str | None],
    by_uid: dict[str, str | None],
    known: Collection[str],
) -> list[str]:
    if ref is None:
        return []  # the default datasource
    uid, ds_type, problems = _ref_uid(where, ref)
    if uid is None or uid in BUILTIN_DATASOURCES or uid in known:
        return problems
    name = var_name(uid)
    if name is not None:
        if name not in by_var:
            return [f"{where}: datasource {uid} names no datasource variable or __inputs entry"]
        declared = by_var[name]
    elif uid in by_uid:
        declared = by_uid[uid]
    else:
        return [
            f"{where}: datasource uid {uid!r} is not resolvable "
            "(no datasource variable or __inputs entry declares it)"
        ]
    if ds_type and declared and ds_type != declared:
        return [f"{where}: datasource {uid} has type {ds_type!r} but is declared as {declared!r}"]
    return []


def _check_grid(panel: JSONDict) -> tuple[list[str], tuple[int, int, int, int] | None]:
    grid = panel.get("gridPos")
    if not isinstance(grid, dict):
        return [f"{panel_label(panel)}: no gridPos"], None
    x, y, w, h = (grid.get(k) for k in ("x", "y", "w", "h"))
    if not all(is_id(v) for v in (x, y, w, h)):
        return [f"{panel_label(panel)}: gridPos {json.dumps(grid)} needs integer x, y, w, h"], None
    assert isinstance(x, int) and isinstance(y, int) and isinstance(w, int) and isinstance(h, int)
    problems = []
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
        problems.append(
            f"{panel_label(panel)}: gridPos x={x} y={y} w={w} h={h} is outside the "
            f"{GRID_COLUMNS}-column grid (needs x >= 0, y >= 0, w >= 1, h >= 1, "
            f"x + w <= {GRID_COLUMNS})"
        )
    return problems, (x, y, w, h)


def _check_layout(panels: list[Any]) -> list[str]:
    problems: list[str] = []
    boxes: list[tuple[JSONDict, tuple[int, int, int, int]]] = []
    for panel in panels:
        if not isinstance(panel, dict):
            continue
        grid_problems, box = _check_grid(panel)
        problems += grid_problems
        if box is not None:
            boxes.append((panel, box))
        children = panel.get("panels")
        if isinstance(children, list) and children:
            problems += _check_layout(children)
    for i, (a, (ax, ay, aw, ah)) in enumerate(boxes):
        for b, (bx, by, bw, bh) in boxes[i + 1 :]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                problems.append(
                    f"{panel_label(a)} (x={ax} y={ay} w={aw} h={ah}) overlaps "
                    f"{panel_label(b)} (x={bx} y={by} w={bw} h={bh})"
                )
    return problems


WARNING = "warning: "


def is_warning(problem: str) -> bool:
    """Whether a ``check_dashboard`` finding is a warning (reported, not failing)."""
    return problem.startswith(WARNING)


def check_dashboard(
    dashboard: dict[str, Any], known_datasource_uids: Collection[str] = ()
) -> list[str]:
    """Problems in a dashboard, each naming the panel (id and title) and what is wrong.

    Checks: unique panel ids; unique ``refId`` per panel; every panel inside the
    24-column grid; no overlapping panels (top level, and within each collapsed
    row); thresholds ascending (defaults and overrides) with a null base step —
    a non-null base step is reported as a warning (prefix ``warning: ``), since
    Grafana ignores its value;
    every datasource reference resolvable from the file itself (built-ins, a
    datasource variable's name or current uid, an ``__inputs`` entry) or listed
    in ``known_datasource_uids``.
    """
    if not isinstance(dashboard, dict):
        return ["dashboard JSON is not an object"]
    panels = dashboard.get("panels", [])
    if not isinstance(panels, list):
        return ["dashboard 'panels' is not a list"]
    by_var, by_uid = _datasource_index(dashboard)
    known = frozenset(known_datasource_uids)

    def check_ref(where: str, ref: Any) -> list[str]:
        return _check_ref(where, ref, by_var, by_uid, known)

    all_panels = list(walk_panels(panels))
    problems = _check_ids(all_panels)
    problems += _check_layout(panels)
    for panel in all_panels:
        name = panel_label(panel)
        problems += _check_targets(name, panel, check_ref)
        problems += check_ref(name, panel.get("datasource"))
        problems += _check_field_config(name, panel.get("fieldConfig"))
    for var in variables_of(dashboard):
        if isinstance(var, dict) and "datasource" in var:
            problems += check_ref(f"variable {var.get('name')!r}", var["datasource"])
    annotations = dashboard.get("annotations")
    if isinstance(annotations, dict) and isinstance(annotations.get("list"), list):
        for ann in annotations["list"]:
            if isinstance(ann, dict) and "datasource" in ann:
                problems += check_ref(f"annotation {ann.get('name')!r}", ann["datasource"])
    return problems


def _check_ids(all_panels: list[JSONDict]) -> list[str]:
    """Every panel id an integer and used once: Grafana links and alerts address panels by id."""
    problems: list[str] = []
    seen: dict[int, list[JSONDict]] = {}
    for panel in all_panels:
        pid = panel.get("id")
        if isinstance(pid, int) and not isinstance(pid, bool):
            seen.setdefault(pid, []).append(panel)
        else:
            problems.append(f"{panel_label(panel)}: id {json.dumps(pid)} is not an integer")
    for pid, owners in seen.items():
        if len(owners) > 1:
            names = ", ".join(panel_label(p) for p in owners)
            problems.append(f"panel id {pid} is used by {len(owners)} panels: {names}")
    return problems


def _check_targets(
    name: str, panel: JSONDict, check_ref: Callable[[str, Any], list[str]]
) -> list[str]:
    """Each target an object with a datasource that resolves and a ``refId`` of its own.

    Expressions and alert conditions address a target by ``refId``, so two
    targets sharing one make the second unreachable.
    """
    problems: list[str] = []
    targets = panel.get("targets", [])
    if not isinstance(targets, list):
        problems.append(f"{name}: targets is not a list")
        targets = []
    ref_ids: Counter[str] = Counter()
    for index, target in enumerate(targets, start=1):
        if not isinstance(target, dict):
            problems.append(f"{name}: target {index} is not an object")
            continue
        ref_id = target.get("refId")
        if not isinstance(ref_id, str) or not ref_id:
            problems.append(f"{name}: target {index} has no refId")
        else:
            ref_ids[ref_id] += 1
        problems += check_ref(f"{name} target {ref_id or index}", target.get("datasource"))
    for ref_id, count in ref_ids.items():
        if count > 1:
            problems.append(f"{name}: refId {ref_id!r} is used by {count} targets")
    return problems


def _check_field_config(name: str, field_config: Any) -> list[str]:
    """Thresholds in the defaults and in every override, named by the override's matcher."""
    if not isinstance(field_config, dict):
        return []
    problems: list[str] = []
    defaults = field_config.get("defaults")
    if isinstance(defaults, dict) and "thresholds" in defaults:
        problems += _check_thresholds(name, defaults["thresholds"])
    overrides = field_config.get("overrides")
    for index, override in enumerate(overrides if isinstance(overrides, list) else []):
        props = override.get("properties") if isinstance(override, dict) else None
        matcher = override.get("matcher") if isinstance(override, dict) else None
        matched = ""
        if isinstance(matcher, dict):
            matched = f" ({matcher.get('id')} {json.dumps(matcher.get('options'))})"
        for prop in props if isinstance(props, list) else []:
            if isinstance(prop, dict) and prop.get("id") == "thresholds":
                where = f"{name} override {index + 1}{matched}"
                problems += _check_thresholds(where, prop.get("value"))
    return problems
