"""A firing: one rule whose condition held for one patient, with the facts it matched.

Both the durable_rules engine and the independent evaluator produce firings, so they
can be compared one for one; the result, the trace and the records are built from them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


class ProfileFirings(Mapping[str, list[Firing]]):
    """One run of a joint ruleset (see `compile_joint`) as each profile's firings, in the order they fired.

    Each firing is of one variant of its rule, which names the profiles that run it; a profile's
    list is made the first time it is asked for. Most firings are of variants every profile runs
    (`common`), so two profiles' firings differ only by the others: `differing` gives those alone.
    """

    def __init__(
        self, profiles: dict[str, frozenset[int]], common: frozenset[int], firings: list[Firing], variants: list[int]
    ) -> None:
        if len(firings) != len(variants):
            raise ValueError(f"{len(firings)} firings but {len(variants)} variants")
        self._profiles = profiles
        self._common = common
        self.firings = firings
        self.variants = variants
        self._made: dict[str, list[Firing]] = {}
        self._partial: list[tuple[Firing, int]] | None = None

    def __getitem__(self, profile: str) -> list[Firing]:
        found = self._made.get(profile)
        if found is None:
            runs = self._profiles[profile]
            found = self._made[profile] = [f for f, v in zip(self.firings, self.variants, strict=True) if v in runs]
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._profiles)

    def __len__(self) -> int:
        return len(self._profiles)

    def __repr__(self) -> str:
        return f"ProfileFirings({dict(self)!r})"

    def differing(self, profile: str, other: str) -> tuple[list[Firing], list[Firing]]:
        """The firings of `profile` that `other` has not, and those of `other` that `profile` has not."""
        if self._partial is None:
            common = self._common
            self._partial = [(f, v) for f, v in zip(self.firings, self.variants, strict=True) if v not in common]
        mine, theirs = self._profiles[profile], self._profiles[other]
        return (
            [f for f, v in self._partial if v in mine and v not in theirs],
            [f for f, v in self._partial if v in theirs and v not in mine],
        )
