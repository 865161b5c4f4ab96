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

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import EngineError
from engine.evaluation.compiler import Branch, CompiledRuleset, JoinValue, UnknownMark, joined_facts
from engine.evaluation.firing import Firing, ProfileFirings
from engine.evaluation.inference import Patient
from engine.model.facts import unflatten
from engine.model.questionnaire import UNKNOWN, Questionnaire

Facts = dict[str, Any]
_UNREAD = object()
Test = Callable[[Facts], bool]

_OPERATORS = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">=", "$neq": "!="}

_KINDS = {
    bool: "type({v}) is bool",
    int: "type({v}) in _NUMBER",
    float: "type({v}) in _NUMBER",
    str: "type({v}) is str",
}
"""durable compares numbers with numbers, strings with strings, booleans with booleans; no other pair matches."""


def _compared(name: str, symbol: str, operand: Any, read: Callable[[str], str], known: Mapping[str, str]) -> str:
    """Python source for `fact <symbol> operand`, false when the fact is missing or of another kind.

    A fact in `known` has that value wherever this test is reached (an earlier test of the same
    conjunction required it): the test is then decided here, by this very source run on that value.
    """
    kind = _KINDS.get(type(operand))
    if kind is None:
        raise EngineError(f"the Python engine cannot compare with {operand!r} (the compiler wrote something new)")
    if name in known:
        return repr(_decided(name, symbol, operand, known[name]))
    value = read(name)
    if symbol == "==" and type(operand) is str:
        return f"{value} == {operand!r}"  # only a string equals a string (the facts are read from JSON)
    if symbol == "==" and type(operand) is bool:
        return f"{value} is {operand!r}"
    return f"({kind.format(v=value)} and {value} {symbol} {operand!r})"


@functools.lru_cache(maxsize=1024, typed=True)
def _decided(name: str, symbol: str, operand: Any, value: str) -> bool:
    """Whether `fact <symbol> operand` holds for a fact whose value is `value` (the test's own source, run)."""
    source = _compared(name, symbol, operand, _get, {})
    return bool(eval(f"lambda f: {source}", {"_NUMBER": (int, float)})({name: value}))  # noqa: S307 - see condition_source


def _get(name: str) -> str:
    """The source reading one property of the patient's flat fact `f`."""
    return f"f.get({name!r})"


def _joined(parts: list[str], how: str) -> str:
    """`parts` joined by `and` or `or`, with the parts already decided (the source `True` or `False`) folded in."""
    decisive, neutral = ("False", "True") if how == "and" else ("True", "False")
    if decisive in parts:
        return decisive
    parts = [part for part in parts if part != neutral]
    if not parts:
        return neutral
    return parts[0] if len(parts) == 1 else "(" + f" {how} ".join(parts) + ")"


def condition_source(
    expression: dict[str, Any], read: Callable[[str], str] = _get, known: Mapping[str, str] | None = None
) -> str:
    """Python source (over the patient's flat fact `f`) that holds exactly when durable's expression would.

    Only what the compiler writes is understood; anything else is refused (an `EngineError`), so a
    change to the compiler cannot silently mean something else here. Names and operands are written
    with `repr`, so no text from a rule file is ever read as code. `read` writes the source reading
    a property (by default `f.get(name)`); `known`: properties whose value the test is only reached
    with. The terms of a conjunction are read left to right, as durable's: a term after `{name:
    "text"}` is only reached where the property is that text, and one it decides is folded away
    (the alpha network's bucket tests after `t == "patient"`, see `compiler._spread`).
    """
    return _conjunction([{key: value} for key, value in expression.items()], read, known or {})


def _conjunction(terms: list[dict[str, Any]], read: Callable[[str], str], known: Mapping[str, str]) -> str:
    fixed = dict(known)
    parts = []
    for term in terms:
        parts.append(_term(term, read, fixed))
        fixed.update((k, v) for k, v in term.items() if not k.startswith("$") and type(v) is str)
    return _joined(parts, "and")


def _term(expression: dict[str, Any], read: Callable[[str], str], known: Mapping[str, str]) -> str:
    if len(expression) != 1:
        return condition_source(expression, read, known)
    ((key, value),) = expression.items()
    if key == "$and":
        return _conjunction(value, read, known)
    if key == "$or":
        return _joined([condition_source(term, read, known) for term in value], "or")
    if key in ("$ex", "$nex"):
        ((name, _),) = value.items()
        return f"({name!r} {'in' if key == '$ex' else 'not in'} f)"
    if key in _OPERATORS:
        ((name, operand),) = value.items()
        return _compared(name, _OPERATORS[key], operand, read, known)
    if key.startswith("$"):
        raise EngineError(f"the Python engine does not know the operator {key} (the compiler wrote something new)")
    return _compared(key, "==", value, read, known)


def compile_test(expression: dict[str, Any]) -> Test:
    """A function of the patient's flat fact that holds exactly when durable's expression would."""
    test: Test = eval(f"lambda f: {condition_source(expression)}", {"_NUMBER": (int, float)})  # noqa: S307 - see condition_source
    return test


