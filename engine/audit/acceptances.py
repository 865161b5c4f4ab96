"""Accepted findings: `rules verify` findings that reviewers checked and accepted, with the reason.

They live in rules/accepted-findings.yaml (optional), a list under `accepted:`; each entry names
a finding by its check name, its subject and, optionally, text its message must contain:

    accepted:
      - check: unreachable-status
        subject: nerve_block
        detail: never after_prerequisite
        reason: No criterion of the register (NB-01 to NB-08) names steps before a nerve block.
        accepted_by: pain-sdm rulebook maintainers
        date: 2026-11-24

`rules verify` shows a finding an entry matches as an accepted note, with who accepted it, when and
why; an entry that matches no finding is a `stale-acceptance` warning, and one that matches an error
is an `acceptance-of-error` warning: errors are never accepted (engine/verify.py applies them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator

from engine.errors import Problem, RulebookError
from engine.model.knowledge import Strict
from engine.model.loading import load_file

FILE_NAME = "accepted-findings.yaml"

AcceptableCheck = Literal[
    "schema",
    "unknown-reference",
    "duplicate-id",
    "derived-cycle",
    "missing-source",
    "overdue-review",
    "review-date-in-future",
    "unused-parameter",
    "missing-criteria",
    "never-fires",
    "contradiction",
    "shadowed-rule",
    "duplicate-rule",
    "subsumed-rule",
    "overlapping-rules",
    "status-overlap",
    "unreachable-status",
    "undecided",
    "example-skipped",
]
NeverAccepted = Literal[
    "engine-failure",
    "engine-key",
    "internal-disagreement",
    "stale-acceptance",
    "acceptance-of-error",
]
FindingName = Literal[AcceptableCheck, NeverAccepted]
"""The name of every finding `rules verify` gives, but for broken safety invariants, which are named by
their ids in rules/invariants.yaml (each starts `safety-`) and are never accepted either."""

INVARIANT_PREFIX = "safety-"

ACCEPTABLE: tuple[str, ...] = get_args(AcceptableCheck)
NEVER_ACCEPTED: tuple[str, ...] = get_args(NeverAccepted)


class Acceptance(Strict):
    """One reviewed finding, accepted with its reason."""

    check: str = Field(examples=["unreachable-status"])
    subject: str = Field(min_length=1, examples=["nerve_block"])
    detail: str | None = Field(default=None, min_length=1, examples=["never after_prerequisite"])
    reason: str = Field(
        min_length=20, examples=["No criterion of the register (NB-01 to NB-08) names steps before a nerve block."]
    )
    accepted_by: str = Field(min_length=1, examples=["pain-sdm rulebook maintainers"])
    date: dt.date = Field(examples=["2026-11-24"])

    @field_validator("check")
    @classmethod
    def _known_check(cls, value: str) -> str:
        if value in NEVER_ACCEPTED or value.startswith(INVARIANT_PREFIX):
            raise ValueError(
                f"`{value}` findings cannot be accepted (safety invariants, the checker's own faults and "
                "acceptances are never silenced); fix what the finding names instead"
            )
        if value not in ACCEPTABLE:
            raise ValueError(f"unknown finding name; expected one `rules verify` gives: {', '.join(ACCEPTABLE)}")
        return value

    def matches(self, name: str, subject: str, message: str) -> bool:
        return name == self.check and subject == self.subject and (self.detail is None or self.detail in message)

    def describe(self) -> str:
        detail = f" ({self.detail!r})" if self.detail else ""
        return f"{self.check}: {self.subject}{detail}"


class AcceptanceFile(Strict):
    accepted: list[Acceptance]


@dataclass(frozen=True)
class Acceptances:
    """The entries of one accepted-findings file (none when the rules directory has no such file)."""

    path: Path
    entries: tuple[Acceptance, ...]

    def where(self, index: int) -> str:
        """The file and entry, as findings and errors name them, e.g. '.../accepted-findings.yaml, acceptance #1'."""
        return f"{self.path}, acceptance #{index + 1}"


def load_acceptances(rules_dir: Path) -> Acceptances:
    """Read rules_dir/accepted-findings.yaml if there is one; a bad file raises RulebookError naming entry and field."""
    path = rules_dir / FILE_NAME
    if not path.is_file():
        return Acceptances(path, ())
    try:
        data = load_file(AcceptanceFile, path, RulebookError)
    except RulebookError as exc:
        raise RulebookError([_per_entry(p) for p in exc.problems]) from None
    return Acceptances(path, tuple(data.accepted))


def _per_entry(problem: Problem) -> Problem:
    """'accepted.0.reason' -> entry 'acceptance #1', field 'reason'."""
    parts = problem.field.split(".")
    if len(parts) >= 2 and parts[0] == "accepted" and parts[1].isdigit():
        entry = f"acceptance #{int(parts[1]) + 1}"
        return Problem(problem.file, entry, ".".join(parts[2:]), problem.message)
    return problem
