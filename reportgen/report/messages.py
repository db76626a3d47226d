"""Check messages with names: "Working agent cbd61dbb-… has no hook" read as "Working agent
refinery has no hook", the agent linked to its page.

The engine's checks (and upstream's) write entity ids into their messages.
A page that calls the agent "refinery" everywhere else should not switch to
its UUID in the one sentence that says what is wrong. A message is cut into
parts — plain text, or an entity the town's :class:`Entities` knows, as a
link — for the HTML (the templates' ``explanation`` macro renders parts, so
no data-derived string is ever marked up, and the raw message stays in the
element's ``title``); :func:`named_text` gives the same sentence as plain
text, for JSON twins and search.

Only whole words that are the id of a known entity are replaced (surrounding
quotes and punctuation aside), so a message without ids is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace

from reportgen.report.explain import LinkPart, Part, TextPart
from reportgen.report.format import clean, ellipsis
from reportgen.report.views_shared import Entities

#: How much of a message a page shows (the ``title`` keeps it whole).
SHOWN_CHARS = 500
_WORD = re.compile(r"\S+")
#: What may surround an id in a sentence without being part of it.
_AROUND = "\"'`()[]{}<>,.;:!?“”‘’«»"


@dataclass(frozen=True)
class NamedMessage:
    """A check message three ways: as the check said it, named, and in parts for the page."""

    #: The message as the check wrote it (ids and all): the element's ``title``.
    message: str
    #: The message with every known entity's id replaced by its name.
    text: str
    #: The message (cut to :data:`SHOWN_CHARS`) as text and entity links.
    parts: list[Part]


def _ids(message: str, entities: Entities) -> Iterator[tuple[int, int, str]]:
    """``(start, end, id)`` of every word of ``message`` that is a known entity's id."""
    known = entities.info
    for match in _WORD.finditer(message):
        word, start = match.group(), match.start()
        if word in known:
            yield start, match.end(), word
            continue
        core = word.strip(_AROUND)
        if core and core in known:
            at = start + word.index(core)
            yield at, at + len(core), core


def message_parts(
    message: str, entities: Entities, linked: Collection[str] | None = None
) -> list[Part]:
    """``message`` as text and links to the entities it names.

    ``linked`` holds the ids whose entity pages exist (for a violation: the
    entities it involves); another entity is named but not linked
    (``None``: every known one is linked).
    """
    parts: list[Part] = []
    done = 0
    for start, end, entity_id in _ids(message, entities):
        link = entities.link(entities.kind("", entity_id), entity_id)
        if linked is not None and entity_id not in linked:
            link = replace(link, href="")
        if start > done:
            parts.append(TextPart(clean(message[done:start])))
        parts.append(LinkPart(link))
        done = end
    if done < len(message) or not parts:
        parts.append(TextPart(clean(message[done:])))
    return parts


def named_text(message: str, entities: Entities) -> str:
    """``message`` with every known entity's id replaced by its name (plain text).

    ``"Working agent cbd61dbb-… has no hook"`` → ``"Working agent refinery has no hook"``.
    """
    return "".join(p.plain for p in message_parts(message, entities))


def named_message(
    message: str,
    entities: Entities,
    linked: Collection[str] | None = None,
    shown: int = SHOWN_CHARS,
) -> NamedMessage:
    """A check message for a page: raw, named, and in parts (cut to ``shown`` characters)."""
    return NamedMessage(
        message=clean(message),
        text=named_text(message, entities),
        parts=message_parts(ellipsis(message, shown), entities, linked),
    )
