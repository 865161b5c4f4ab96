"""An option's main benefits and main risks: the short list shown where the full lists do not fit.

The interview's option grid and the printed summary (for options not open now) both use
`main_points`, so the patient sees the same short list on screen and on paper.

The knowledge base lists each option's benefits and risks with the main ones first. The short
list takes the same number of each (equal detail), and never leaves out a grave harm: when none
of the first risks is marked `serious` but the option has one, the first serious risk takes the
last place.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.model.knowledge import Item, Procedure, Risk

MAIN_ITEMS = 2
"""How many benefits and how many risks a short list shows per option."""


class MainPoints(NamedTuple):
    benefits: list[Item]
    risks: list[Risk]


def main_points(procedure: Procedure, count: int = MAIN_ITEMS) -> MainPoints:
    """The first `count` benefits and risks (fewer, the same number of each, if a list is shorter)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    size = min(count, len(procedure.benefits), len(procedure.risks))
    risks = procedure.risks[:size]
    serious = next((r for r in procedure.risks if r.serious), None)
    if serious is not None and not any(r.serious for r in risks):
        risks = [*risks[:-1], serious]
    return MainPoints(procedure.benefits[:size], risks)
