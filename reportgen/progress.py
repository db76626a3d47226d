"""How far long library work has got (re-running a journal, simulating a town), for whoever listens.

Library code calls :func:`report` as it goes; the command line listens
(:func:`listening`) and draws a bar on stderr (:mod:`reportgen.cli.progress`).
Nothing here prints or reads a clock: a report is ``(done, total, label)``
in the work's own units (journal rows, simulated milliseconds), and costs
one context-variable read when nobody listens.

The listener is held in a context variable rather than passed down as a
parameter because the slow part, re-running journal rows
(:meth:`reportgen.replay.state.TownState.advance`), sits several calls deep
under every command that replays (``replay``, ``export``, ``dry-run``,
``diagnose``, ``build --single-file``), and the simulation loop under both
``simulate`` and the demo fleet of ``build``: one listener set by the
command reaches all of them, and no signature in between changes. Worker
processes of a fleet build do not inherit it; the build reports per town
instead (``build_site(progress=...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``listener(done, total, label)``: ``done`` of ``total`` units, ``label`` says where.
Listener = Callable[[int, int, str], None]

_LISTENER: ContextVar[Listener | None] = ContextVar("reportgen_progress", default=None)


def report(done: int, total: int, label: str = "") -> None:
    """Tell the listener, if any, that ``done`` of ``total`` units are done."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(done, total, label)


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send every :func:`report` made inside the block to ``listener`` (``None``: to nobody)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


@contextmanager
def step(index: int, count: int, label: str = "") -> Iterator[None]:
    """Run step ``index`` (from 0) of ``count`` equal steps: a report made inside the block
    counts as that share of the whole, its label prefixed with ``label``."""
    outer = _LISTENER.get()
    if outer is None:
        yield
        return

    def inner(done: int, total: int, what: str) -> None:
        total = max(total, 1)
        shown = " · ".join(part for part in (label, what) if part)
        outer(index * total + min(done, total), count * total, shown)

    outer(index, count, label)
    with listening(inner):
        yield
