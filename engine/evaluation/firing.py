"""A firing: one rule whose condition held for one patient, with the facts it matched.

Both the durable_rules engine and the independent evaluator produce firings, so they
can be compared one for one; the result, the trace and the records are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Firing:
    """Rule `rule_id` held (or, for a derived fact, was shown false when `holds` is False)."""

    rule_id: str
    holds: bool = True
    branch: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, bool]:
        return (self.rule_id, self.holds)
