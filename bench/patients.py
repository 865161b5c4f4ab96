"""Random valid patients from a fixed seed, for the benchmark (and for checking batch runs by hand).

Each patient starts from one of the example patients in examples/ (so most answers look like
a real patient's) and about one answer in five is replaced by a random valid answer. Numbers
are drawn near the thresholds the rules compare them with (every profile's parameter values
and the literal values in the rules), so rules on both sides of each threshold fire; about
one random answer in ten is 'unknown'.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.evaluation.aid import DecisionAid
from engine.model.questionnaire import UNKNOWN, Question

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

UNKNOWN_SHARE = 0.1
CHANGE_SHARE = 0.2


def thresholds(aid: DecisionAid) -> dict[str, list[float]]:
    """The numbers each number question is compared with, in any rule and any profile."""
    found: dict[str, set[float]] = defaultdict(set)
    for rule in aid.rulebook.rules:
        for atom in rule.when.atoms():
            if atom.fact is None or atom.fact not in aid.questionnaire.questions:
                continue
            if atom.param is not None:
                param = aid.rulebook.parameters[atom.param]
                found[atom.fact].update(param.value(p) for p in aid.rulebook.profiles)
            elif isinstance(atom.value, int | float) and not isinstance(atom.value, bool):
                found[atom.fact].add(atom.value)
    return {fact: sorted(values) for fact, values in found.items()}


def _number(q: Question, near: list[float], rng: random.Random) -> int | float:
    assert q.min is not None and q.max is not None
    if near and rng.random() < 0.8:
        value: float = rng.choice(near) + rng.choice((-1, 0, 0, 1))
    else:
        value = rng.uniform(q.min, q.max)
    value = min(max(value, q.min), q.max)
    if q.integer:
        return int(round(value))
    return int(value) if rng.random() < 0.7 else round(value, 1)


def _answer(q: Question, near: list[float], rng: random.Random) -> Any:
    if q.type == "text":
        return rng.choice(("", "Worried about time off work."))
    if q.allow_unknown and rng.random() < UNKNOWN_SHARE:
        return UNKNOWN
    if q.type == "number":
        return _number(q, near, rng)
    if q.type == "multiple":
        if rng.random() < 0.5:
            return []
        return rng.sample(q.values, k=min(len(q.values), rng.choice((1, 1, 2))))
    return rng.choice(q.values)


def generate(aid: DecisionAid, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """`count` answer sets, the same ones for the same seed, rulebook and questionnaire."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    near = thresholds(aid)
    questions = list(aid.questionnaire.questions.values())
    bases = [aid.read_answers(path).model_dump() for path in sorted(EXAMPLES.glob("*.yaml"))]
    for _ in range(count):
        base = rng.choice(bases)
        yield {
            q.id: _answer(q, near.get(q.id, []), rng) if rng.random() < CHANGE_SHARE else base[q.id] for q in questions
        }