class _Reads:
    """The patient's properties a program reads, each read once into a local at the start of a run (`p0`, ...)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        local = self.names.get(name)
        if local is None:
            local = self.names[name] = f"p{len(self.names)}"
        return local

    def lines(self) -> list[str]:
        return [f"    {local} = {_get(name)}" for name, local in self.names.items()]


def _join_source(name: str, value: JoinValue) -> str:
    """Python source (over the derived facts `d`) that holds when the derived fact `name` has `value`."""
    if isinstance(value, bool):
        return f"d.get({name!r}) is {value!r}"
    return f"d.get({name!r}) == {value!r}"


def _program(
    steps: list[Branch | UnknownMark],
    tests: list[str],
    joins: list[tuple[tuple[str, str, JoinValue], ...]],
    reads: _Reads,
) -> str:
    """The whole ruleset as one Python function of the patient's flat fact `f`: the steps in firing order.

    It reads each property of the patient the `tests` read once (`reads`), and returns the indices
    of the branches that fired, in order. Each rule fires once (a local flag per rule and variant);
    a derived fact is asserted once; an unknown mark sets its facts no rule set. Names and operands
    are written with `repr` (see `condition_source`).
    """
    lines = ["def run(f):", *reads.lines(), "    d = {}", "    fired = []", "    add = fired.append"]
    flags: dict[tuple[str, int], str] = {}
    body: list[str] = []
    for n, step in enumerate(steps):
        if isinstance(step, UnknownMark):
            body += [f"    if {name!r} not in d: d[{name!r}] = {UNKNOWN!r}" for name in step.facts]
            continue
        flag = flags.setdefault((step.rule.id, step.variant), f"r{len(flags)}")
        tests_here = [f"not {flag}", *(_join_source(joined, value) for joined, _, value in joins[n]), tests[n]]
        body.append(f"    if {' and '.join(tests_here)}:")
        body.append(f"        {flag} = True")
        body.append(f"        add({n})")
        if step.derives is not None:
            body.append(f"        if {step.derives!r} not in d: d[{step.derives!r}] = {step.holds!r}")
    lines += [f"    {flag} = False" for flag in flags.values()]
    return "\n".join([*lines, *body, "    return fired"]) + "\n"


class PythonEngine:
    """Runs one compiled ruleset in Python, one patient at a time: the same interface as `DurableEngine`.

    The ruleset is written once as one Python function (see `_program`): a patient is one call,
    with no per-branch dispatch.
    """

    def __init__(self, compiled: CompiledRuleset, questionnaire: Questionnaire) -> None:
        self._compiled = compiled
        self._questionnaire = questionnaire
        self._thread = threading.get_ident()
        order: list[tuple[int, int, Branch | UnknownMark, str, tuple[tuple[str, str, JoinValue], ...]]] = [
            (mark.priority, -1, mark, "", ()) for mark in compiled.marks
        ]
        reads = _Reads()
        for n, (name, body) in enumerate(compiled.definition.items()):
            ((_, expression),) = body["all"][0].items()
            test = condition_source(expression, reads)
            order.append((body["pri"], n, compiled.branches[name], test, joined_facts(body)))
        order.sort(key=lambda entry: entry[:2])
        self._steps = [entry[2] for entry in order]
        self._joins = [entry[4] for entry in order]
        # what a firing of each step shows, read once: rule, polarity, branch, answers read, joined facts, variant
        self._shown: list[tuple[str, bool, int, tuple[str, ...], tuple[tuple[str, JoinValue], ...], int] | None] = [
            (
                step.rule.id,
                step.holds,
                step.index,
                step.answer_facts,
                tuple((name, value) for _, name, value in joins),
                step.variant,
            )
            if isinstance(step, Branch)
            else None
            for step, joins in zip(self._steps, self._joins, strict=True)
        ]
        namespace: dict[str, Any] = {"_NUMBER": (int, float)}
        exec(_program(self._steps, [e[3] for e in order], self._joins, reads), namespace)  # noqa: S102 - see _program
        self._program: Callable[[Facts], list[int]] = namespace["run"]

    def run(self, patient: dict[str, Any]) -> list[Firing]:
        """Evaluate one patient's flattened fact (see `flatten`); return the firings in the order they fire."""
        fact = {k: v for k, v in patient.items() if k != "sid"}
        return self._evaluate(fact, lambda fact_id: unflatten(fact, fact_id, self._questionnaire))[0]

    def run_patient(self, patient: Patient) -> list[Firing]:
        """Evaluate one patient (see `PatientEncoder`); return the firings in the order they fire."""
        return self._run(patient)[0]

    def run_profiles(self, patient: Patient) -> ProfileFirings:
        """Evaluate one patient on a joint ruleset (see `compile_joint`): each profile's firings, in order."""
        return self._compiled.by_profile(*self._run(patient))

    def _run(self, patient: Patient) -> tuple[list[Firing], list[int]]:
        if threading.get_ident() != self._thread:
            raise EngineError("a rule engine was used from a second thread; use one engine per thread or process")
        return self._evaluate(patient.flat(), patient.fact)

    def _evaluate(self, facts: Facts, read: Callable[[str], Any]) -> tuple[list[Firing], list[int]]:
        """The firings in the order they fire, and the variant of each firing's rule (see `compile_joint`)."""
        answers: dict[str, Any] = {}
        firings = []
        variants = []
        shown = self._shown
        for n in self._program(facts):
            step = shown[n]
            assert step is not None  # only branches fire
            rule_id, holds, index, answer_facts, joins, variant = step
            found: dict[str, Any] = {}
            for fact in answer_facts:
                value = answers.get(fact, _UNREAD)
                if value is _UNREAD:
                    value = answers[fact] = read(fact)
                found[fact] = value
            for name, joined in joins:
                found[name] = joined
            firings.append(Firing(rule_id, holds, index, found))
            variants.append(variant)
        return firings, variants
