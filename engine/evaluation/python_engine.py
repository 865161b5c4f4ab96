"""The second rule engine: the compiled ruleset run in plain Python, where durable_rules cannot load.

durable_rules 2.0.28, its last release, does not import on Python 3.13 or later (its C module
calls `PyEval_CallObject`, which 3.13 removed). This engine runs the very ruleset the compiler
writes for durable_rules (the same JSON conditions, the same branches, the same priorities), so
a rulebook means the same on both: a branch fires when its patient tests hold and its joined
derived facts have the wanted values; lower priorities fire first, and within a priority the
ruleset's own order; a rule fires once (its first branch that holds), and a derived rule asserts
its fact once; an unknown mark, at its priority, sets its facts that no rule set to unknown.
The tests hold its firings, in order and with their facts, equal to durable's on the golden
cases and on generated patients, wherever both run.

It is not the independent check: `engine.evaluation.evaluator` reads the rule files without the
compiler, and both engines are held to agree with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError
from engine.evaluation.compiler import Branch, CompiledRuleset, JoinValue, UnknownMark, joined_facts
from engine.evaluation.firing import Firing
from engine.evaluation.inference import Patient
from engine.model.facts import unflatten
from engine.model.questionnaire import UNKNOWN, Questionnaire

Facts = dict[str, Any]
Test = Callable[[Facts], bool]

_OPERATORS = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">=", "$neq": "!="}

_KINDS = {
    bool: "type({v}) is bool",
    int: "type({v}) in _NUMBER",
    float: "type({v}) in _NUMBER",
    str: "type({v}) is str",
}
"""durable compares numbers with numbers, strings with strings, booleans with booleans; no other pair matches."""


def _compared(name: str, symbol: str, operand: Any) -> str:
    """Python source for `fact <symbol> operand`, false when the fact is missing or of another kind."""
    kind = _KINDS.get(type(operand))
    if kind is None:
        raise EngineError(f"the Python engine cannot compare with {operand!r} (the compiler wrote something new)")
    value = f"f.get({name!r})"
    return f"({kind.format(v=value)} and {value} {symbol} {operand!r})"


def condition_source(expression: dict[str, Any]) -> str:
    """Python source (over the patient's flat fact `f`) that holds exactly when durable's expression would.

    Only what the compiler writes is understood; anything else is refused (an `EngineError`), so a
    change to the compiler cannot silently mean something else here. Names and operands are written
    with `repr`, so no text from a rule file is ever read as code.
    """
    parts = []
    for key, value in expression.items():
        if key in ("$and", "$or"):
            joined = f" {key[1:]} ".join(condition_source(term) for term in value)
            parts.append(f"({joined})" if value else ("True" if key == "$and" else "False"))
        elif key in ("$ex", "$nex"):
            ((name, _),) = value.items()
            parts.append(f"({name!r} {'in' if key == '$ex' else 'not in'} f)")
        elif key in _OPERATORS:
            ((name, operand),) = value.items()
            parts.append(_compared(name, _OPERATORS[key], operand))
        elif key.startswith("$"):
            raise EngineError(f"the Python engine does not know the operator {key} (the compiler wrote something new)")
        else:
            parts.append(_compared(key, "==", value))
    return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"


def compile_test(expression: dict[str, Any]) -> Test:
    """A function of the patient's flat fact that holds exactly when durable's expression would."""
    test: Test = eval(f"lambda f: {condition_source(expression)}", {"_NUMBER": (int, float)})  # noqa: S307 - see condition_source
    return test


@dataclass(frozen=True)
class _Step:
    """One compiled branch, ready to run: its patient test and the derived facts it joins on."""

    branch: Branch
    patient: Test
    joins: tuple[tuple[str, str, JoinValue], ...]


class PythonEngine:
    """Runs one compiled ruleset in Python, one patient at a time: the same interface as `DurableEngine`."""

    def __init__(self, compiled: CompiledRuleset, questionnaire: Questionnaire) -> None:
        self._compiled = compiled
        self._questionnaire = questionnaire
        self._thread = threading.get_ident()
        steps: list[tuple[int, int, _Step | UnknownMark]] = [(mark.priority, -1, mark) for mark in compiled.marks]
        for n, (name, body) in enumerate(compiled.definition.items()):
            ((_, expression),) = body["all"][0].items()
            steps.append((body["pri"], n, _Step(compiled.branches[name], compile_test(expression), joined_facts(body))))
        self._steps = [step for _, _, step in sorted(steps, key=lambda entry: entry[:2])]

    def run(self, patient: dict[str, Any]) -> list[Firing]:
        """Evaluate one patient's flattened fact (see `flatten`); return the firings in the order they fire."""
        fact = {k: v for k, v in patient.items() if k != "sid"}
        return self._evaluate(fact, lambda fact_id: unflatten(fact, fact_id, self._questionnaire))[0]

    def run_patient(self, patient: Patient) -> list[Firing]:
        """Evaluate one patient (see `PatientEncoder`); return the firings in the order they fire."""
        return self._run(patient)[0]

    def run_profiles(self, patient: Patient) -> dict[str, list[Firing]]:
        """Evaluate one patient on a joint ruleset (see `compile_joint`): each profile's firings, in order."""
        return self._compiled.by_profile(*self._run(patient))

    def _run(self, patient: Patient) -> tuple[list[Firing], list[int]]:
        if threading.get_ident() != self._thread:
            raise EngineError("a rule engine was used from a second thread; use one engine per thread or process")
        return self._evaluate(patient.flat(), patient.fact)

    def _evaluate(self, facts: Facts, read: Callable[[str], Any]) -> tuple[list[Firing], list[int]]:
        """The firings in the order they fire, and the variant of each firing's rule (see `compile_joint`)."""
        derived: dict[str, JoinValue] = {}
        fired: set[tuple[str, int]] = set()
        answers: dict[str, Any] = {}
        firings = []
        variants = []
        for step in self._steps:
            if isinstance(step, UnknownMark):
                for name in step.facts:
                    derived.setdefault(name, UNKNOWN)
                continue
            branch = step.branch
            key = (branch.rule.id, branch.variant)
            if key in fired or not all(derived.get(joined) == value for joined, _, value in step.joins):
                continue
            if not step.patient(facts):
                continue
            fired.add(key)
            found: dict[str, Any] = {}
            for fact in branch.answer_facts:
                if fact not in answers:
                    answers[fact] = read(fact)
                found[fact] = answers[fact]
            for _, name, value in step.joins:
                found[name] = value
            firings.append(Firing(branch.rule.id, branch.holds, branch.index, found))
            variants.append(branch.variant)
            derive = branch.derives
            if derive is not None and derive not in derived:
                derived[derive] = branch.holds
        return firings, variants
