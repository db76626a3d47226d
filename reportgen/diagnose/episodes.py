"""Violation episodes: consecutive ticks where one invariant holds false for the same entities.

A tick record lists every violation the invariant checks found after that
tick. Reading them one by one is noise (a stuck bead violates on every 5 s
tick for hours); an *episode* is the unit an on-call engineer reasons about:
"invariant 6 held false for bead B and agents A1, A2 from 10:00:40 to
10:01:35, 12 ticks". Its id is a short hash of (town, invariant, entities,
first tick), so the same episode gets the same permalink every time the
same data is reported, and Sentry and the history file key on it.

Deliberately dependency-light (standard library only): Sentry alerting
imports this module without pulling in jinja2 or altair.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reportgen.town import clock
from reportgen.town.invariants import find_invariant

__all__ = [
    "EntityKey",
    "Episode",
    "entity_key",
    "episode_id",
    "find_episodes",
    "stable_id",
    "to_ms",
]

#: How many distinct messages an episode keeps (a message that changes every tick is rare).
MAX_MESSAGES = 5


@dataclass(frozen=True, order=True)
class EntityKey:
    """The entities a violation is about, sorted, so that order never splits an episode."""

    agent_ids: tuple[str, ...] = ()
    bead_ids: tuple[str, ...] = ()
    rig_ids: tuple[str, ...] = ()

    def all_ids(self) -> tuple[str, ...]:
        """Every id, agents first, then beads, then rigs."""
        return self.agent_ids + self.bead_ids + self.rig_ids


def subject_field(invariant: int) -> str | None:
    """The violation field naming the entity an episode of ``invariant`` is about
    (the invariant registry's ``subject``), or ``None`` for an unregistered number."""
    found = find_invariant(invariant)
    return None if found is None else found.subject_field


def subject_id(invariant: int, entities: EntityKey) -> str | None:
    """The id of the entity an episode is about, when its invariant names one."""
    name = subject_field(invariant)
    ids: tuple[str, ...] = getattr(entities, name) if name else ()
    return ids[0] if ids else None


@dataclass
class Episode:
    """One violation episode inside a replayed window.

    ``open_at_end`` is true when the violation still held on the window's last
    tick (the episode may go on); ``open_at_start`` when it already held on the
    first tick (it may have started earlier). ``ticks`` counts ticks in the
    episode; ``duration_ms`` is last tick minus first tick. ``subject`` is the
    entity the invariant names (the rig of #3, the bead of #4/#5/#6, the agent
    of #7): it keys the episode, so an episode of "rig R has several MRs in
    progress" goes on while the MRs involved change. ``entities`` is every
    entity involved at some tick of the episode.
    """

    id: str
    town_id: str
    invariant: int
    entities: EntityKey
    first_at: str
    last_at: str
    ticks: int
    messages: list[str] = field(default_factory=list)
    open_at_start: bool = False
    open_at_end: bool = False
    #: The time of the tick after the last one (when the violation was gone), if any.
    cleared_at: str | None = None
    subject: EntityKey = field(default_factory=EntityKey)

    @property
    def duration_ms(self) -> int:
        return to_ms(self.last_at) - to_ms(self.first_at)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (what the history file and the JSON twins store)."""
        return {
            "id": self.id,
            "town_id": self.town_id,
            "invariant": self.invariant,
            "agent_ids": list(self.entities.agent_ids),
            "bead_ids": list(self.entities.bead_ids),
            "rig_ids": list(self.entities.rig_ids),
            "first_at": self.first_at,
            "last_at": self.last_at,
            "cleared_at": self.cleared_at,
            "ticks": self.ticks,
            "duration_ms": self.duration_ms,
            "messages": list(self.messages),
            "open_at_start": self.open_at_start,
            "open_at_end": self.open_at_end,
        }


#: Epoch ms of an ISO time (:func:`reportgen.town.clock.to_ms`, which is cached: a town's
#: pages convert the same tick times many times over).
to_ms = clock.to_ms


def entity_key(violation: Mapping[str, Any]) -> EntityKey:
    """The entity key of one violation record (``agent_ids``, ``bead_ids``, ``rig_ids``)."""

    def ids(name: str) -> tuple[str, ...]:
        return tuple(sorted({str(v) for v in violation.get(name) or ()}))

    return EntityKey(ids("agent_ids"), ids("bead_ids"), ids("rig_ids"))


def subject_key(invariant: int, violation: Mapping[str, Any]) -> EntityKey:
    """The entity a violation is about (see :func:`subject_field`); all of them if none is named."""
    full = entity_key(violation)
    name = subject_field(invariant)
    ids: tuple[str, ...] = getattr(full, name) if name else ()
    if not ids:
        return full
    return EntityKey(**{name: ids[:1]})  # type: ignore[arg-type]


def violation_key(violation: Mapping[str, Any]) -> tuple[int, EntityKey]:
    """What makes two violations (on consecutive ticks) the same episode."""
    invariant = int(violation["invariant"])
    return invariant, subject_key(invariant, violation)


def _union(a: EntityKey, b: EntityKey) -> EntityKey:
    return EntityKey(
        tuple(sorted({*a.agent_ids, *b.agent_ids})),
        tuple(sorted({*a.bead_ids, *b.bead_ids})),
        tuple(sorted({*a.rig_ids, *b.rig_ids})),
    )


def stable_id(parts: Sequence[Any]) -> str:
    """A short, stable hash of JSON-able ``parts``: the ids of episodes and findings."""
    payload = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:12]


def episode_id(town_id: str, invariant: int, entities: EntityKey, first_at: str) -> str:
    """A short, stable hash of what identifies an episode: the permalink and history key."""
    return stable_id(
        [
            town_id,
            invariant,
            list(entities.agent_ids),
            list(entities.bead_ids),
            list(entities.rig_ids),
            first_at,
        ]
    )


@dataclass
class _Open:
    first_at: str
    last_at: str
    ticks: int
    messages: list[str]
    open_at_start: bool
    entities: EntityKey = field(default_factory=EntityKey)


def find_episodes(town_id: str, ticks: Sequence[Mapping[str, Any]]) -> list[Episode]:
    """Group the violations of time-ordered tick records into episodes.

    An episode ends on the first tick where its (invariant, entities) pair is
    absent. Episodes are returned sorted by first tick, invariant and entities,
    so the order (and anything numbered after it) is stable.
    """
    open_: dict[tuple[int, EntityKey], _Open] = {}
    done: list[Episode] = []
    for index, tick in enumerate(ticks):
        at = str(tick["at"])
        seen = _violations_by_key(tick.get("violations") or ())
        for key in [k for k in open_ if k not in seen]:
            done.append(_close(town_id, key, open_.pop(key), cleared_at=at, at_end=False))
        for key, (messages, involved) in seen.items():
            current = open_.get(key)
            if current is None:
                open_[key] = _Open(at, at, 1, [], open_at_start=index == 0)
                current = open_[key]
            else:
                current.last_at = at
                current.ticks += 1
            _add_messages(current.messages, messages)
            current.entities = _union(current.entities, involved)
    for key, current in open_.items():
        done.append(_close(town_id, key, current, cleared_at=None, at_end=True))
    done.sort(key=lambda e: (to_ms(e.first_at), e.invariant, e.entities))
    return done


def _violations_by_key(
    violations: Iterable[Mapping[str, Any]],
) -> dict[tuple[int, EntityKey], tuple[list[str], EntityKey]]:
    """Per episode key: the tick's messages and every entity they involve."""
    seen: dict[tuple[int, EntityKey], tuple[list[str], EntityKey]] = {}
    for v in violations:
        key = violation_key(v)
        messages, involved = seen.get(key, ([], EntityKey()))
        messages.append(str(v.get("message", "")))
        seen[key] = (messages, _union(involved, entity_key(v)))
    return seen


def _add_messages(kept: list[str], new: Iterable[str]) -> None:
    for message in new:
        if message not in kept and len(kept) < MAX_MESSAGES:
            kept.append(message)


def _close(
    town_id: str, key: tuple[int, EntityKey], o: _Open, *, cleared_at: str | None, at_end: bool
) -> Episode:
    invariant, subject = key
    return Episode(
        id=episode_id(town_id, invariant, subject, o.first_at),
        town_id=town_id,
        invariant=invariant,
        entities=o.entities,
        subject=subject,
        first_at=o.first_at,
        last_at=o.last_at,
        ticks=o.ticks,
        messages=o.messages,
        open_at_start=o.open_at_start,
        open_at_end=at_end,
        cleared_at=cleared_at,
    )
