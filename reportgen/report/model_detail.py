"""Entity pages ("what happened to bead X") and violation episode pages (the incident permalink)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reportgen.diagnose.episodes import Episode, to_ms
from reportgen.report.model import EntityLink, EpisodeRow, invariant_description, town_href
from reportgen.report.model_town import TownData, tick_row
from reportgen.report.text import clean, compact, ellipsis, fmt_time, slug
from reportgen.report.touch import ids_in, violation_ids

ENTITY_ROOT = "../../../"


@dataclass
class EntityPage:
    """Everything that touched one bead, agent or rig in the window, in time order."""

    kind: str
    title: str
    root: str
    anchor: str
    town_id: str
    town_href: str
    entity: dict[str, Any]
    strip: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    episodes: list[EpisodeRow]
    rows: list[dict[str, Any]]


@dataclass
class ViolationPage:
    """One violation episode: verdict, explanation, witness ticks, the replay command."""

    kind: str
    title: str
    root: str
    episode: EpisodeRow
    description: str
    explanation: list[dict[str, Any]]
    explanation_text: str
    messages: list[str]
    witness: list[dict[str, Any]]
    fidelity: str
    caveat: str | None
    prev_href: str | None
    next_href: str | None


# ── Entity pages ─────────────────────────────────────────────────────────


def _items(tick: Mapping[str, Any]) -> Iterator[tuple[str, str, str, set[tuple[str, str]]]]:
    """``(what, type, text, touched)`` for every item of a tick that names entities."""
    for e in tick.get("events") or ():
        text = f"{e.get('outcome')}" + (f": {e.get('error')}" if e.get("error") else "")
        yield "event", str(e.get("event_type")), text, set(ids_in(e))
    for a in tick.get("actions") or ():
        body = {k: v for k, v in a.items() if k != "type"}
        yield "action", str(a.get("type")), compact(body), set(ids_in(a))
    for o in (tick.get("side_effects") or {}).get("outcomes") or ():
        text = ("ok" if o.get("ok") else "FAILED") + f": {o.get('detail', '')}"
        yield "effect", str(o.get("type")), text, set(ids_in(o))
    for v in tick.get("violations") or ():
        yield (
            "violation",
            f"invariant {v.get('invariant')}",
            str(v.get("message")),
            set(violation_ids(v)),
        )


def entity_rows(data: TownData) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per entity, its timeline rows; identical consecutive rows fold into one with a count."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for tick in data.run.ticks:
        at = str(tick["at"])
        for what, type_, text, touched in _items(tick):
            for kind, entity_id in sorted(touched):
                key = (data.entities.kind(kind, entity_id), entity_id)
                lst = rows.setdefault(key, [])
                last = lst[-1] if lst else None
                if last and (last["what"], last["type"], last["full"]) == (what, type_, text):
                    last["count"] += 1
                    last["to_label"] = fmt_time(at)
                    continue
                lst.append(
                    {
                        "what": what,
                        "type": clean(type_),
                        "full": text,
                        "text": ellipsis(text, 400),
                        "at": at,
                        "label": fmt_time(at),
                        "href": data.tick_href(at),
                        "count": 1,
                        "to_label": None,
                    }
                )
    for lst in rows.values():
        for row in lst:
            row["full"] = clean(row["full"])
    return rows


def all_transitions(data: TownData) -> dict[str, list[dict[str, Any]]]:
    """Per entity id, its status changes in the window (one pass over ticks and bead events)."""
    found: dict[str, dict[tuple[int, str], dict[str, Any]]] = {}
    for tick in data.run.ticks:
        at = str(tick["at"])
        for a in tick.get("actions") or ():
            kind = a.get("type")
            if kind in ("transition_bead", "transition_agent"):
                target = a.get("bead_id") if kind == "transition_bead" else a.get("agent_id")
                to = str(a.get("to"))
                found.setdefault(str(target), {})[(to_ms(at), to)] = {
                    "at": at,
                    "status": to,
                    "via": str(kind),
                }
    for ev in data.run.bead_events:
        at = str(ev.get("created_at"))
        if ev.get("event_type") == "status_changed" and (
            data.run.window_from <= at <= data.run.window_to
        ):
            new = str(ev.get("new_value"))
            found.setdefault(str(ev.get("bead_id")), {}).setdefault(
                (to_ms(at), new), {"at": at, "status": new, "via": "bead event"}
            )
    out: dict[str, list[dict[str, Any]]] = {}
    for entity_id, points in found.items():
        rows = [points[k] for k in sorted(points)]
        for t in rows:
            t.update(
                label=fmt_time(t["at"]), href=data.tick_href(t["at"]), status=clean(t["status"])
            )
        out[entity_id] = rows
    return out


def _strip(
    data: TownData, transitions: list[dict[str, Any]], final: str | None
) -> list[dict[str, Any]]:
    """Status segments across the window, as percentages of its length (a CSS bar)."""
    start, end = to_ms(data.run.window_from), to_ms(data.run.window_to)
    span = max(1, end - start)
    points = [(max(start, to_ms(t["at"])), t["status"]) for t in transitions]
    if not points:
        return [{"status": clean(final or "unknown"), "pct": 100.0, "label": "whole window"}]
    segments: list[dict[str, Any]] = []
    if points[0][0] > start:
        segments.append({"status": "before", "from": start, "to": points[0][0]})
    for i, (ms, status) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else end
        segments.append({"status": status, "from": ms, "to": max(ms, nxt)})
    return [
        {
            "status": s["status"],
            "pct": round(100.0 * (s["to"] - s["from"]) / span, 3),
            "label": f"{s['status']}",
        }
        for s in segments
        if s["to"] > s["from"]
    ]


def _rig_link(data: TownData, rig: str | None) -> dict[str, Any] | None:
    """A link to the rig's page, or the rig as plain text when nothing in the window touched it."""
    if not rig:
        return None
    link = asdict(data.entities.link("rig", rig))
    if ("rig", rig) not in data.touched:
        link["href"] = ""
    return link


