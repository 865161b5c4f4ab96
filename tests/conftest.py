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

from engine.audit.engine_check import Targets, near_thresholds, rule_targets
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


@pytest.fixture(scope="session")
def shared_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def cache_in_a_temporary_folder(shared_cache_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every CLI it starts, keeps its caches (parsed files, snapshot, compiled rulesets) in a
    temporary folder, never the user's own: one folder for the tests of this test process, so that a command
    does not parse and validate the rulebook again in every test (the caches' own tests have one each)."""
    monkeypatch.setenv("PAIN_SDM_CACHE", str(shared_cache_folder))
    return shared_cache_folder


@pytest.fixture
def parse_cache_folder(
    cache_in_a_temporary_folder: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A cache folder of the test's own, empty when it starts: for the tests of the caches."""
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


@pytest.fixture(scope="session")
def printed_examples(aid: DecisionAid) -> dict[str, Any]:
    """Every shipped example's summary as HTML, Markdown and PDF on A4 and Letter, made once per test process.

    The summary tests read the same renders: printing 14 PDFs once instead of once per test file.
    """
    from test_summary import render_examples

    return dict(render_examples(aid))


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


_TARGETS: dict[int, Targets] = {}


def threshold_answers(aid: DecisionAid, rng: random.Random) -> dict[str, Any]:
    """A random answer set biased toward the rules' thresholds (see `engine.audit.engine_check`)."""
    if id(aid) not in _TARGETS:
        _TARGETS[id(aid)] = rule_targets(aid.rulebook)
    return near_thresholds(aid.questionnaire, _TARGETS[id(aid)], rng)


def copy_data(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shipped rules and knowledge folders, to change."""
    rules, knowledge = tmp_path / "rules", tmp_path / "knowledge"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(ROOT / "knowledge", knowledge)
    return rules, knowledge


CHANGED_TITLE = "A changed title"


def change_a_rule_title(rules: Path) -> None:
    """Give the first rule of the first rule file that has one the title CHANGED_TITLE (another rulebook version)."""
    path = next(p for p in sorted(rules.rglob("*.yaml")) if "title:" in p.read_text(encoding="utf-8"))
    text = path.read_text(encoding="utf-8")
    old_title = next(line for line in text.splitlines() if line.strip().startswith("title:"))
    path.write_text(text.replace(old_title, old_title.split("title:")[0] + f"title: {CHANGED_TITLE}", 1), "utf-8")
