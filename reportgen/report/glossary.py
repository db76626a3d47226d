"""The glossary: the words the report uses, each in one or two plain sentences.

Every build writes it at the site root (``glossary.html`` and its JSON twin),
and the single-file bundle carries it as a section at its end. A page links
the first use of each word to its entry through the ``term`` macro of
``templates/_macros.html`` (``glossary.html#term-<slug>``), so someone new
to Gastown can read any page without knowing its vocabulary. The
definitions follow the upstream reconciler's own vocabulary (towns, rigs,
beads, hooks, agent roles) and reportgen's design (fidelity, episodes,
findings, verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where the glossary lives (site-relative); each entry is ``#term-<slug>`` on it.
GLOSSARY_HREF = "glossary.html"


@dataclass(frozen=True)
class Term:
    """One entry: the anchor slug, the word as pages print it, and what it means."""

    slug: str
    word: str
    definition: str

    @property
    def anchor(self) -> str:
        """The entry's id on the glossary page (and in the single-file bundle)."""
        return f"term-{self.slug}"

    @property
    def plain(self) -> str:
        """The definition without its inline-code marks (for a link's tooltip)."""
        return self.definition.replace("`", "")

    @property
    def href(self) -> str:
        """The site-relative link to the entry."""
        return f"{GLOSSARY_HREF}#{self.anchor}"


#: Every entry, in reading order: the town's parts first, then what the report makes of them.
TERMS: tuple[Term, ...] = (
    Term(
        "town",
        "town",
        "One Gastown installation: a single database holding every rig, bead and agent, "
        "looked after by its own reconciler.",
    ),
    Term(
        "tick",
        "tick",
        "One run of the town's alarm: it drains the pending events, reconciles (decides "
        "actions and applies them) and checks the invariants. A town ticks every few seconds.",
    ),
    Term(
        "rig",
        "rig",
        "A git repository attached to the town. Beads and agents belong to a rig.",
    ),
    Term(
        "bead",
        "bead",
        "The town's universal work item: an issue, a merge request, a convoy, a message or an "
        "agent is each a bead, with a status such as `open`, `in_progress` or `closed`.",
    ),
    Term(
        "mr-bead",
        "MR bead",
        "A `merge_request` bead: a piece of finished work waiting for review and merge, "
        "tracking the issue bead it came from. While it is `in_progress` it is in review "
        "(the refinery reviews it, or its pull request is polled): lanes write it so.",
    ),
    Term(
        "convoy",
        "convoy",
        "A bead that groups issue beads so that they land together, on a feature branch of "
        "their own.",
    ),
    Term(
        "hook",
        "hook",
        "The bead an agent is bound to (`current_hook_bead_id`). A working agent should "
        "always have one, and a bead should be hooked by at most one agent.",
    ),
    Term(
        "agent",
        "agent",
        "An AI worker of the town, itself a bead: a polecat, a refinery or the mayor (the "
        "town's chat agent). It is `idle` or `working`, and works on the bead it is hooked to.",
    ),
    Term(
        "polecat",
        "polecat",
        "A worker agent: it is hooked to an issue bead, does the work in a container and "
        "submits it for review.",
    ),
    Term(
        "refinery",
        "refinery",
        "The reviewing and merging agent of a rig (one per rig): it takes MR beads one at a "
        "time and merges or sends them back.",
    ),
    Term(
        "invariant",
        "invariant",
        "A rule the reconciler checks after every tick, such as “a working agent has a hook”. "
        "A tick that breaks one reports a violation; upstream reports it and does not correct it.",
    ),
    Term(
        "fidelity",
        "fidelity",
        "How close the figures are to what production did. `exact`: the window was replayed "
        "from the town's input journal with the world's recorded answers; `recorded`: the "
        "town's own tick records, shown without re-running the engine; `approximate`: the "
        "source has no journal (an upstream dump), so events were re-applied to its current "
        "state and may differ.",
    ),
    Term(
        "replayed",
        "recorded / replayed",
        "A recorded tick is what the town stored as it ran; a replayed tick is what "
        "reportgen's engine decides when it re-runs the same inputs. Comparing the two finds "
        "the first divergence.",
    ),
    Term(
        "episode",
        "episode",
        "A violation episode: consecutive ticks in which one invariant is broken for the same "
        "subject (the same agent, bead or rig). It is open while it still holds at the "
        "window's end, and keeps its id across nightly runs.",
    ),
    Term(
        "finding",
        "finding",
        "Something the diagnosis names as wrong in a town (no progress, a dispatch loop, work "
        "stuck in review…), with its subject, since when, and the ticks that show it.",
    ),
    Term(
        "verdict",
        "verdict",
        "A town in one word: `stuck` (a critical finding), `degraded` (a warning), `healthy` "
        "(neither) or `unknown` (not judged). Expected findings never count.",
    ),
    Term(
        "dry-run",
        "dry-run",
        "One reconcile run on a copy of the town's state without applying anything: the "
        "actions the next tick would take.",
    ),
)

#: Other names pages print for an entry (a bead's type as the town stores it).
ALIASES: dict[str, str] = {"merge_request": "mr-bead"}
#: Every entry by slug, and by its aliases: what the ``term`` macro looks words up in.
TERMS_BY_SLUG: dict[str, Term] = {t.slug: t for t in TERMS}
TERMS_BY_SLUG.update({alias: TERMS_BY_SLUG[slug] for alias, slug in ALIASES.items()})


def glossary_slug(word: str) -> str:
    """The entry a word from the data has (an entity's kind or type), or ``""`` if none."""
    return word if word in TERMS_BY_SLUG else ""


@dataclass(frozen=True)
class GlossaryPage:
    """``glossary.html``: every term, in reading order."""

    kind: str
    title: str
    root: str
    terms: list[Term]


def glossary_page() -> GlossaryPage:
    """The glossary page's view-model (the same on every build)."""
    return GlossaryPage(kind="glossary", title="Glossary", root="", terms=list(TERMS))
