"""Building the long-lived objects of a start-up without the cyclic garbage collector in the way.

A command's start-up (importing typer and pydantic, building the models, loading the rulebook,
building the rule engine) makes some hundred thousand objects that live as long as the process.
While they pile up, CPython's cyclic collector runs again and again and walks them each time:
measured at 50 to 90 ms of CPU (150 collections) in a `pain-sdm evaluate` of 0.35 s. Nothing
built then is garbage, so collection waits until the building is done; reference counting
still frees everything as usual, and the collector runs as always once start-up is over.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_paused_for_start_up = False


def pause_for_start_up() -> None:
    """Pause cyclic collection until `start_up_done` (the command line calls this first thing)."""
    global _paused_for_start_up
    if gc.isenabled():
        gc.disable()
        _paused_for_start_up = True


def start_up_done() -> None:
    """Resume the collection `pause_for_start_up` paused (a decision aid calls this once loaded)."""
    global _paused_for_start_up
    if _paused_for_start_up:
        _paused_for_start_up = False
        gc.freeze()  # what start-up built stays: no collection walks it again
        gc.enable()


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Pause cyclic collection inside the block (nested blocks keep it paused until the outermost ends)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
