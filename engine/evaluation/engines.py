"""One rule engine per thread and profile, made on first use.

durable_rules must be driven from one thread only (several threads on one Host crash it; see
the project notes), so a `DecisionAid` never shares an engine between threads: each thread
that evaluates gets its own engine for each profile it uses, built the first time it asks.
Everything an engine is built from (the compiled ruleset, the rulebook, the result builder) is
read-only once made, so it is shared. An engine lives as long as its thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

EngineT = TypeVar("EngineT")


class PerThread(Generic[EngineT]):
    """Engines keyed by profile, one set per calling thread; `make(profile)` builds a missing one."""

    def __init__(self, make: Callable[[str], EngineT]) -> None:
        self._make = make
        self._local = threading.local()

    def get(self, profile: str) -> EngineT:
        engines: dict[str, EngineT] | None = getattr(self._local, "engines", None)
        if engines is None:
            engines = self._local.engines = {}
        engine = engines.get(profile)
        if engine is None:
            engine = engines[profile] = self._make(profile)
        return engine