def entity_pages(data: TownData) -> Iterator[tuple[EntityLink, EntityPage]]:
    """One page per entity touched by the window's events, actions, effects or violations."""
    all_rows = entity_rows(data)
    transitions_of = all_transitions(data)
    by_entity: dict[tuple[str, str], list[EpisodeRow]] = {}
    for ep in data.episodes:
        for link in data.rows[ep.id].entities:
            by_entity.setdefault((link.kind, link.id), []).append(data.rows[ep.id])
    for (kind, entity_id), rows in sorted(all_rows.items()):
        link = data.entities.link(kind, entity_id)
        info = data.entities.info.get(entity_id)
        transitions = transitions_of.get(entity_id, [])
        rig = info.rig_id if info else None
        entity: dict[str, Any] = {
            "id": clean(entity_id),
            "kind": link.kind,
            "type": clean(info.type) if info else None,
            "title": clean(info.title) if info else None,
            "status": clean(info.status) if info and info.status else None,
            "rig": _rig_link(data, rig),
            "known": info is not None,
        }
        yield (
            link,
            EntityPage(
                kind="entity",
                title=f"{link.kind} {link.label}",
                root=ENTITY_ROOT,
                anchor=f"e-{link.kind}-{slug(entity_id)}",
                town_id=clean(data.run.town_id),
                town_href=town_href(data.run.town_id),
                entity=entity,
                strip=_strip(data, transitions, entity["status"]),
                transitions=transitions,
                episodes=by_entity.get((link.kind, link.id), []),
                rows=rows,
            ),
        )


def linked_entities(data: TownData) -> set[tuple[str, str]]:
    """``(kind, id)`` of every entity page the town's pages may link to."""
    return {(data.entities.kind(k, i), i) for k, i in data.touched}


# ── Violation pages ──────────────────────────────────────────────────────


def _witness(data: TownData, ep: Episode) -> list[dict[str, Any]]:
    """The ticks that show the episode: the one before, the first, the last, the clearing one."""
    ticks = data.run.ticks
    index = data.tick_index
    first = index.get(ep.first_at, 0)
    wanted = {first - 1, first, index.get(ep.last_at, first)}
    if ep.cleared_at is not None:
        wanted.add(index.get(ep.cleared_at, first))
    ids = set(ep.entities.all_ids())
    out = []
    for i in sorted(w for w in wanted if 0 <= w < len(ticks)):
        row = tick_row(data, i)
        row["href"] = data.tick_href(str(ticks[i]["at"]))
        row["anchor"] = f"w-{ep.id}-{row['ms']}"
        row["role"] = _role(ep, str(ticks[i]["at"]))
        row["events"] = [e for e in row["events"] if any(lk["id"] in ids for lk in e["links"])]
        row["actions"] = [
            a
            for a in row["actions"]
            if any(f["link"] and f["link"]["id"] in ids for f in a["fields"])
        ]
        row["effects"] = [e for e in row["effects"] if any(lk["id"] in ids for lk in e["links"])]
        out.append(row)
    return out


def _role(ep: Episode, at: str) -> str:
    if at == ep.first_at:
        return "first tick"
    if at == ep.last_at:
        return "last tick"
    if at == ep.cleared_at:
        return "cleared"
    return "before"


def violation_pages(data: TownData) -> Iterator[ViolationPage]:
    """One page per episode, in the town's order; prev/next stay within the town."""
    eps = data.episodes
    for i, ep in enumerate(eps):
        expl = data.explanations[ep.id]
        row = data.rows[ep.id]
        yield ViolationPage(
            kind="violation",
            title=f"Invariant {ep.invariant}: {row.title}",
            root="../",
            episode=row,
            description=invariant_description(ep.invariant),
            explanation=expl.parts,
            explanation_text=expl.plain,
            messages=[clean(m) for m in ep.messages],
            witness=_witness(data, ep),
            fidelity=clean(data.run.fidelity),
            caveat=clean(data.run.caveat) if data.run.caveat else None,
            prev_href=data.rows[eps[i - 1].id].href if i > 0 else None,
            next_href=data.rows[eps[i + 1].id].href if i + 1 < len(eps) else None,
        )
