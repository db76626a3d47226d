"""Keeping Python's cyclic garbage collector out of the bulk loads.

Loading a town creates hundreds of thousands of small dicts and lists (its
tick records), none of them cyclic. Each allocation burst triggers full
collections that traverse every object alive, again and again: a quarter of
a recorded build went there. Reference counting frees all of this data; the
cyclic collector only needs to run for what is left, so it is paused while
a town loads, and what was loaded is frozen (never traversed) while the town
renders.

Both are process-wide. Where town tasks share a process on several threads
(a Dask worker with ``nthreads > 1``), one task's block may end while
another's runs: that changes when collections happen, never what a task
computes, and the collector is enabled again once the last block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees memory)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def frozen() -> Iterator[None]:
    """Objects alive on entry are not traversed by collections inside the block.

    They are still freed by reference counting when dropped; on exit they
    rejoin the oldest generation, so a cycle among them is collected later.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def collect() -> None:
    """A full collection, once a town's data has been dropped.

    While collections are paused or objects frozen, cycles among them are not
    collected, and objects thawed by :func:`frozen` are not counted towards
    the next full collection either, so without this a worker building town
    after town grew by about a megabyte per town. With nothing but the
    process's own state alive between towns, a full collection is cheap.
    """
    gc.collect()
