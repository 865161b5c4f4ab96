"""Which rule engine runs, and one engine per thread and profile, made on first use.

The engine is durable_rules wherever it loads; where it cannot (Python 3.13 and later), the
Python engine runs the same compiled ruleset (see `engine.evaluation.python_engine`), and
`PAIN_SDM_ENGINE` can ask for either. Every result names the engine that produced it.

durable_rules must be driven from one thread only (several threads on one Host crash it; see
the project notes), so a `DecisionAid` never shares an engine between threads: each thread
that evaluates gets its own engine for each profile it uses, built the first time it asks.
Everything an engine is built from (the compiled ruleset, the rulebook, the result builder) is
read-only once made, so it is shared. An engine lives as long as its thread.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from engine.errors import UsageError
from engine.evaluation.firing import Firing, ProfileFirings

if TYPE_CHECKING:
    from engine.evaluation.compiler import CompiledRuleset
    from engine.evaluation.inference import Patient
    from engine.model.questionnaire import Questionnaire

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


class RuleEngine(Protocol):
    """What the decision aid needs of a rule engine: one compiled ruleset, run one patient at a time."""

    def run(self, patient: dict[str, Any]) -> list[Firing]: ...

    def run_patient(self, patient: Patient) -> list[Firing]: ...

    def run_profiles(self, patient: Patient) -> ProfileFirings: ...


ENGINE_VARIABLE = "PAIN_SDM_ENGINE"
DURABLE = "durable_rules"
PYTHON = "python"
CHOICES = ("auto", DURABLE, PYTHON)


@functools.cache
def durable_version() -> str | None:
    """durable_rules' version if it loads on this Python, else None (2.0.28 cannot load on 3.13 or later)."""
    try:
        import durable_rules_engine  # noqa: F401  (the native engine the adapter drives)
    except ImportError:
        return None
    try:
        return importlib.metadata.version("durable-rules")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def chosen_engine(setting: str | None = None) -> str:
    """The engine to use: `PAIN_SDM_ENGINE` (auto, durable_rules or python); auto is durable_rules where it loads.

    Asking for durable_rules where it cannot load is an error, never a silent switch.
    """
    value = (os.environ.get(ENGINE_VARIABLE, "auto") if setting is None else setting).strip() or "auto"
    if value not in CHOICES:
        raise UsageError(f"{ENGINE_VARIABLE}={value!r} is not an engine; choose one of {', '.join(CHOICES)}")
    if value == "auto":
        return DURABLE if durable_version() is not None else PYTHON
    if value == DURABLE and durable_version() is None:
        raise UsageError(
            f"{ENGINE_VARIABLE}=durable_rules, but durable_rules does not load on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} (2.0.28, its last release, needs Python 3.12 or "
            f"earlier); unset {ENGINE_VARIABLE} or set it to auto or python"
        )
    return value


def engine_label(choice: str) -> str:
    """The engine's name as every result states it, e.g. `durable_rules 2.0.28`."""
    if choice == DURABLE:
        return f"durable_rules {durable_version()}"
    return f"pain-sdm Python engine (Python {platform.python_version()})"


def make_engine(choice: str, compiled: CompiledRuleset, questionnaire: Questionnaire) -> RuleEngine:
    from engine import memory

    with memory.building():
        if choice == DURABLE:
            from engine.evaluation.inference import DurableEngine

            return DurableEngine(compiled, questionnaire)
        from engine.evaluation.python_engine import PythonEngine

        return PythonEngine(compiled, questionnaire)
