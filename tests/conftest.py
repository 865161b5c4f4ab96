"""Shared fixtures and Hypothesis strategies.

The decision aid is loaded once per test session: loading validates every data file,
and building a durable_rules host per test would only slow the suite down.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from engine.evaluation.aid import DecisionAid
from engine.model.questionnaire import Question

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="session")
def aid() -> DecisionAid:
    return DecisionAid.load()


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shipped rules and knowledge directories, for a test to break one thing in."""
    rules, knowledge = tmp_path / "rules", tmp_path / "knowledge"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(ROOT / "knowledge", knowledge)
    return rules, knowledge


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per test session."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("pain_sdm-*.whl"))


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That wheel installed into a folder of its own (put it first on sys.path to use it)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.fixture(autouse=True)
def records_database(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every CLI it starts, stores records in a temporary database, never the user's own."""
    path = tmp_path_factory.mktemp("records") / "records.sqlite3"
    monkeypatch.setenv("PAIN_SDM_DB", str(path))
    return path


@pytest.fixture(autouse=True)
def parse_cache_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every CLI it starts, caches parsed data files in a temporary folder, never the user's own."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("PAIN_SDM_CACHE", str(path))
    return path


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


def rule_targets(aid: DecisionAid) -> tuple[dict[str, list[float]], dict[str, set[str]]]:
    """The numbers each question is compared with (values and parameters, in any profile), and the choices named."""
    thresholds: dict[str, set[float]] = {}
    named: dict[str, set[str]] = {}
    for rule in aid.rulebook.rules:
        for atom in rule.when.atoms():
            fact = atom.fact or ""
            if atom.param is not None:
                param = aid.rulebook.parameters[atom.param]
                thresholds.setdefault(fact, set()).update(param.value(p) for p in aid.rulebook.profiles)
            elif isinstance(atom.value, int | float):
                thresholds.setdefault(fact, set()).add(atom.value)
            elif atom.value is not None:
                values = atom.value if isinstance(atom.value, list) else [atom.value]
                named.setdefault(fact, set()).update(str(v) for v in values)
    return {k: sorted(v) for k, v in thresholds.items()}, named


_TARGETS: dict[int, tuple[dict[str, list[float]], dict[str, set[str]]]] = {}


def threshold_answers(aid: DecisionAid, rng: random.Random) -> dict[str, Any]:
    """A random answer set biased toward the rules' thresholds, so that rules actually fire.

    Numbers are drawn mostly from each threshold a rule compares the question with (its value or
    parameter, in any profile) and the numbers either side of it; choices the rules name are
    picked more often than others; about one answer in ten is 'unknown'.
    """
    if id(aid) not in _TARGETS:
        _TARGETS[id(aid)] = rule_targets(aid)
    thresholds, named = _TARGETS[id(aid)]
    answers: dict[str, Any] = {}
    for qid, q in aid.questionnaire.questions.items():
        if q.type == "text" or rng.random() < 0.1:
            continue
        if q.type == "number":
            assert q.min is not None and q.max is not None
            near = thresholds.get(qid)
            if near and rng.random() < 0.8:
                value = rng.choice(near) + rng.choice((-1, 0, 0, 1) if q.integer else (-1, -0.5, 0, 0, 0.5, 1))
            else:
                value = rng.uniform(q.min, q.max)
            value = min(max(value, q.min), q.max)
            answers[qid] = round(value) if q.integer else value
        elif q.type == "multiple":
            chosen = named.get(qid, set())
            answers[qid] = [v for v in q.values if rng.random() < (0.3 if v in chosen else 0.1)]
        else:
            answers[qid] = rng.choice(q.values)
    return answers
