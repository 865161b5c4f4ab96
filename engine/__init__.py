"""pain-sdm: a rule-based shared decision-making aid for interventional pain management.

The public API is small: load a `DecisionAid`, evaluate answers into a `Result`.
Every error raised on purpose is a `PainSdmError` (see engine.errors). Names are
imported on first use, so `import engine.errors` (as the CLI does) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DecisionAid": "evaluation.aid",
    "AnswersError": "errors",
    "DataFileError": "errors",
    "EngineError": "errors",
    "KnowledgeError": "errors",
    "OutputError": "errors",
    "PainSdmError": "errors",
    "RulebookError": "errors",
    "UsageError": "errors",
    "Finding": "evaluation.result",
    "OptionResult": "evaluation.result",
    "Result": "evaluation.result",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
