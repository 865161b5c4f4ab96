"""Records kept for reuse between patients, bounded: most patients share most of their records.

A rule that reads a few yes/no answers fires with the same facts for many patients, and its
firing, its finding and the option they come to are the same frozen records each time; making
them once and sharing them is most of what keeps an evaluation cheap (see `ResultBuilder`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

RECORDS_KEPT = 20_000
"""Records of one kind kept by one store at most (a few MiB at most; then it starts again)."""

K = TypeVar("K")
V = TypeVar("V")


class Kept(dict[K, V]):
    """Records kept for reuse, at most RECORDS_KEPT: once full, it is emptied and starts again."""

    def find(self, key: K) -> tuple[V | None, bool]:
        """The record kept under `key` (None if none), and whether one can be kept under it at all: a key
        made of a value that cannot be a key (see `values_key`) is unhashable, and its record is made, not kept."""
        try:
            return self.get(key), True
        except TypeError:
            return None, False

    def keep(self, key: K, value: V) -> V:
        if len(self) >= RECORDS_KEPT:
            self.clear()
        self[key] = value
        return value


def values_key(values: Iterable[Any]) -> tuple[Any, ...]:
    """The values as a key that tells them apart as records must: each with its type (2 and 2.0, True and 1
    are equal keys, not the same facts), a list as a tuple. A value that cannot be a key (none of today's
    answers) makes the key unhashable (see `Kept.find`)."""
    return tuple([(type(v), tuple(v) if type(v) is list else v) for v in values])
