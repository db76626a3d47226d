"""Keeping Python's cyclic garbage collector out of the bulk loads.

Loading a town creates hundreds of thousands of small dicts and lists (its
tick records), none of them cyclic. Each allocation burst triggers full
collections that traverse every object alive, again and again: a quarter of
a recorded build went there. Reference counting frees all of this data; the
cyclic collector only needs to run for what is left, so it is paused while
a town loads, and what was loaded is frozen (never traversed) while the town
renders.
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
