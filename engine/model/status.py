"""The statuses an option can have, and how the statuses rules set resolve into one.

Everything that names a status (the rule and result models, the renderers, the rulebook
document, `rules verify`) reads it from here, so a status's rank, label, whether it is open
and the group it is shown in exist once. The resolution (`resolve`) is the one function the
result builder and `rules verify` both use: the proof is about the logic that runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

import pydantic


class Status(StrEnum):
    """An option's status, from least to most restrictive (declaration order is the rank)."""

    CANDIDATE = "candidate"
    AFTER_PREREQUISITE = "after_prerequisite"
    NOT_INDICATED = "not_indicated"
    DEFERRED = "deferred"

    @property
    def rank(self) -> int:
        """Where several rules set a status for one procedure, the highest rank wins (safety first)."""
        return _RANK[self]

    @property
    def is_open(self) -> bool:
        """An open option is one to discuss: now, or after named steps."""
        return self in OPEN_STATUSES

    @property
    def label(self) -> str:
        """The status in plain words, for patients."""
        return _LABELS[self]

    @property
    def group(self) -> StatusGroup:
        """The group the option is shown in on screen, in the report and in the summary."""
        return next(g for g in STATUS_GROUPS if self in g.statuses)


StatusField = Annotated[Status, pydantic.Strict(False)]
"""A status as a model field: data files write it as its name (`candidate`), even in strict models."""

STATUSES: tuple[Status, ...] = tuple(Status)
"""Every status, least restrictive first."""

_RANK: dict[Status, int] = {s: i for i, s in enumerate(STATUSES)}

_BY_NAME: dict[str, Status] = {s.value: s for s in STATUSES}

OPEN_STATUSES: frozenset[Status] = frozenset({Status.CANDIDATE, Status.AFTER_PREREQUISITE})

_LABELS: dict[Status, str] = {
    Status.CANDIDATE: "Option to discuss now",
    Status.AFTER_PREREQUISITE: "Open after further steps",
    Status.NOT_INDICATED: "Not usually suggested now",
    Status.DEFERRED: "On hold: a safety issue comes first",
}

FALLBACK_STATUS = Status.NOT_INDICATED
"""The status of a procedure no status rule holds for."""


class StatusGroup:
    """A group of statuses shown together, with its title (e.g. "Options to discuss now")."""

    def __init__(self, key: str, title: str, statuses: tuple[Status, ...]) -> None:
        self.key = key
        self.title = title
        self.statuses = statuses

    def __repr__(self) -> str:
        return f"StatusGroup({self.key!r})"


STATUS_GROUPS: tuple[StatusGroup, ...] = (
    StatusGroup("now", "Options to discuss now", (Status.CANDIDATE,)),
    StatusGroup("after_steps", "Options open after further steps", (Status.AFTER_PREREQUISITE,)),
    StatusGroup("not_now", "Not suggested now", (Status.NOT_INDICATED, Status.DEFERRED)),
)


def rank(status: str) -> int:
    """The rank of a status given by name."""
    return _RANK[Status(status)]


def resolve(statuses: Iterable[str]) -> Status | None:
    """The status the statuses set for one procedure come to: the most restrictive; None if none is set.

    A procedure no rule sets a status for gets FALLBACK_STATUS, with the fallback reason.
    """
    best: Status | None = None
    best_rank = -1
    for name in statuses:
        status = _BY_NAME.get(name)  # a Status is its own name as a key (it is a str): no enum lookup per call
        if status is None:
            status = Status(name)  # not a status: raises, naming it
        if _RANK[status] > best_rank:
            best, best_rank = status, _RANK[status]
    return best
