"""One home per invariant: the registry's subject and sentence drive episodes, pages and Sentry."""

from __future__ import annotations

import re

import pytest

from reportgen.diagnose.episodes import EntityKey, find_episodes, subject_id
from reportgen.observability.sentry import fingerprint
from reportgen.town.invariants import INVARIANTS, find_invariant

PLACEHOLDERS = {"agents", "beads", "rigs", "bead_count", "status"}


@pytest.mark.parametrize("invariant", INVARIANTS, ids=lambda i: f"inv{i.number}")
def test_every_invariant_names_its_subject_and_explains_itself(invariant: object) -> None:
    inv = find_invariant(invariant.number)  # type: ignore[attr-defined]
    assert inv is not None and inv.subject in {"agent", "bead", "rig"}
    assert set(re.findall(r"\{(\w+)\}", inv.because)) <= PLACEHOLDERS
    assert f"{{{inv.subject}s}}" in inv.because


def test_episodes_are_keyed_by_the_registered_subject() -> None:
    # invariant 3 names a rig: MRs coming and going keep one episode
    ticks = [
        {"at": f"2026-03-16T08:00:0{i}.000Z",
         "violations": [{"invariant": 3, "message": "m", "rig_ids": ["r1"], "bead_ids": [b]}]}
        for i, b in enumerate(["mr1", "mr2", "mr3"])
    ]  # fmt: skip
    (episode,) = find_episodes("t", ticks)
    assert episode.subject == EntityKey(rig_ids=("r1",))
    assert subject_id(3, episode.entities) == "r1"


def test_sentry_fingerprint_comes_from_the_registry() -> None:
    entities = EntityKey(agent_ids=("a1",), bead_ids=("b1",))
    assert fingerprint("town", 7, entities) == ["reconciler-invariant", "7", "town", "a1"]
    assert fingerprint("town", 6, entities) == ["reconciler-invariant", "6", "town", "b1"]
    # an invariant the registry does not know is grouped by number and town only
    assert fingerprint("town", 99, entities) == ["reconciler-invariant", "99", "town"]
