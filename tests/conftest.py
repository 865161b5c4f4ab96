"""Shared fixtures and Hypothesis strategies.

The decision aid is loaded once per test session: loading validates every data file,
and building a durable_rules host per test would only slow the suite down.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from engine.aid import DecisionAid
from engine.questionnaire import Question

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="session")
def aid() -> DecisionAid:
    return DecisionAid.load()


def run_cli(*args: str, input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        input=input,
        cwd=cwd or ROOT,
        timeout=120,
    )


def answer_strategy(q: Question) -> st.SearchStrategy[Any]:
    """Any valid answer to one question, 'unknown' included."""
    unknown = st.just("unknown")
    if q.type == "text":
        return st.text(max_size=40)
    if q.type == "number":
        assert q.min is not None and q.max is not None
        lo, hi = int(q.min), int(q.max)
        numbers: st.SearchStrategy[Any] = st.integers(lo, hi)
        if not q.integer:
            numbers = numbers | st.floats(q.min, q.max, allow_nan=False, allow_infinity=False)
        return unknown | numbers
    if q.type == "multiple":
        return unknown | st.lists(st.sampled_from(q.values), unique=True)
    return unknown | st.sampled_from(q.values)


def answers_strategy(aid: DecisionAid) -> st.SearchStrategy[dict[str, Any]]:
    """Whole answer sets: every question answered or left out (left out means 'unknown')."""
    fields = {qid: answer_strategy(q) for qid, q in aid.questionnaire.questions.items()}
    return st.fixed_dictionaries({}, optional=fields)
