"""An independent evaluator of the rule files, compiled to plain Python once per rulebook and profile.

It reads the same rule files as the durable_rules compiler but shares none of its code. Each
rule's condition is written out as Python source (`_Writer`): three-valued (Kleene) logic that
stops at the first part that decides (`all` at a false part, `any` at a true one), each atom's
test taken from its operator's one definition (`conditions.OP_TESTS`), its threshold a constant.
Derived facts are computed stratum by stratum. The source is compiled once, into one function
per rule and two whole-rulebook functions: the truths of every rule, and the firings.

For `why-not` and `explain`, `evaluate_rules` keeps the slower full record: every atom of the
rules asked about evaluated by `Condition.truth` (no short-circuit), with the patient's value and
the threshold. Tests hold the compiled code to `Condition.truth` on every operator and unknown,
and the firings to durable_rules' on the golden cases and on generated patients.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from engine.evaluation.firing import Firing
from engine.model.conditions import OP_TESTS, Condition, Truth, operand_constant
from engine.model.facts import known
from engine.model.questionnaire import UNKNOWN
from engine.model.rulebook import Rule, Rulebook, derived_depth

Answers = dict[str, Any]
RuleTest = Callable[[Answers, dict[str, Truth]], Truth]


@dataclass(frozen=True)
class AtomResult:
    """One atom evaluated for one patient: the patient's value, the threshold and the outcome."""

    fact: str
    op: str
    operand: Any
    param: str | None
    actual: Any
    truth: Truth


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    truth: Truth
    atoms: tuple[AtomResult, ...]


class _Writer:
    """Writes conditions as Python statements over the answers `v` and the derived facts `d`."""

    def __init__(self, derived: Collection[str], params: dict[str, int | float]) -> None:
        self.derived = derived
        self.params = params
        self.constants: dict[str, Any] = {"U": UNKNOWN}
        self._named: dict[tuple[type, Any], str] = {}
        self._temps = 0

    def constant(self, value: Any) -> str:
        """A name in the generated module for a value (never its text in the source: no rule text is code)."""
        value = operand_constant(value)
        key = (type(value), value)
        if key not in self._named:
            self._named[key] = f"K{len(self._named)}"
            self.constants[self._named[key]] = value
        return self._named[key]

    def temp(self) -> str:
        self._temps += 1
        return f"t{self._temps}"

    def atom(self, node: Condition) -> str:
        """An expression for the atom's truth: unknown when the value is (missing, None or "unknown")."""
        assert node.fact is not None and node.op is not None
        fact = self.constant(node.fact)
        if node.fact in self.derived:
            unknown = f"(a := d.get({fact})) is None"
        else:
            unknown = f"(a := v.get({fact})) is None or a == U"  # the value read once, into `a`
        if node.op == "is_unknown":
            return f"({unknown})"
        if node.op == "is_known":
            return f"(not ({unknown}))"
        operand = self.params[node.param] if node.param is not None else node.value
        test = OP_TESTS[node.op].format(a="a", k=self.constant(operand))
        return f"(None if {unknown} else {test})"

    def node(self, node: Condition, target: str, indent: str) -> list[str]:
        """Statements that set `target` to the node's truth, stopping at the first part that decides it."""
        if node.fact is not None:
            return [f"{indent}{target} = {self.atom(node)}"]
        if node.not_ is not None:
            inner = self.temp()
            return [
                *self.node(node.not_, inner, indent),
                f"{indent}{target} = None if {inner} is None else not {inner}",
            ]
        is_all = node.all is not None
        children = node.all if node.all is not None else node.any or []
        decisive = not is_all
        lines = [f"{indent}{target} = {is_all}"]
        if not children:
            return lines
        lines.append(f"{indent}while True:")
        inner = indent + "    "
        for child in children:
            part = self.temp()
            lines += self.node(child, part, inner)
            lines += [
                f"{inner}if {part} is {decisive}:",
                f"{inner}    {target} = {decisive}",
                f"{inner}    break",
                f"{inner}if {part} is None:",
                f"{inner}    {target} = None",
            ]
        lines.append(f"{inner}break")
        return lines


def compile_condition(node: Condition, derived: Collection[str], params: dict[str, int | float]) -> RuleTest:
    """One condition compiled alone, `(answers, derived facts) -> truth`: as a rule's, from the same writer."""
    writer = _Writer(derived, params)
    lines = ["def test(v, d):", *writer.node(node, "t", "    "), "    return t"]
    namespace: dict[str, Any] = dict(writer.constants)
    exec(compile("\n".join(lines) + "\n", "<condition>", "exec"), namespace)  # noqa: S102 - see Evaluator
    test: RuleTest = namespace["test"]
    return test


@dataclass(frozen=True)
class RuleSubset:
    """Some rules of an evaluator, in its order, with their compiled tests: see `Evaluator.subset`.

    `indices`: each rule's place in the evaluator's `rules` (and in what `Evaluator.truths` returns).
    """

    rules: list[Rule]
    tests: list[RuleTest]
    indices: list[int]
    _deriving: list[tuple[Rule, RuleTest, str]] = field(init=False, repr=False, compare=False)
    _concluding: list[tuple[Rule, RuleTest]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # In the evaluator's order the rules deriving facts come first (by stratum), then the others.
        steps = list(zip(self.rules, self.tests, strict=True))
        first = next((n for n, (rule, _) in enumerate(steps) if rule.then.derive is None), len(steps))
        deriving = [(rule, test, rule.then.derive) for rule, test in steps[:first] if rule.then.derive is not None]
        if any(rule.then.derive is not None for rule, _ in steps[first:]):
            raise ValueError("a subset of an evaluator's rules lists the rules deriving facts first")
        object.__setattr__(self, "_deriving", deriving)
        object.__setattr__(self, "_concluding", steps[first:])

    def __call__(self, answers: Answers, derived: dict[str, Truth] | None = None) -> list[tuple[Rule, Truth]]:
        """Each rule with its truth on these answers; `derived` holds the derived facts known before, and
        receives those these rules derive."""
        if derived is None:
            derived = {}
        out = []
        for rule, test, derive in self._deriving:
            truth = derived[derive] = test(answers, derived)
            out.append((rule, truth))
        out += [(rule, test(answers, derived)) for rule, test in self._concluding]
        return out

    def split(self, varied: Collection[str]) -> tuple[RuleSubset, RuleSubset]:
        """The rules whose truth cannot change with the `varied` answers, and those whose truth can
        (they read one, directly or through the derived facts of rules that do)."""
        changing = set(varied)
        fixed: list[int] = []
        moving: list[int] = []
        for index, rule in enumerate(self.rules):
            if any(atom.fact in changing for atom in rule.when.atoms()):
                moving.append(index)
                if rule.then.derive is not None:
                    changing.add(rule.then.derive)
            else:
                fixed.append(index)
        return self._pick(fixed), self._pick(moving)

    def _pick(self, indices: list[int]) -> RuleSubset:
        return RuleSubset(
            [self.rules[i] for i in indices], [self.tests[i] for i in indices], [self.indices[i] for i in indices]
        )


class SharedTests:
    """Rules' compiled tests, shared by the evaluators of a rulebook's profiles (see `Evaluator`).

    A rule's test is written from its condition and the values of the parameters it reads, and from
    nothing else of its profile: in each profile where those values are the same (most rules, in
    most profiles) it is the same source, compiled once. A test is taken only for the very rule
    object it was compiled for, so evaluators of another rulebook never share one.
    """

    def __init__(self) -> None:
        self._tests: dict[tuple[str, tuple[tuple[str, str, int | float], ...]], tuple[Rule, RuleTest]] = {}

    @staticmethod
    def key(rule: Rule, params: dict[str, int | float]) -> tuple[str, tuple[tuple[str, str, int | float], ...]]:
        """The rule's id and each parameter it reads with its value (and the value's type: 1 is not 1.0)."""
        read = sorted({atom.param for atom in rule.when.atoms() if atom.param is not None})
        return rule.id, tuple((name, type(params[name]).__name__, params[name]) for name in read)

    def get(self, rule: Rule, params: dict[str, int | float]) -> RuleTest | None:
        found = self._tests.get(self.key(rule, params))
        return found[1] if found is not None and found[0] is rule else None

    def put(self, rule: Rule, params: dict[str, int | float], test: RuleTest) -> None:
        self._tests[self.key(rule, params)] = (rule, test)


class Evaluator:
    """Evaluates a rulebook for one profile without durable_rules.

    `shared`: rules' tests compiled for other profiles of the rulebook, taken where they are the same
    here, and given this profile's (see `SharedTests`).
    """

    def __init__(self, rulebook: Rulebook, profile: str, shared: SharedTests | None = None) -> None:
        self.rulebook = rulebook
        self.profile = profile
        self._shared = shared
        self.params = {pid: p.value(profile) for pid, p in rulebook.parameters.items()}
        active = rulebook.active_rules(profile)
        depth = derived_depth(active, rulebook.derived_facts)
        self.rules: list[Rule] = sorted(active, key=lambda r: (r.then.derive is None, depth[r.id]))
        """The rules in the order they are evaluated: derived facts by stratum, then the others."""
        self._index = {r.id: i for i, r in enumerate(self.rules)}
        self._writer = _Writer(rulebook.derived_facts, self.params)
        self._bodies = [self._writer.node(rule.when, "t", "    ") for rule in self.rules]

    def _compiled(self, name: str, lines: list[str]) -> Any:
        """The function `name` of this generated source, compiled."""
        namespace: dict[str, Any] = {**self._writer.constants, "Firing": Firing}
        code = compile("\n".join(lines) + "\n", f"<evaluator {self.rulebook.version} {self.profile} {name}>", "exec")
        exec(code, namespace)  # noqa: S102 - our own generated source; rule text enters it only as constants
        return namespace[name]

    @cached_property
    def _tests(self) -> list[RuleTest]:
        """One function per rule, `(answers, derived facts) -> truth`: those not shared (see `SharedTests`)
        compiled together."""
        shared = self._shared
        found = [None if shared is None else shared.get(rule, self.params) for rule in self.rules]
        missing = [number for number, test in enumerate(found) if test is None]
        lines = []
        for number in missing:
            lines += [f"def r{number}(v, d):", *self._bodies[number], "    return t", ""]
        lines += ["def tests():", f"    return [{', '.join(f'r{n}' for n in missing)}]"]
        compiled: list[RuleTest] = self._compiled("tests", lines)() if missing else []
        for number, test in zip(missing, compiled, strict=True):
            found[number] = test
            if shared is not None:
                shared.put(self.rules[number], self.params, test)
        tests = [test for test in found if test is not None]
        assert len(tests) == len(self.rules)
        return tests

    @cached_property
    def _truths(self) -> Callable[[Answers], list[Truth]]:
        lines = ["def truths(v):", "    d = {}", "    out = []"]
        for rule, body in zip(self.rules, self._bodies, strict=True):
            lines += [*body, *self._store(rule), "    out.append(t)"]
        return self._compiled("truths", [*lines, "    return out"])  # type: ignore[no-any-return]

    @cached_property
    def _firings(self) -> Callable[[Answers], list[Firing]]:
        lines = ["def firings(v):", "    d = {}", "    out = []"]
        constant = self._writer.constant
        for rule, body in zip(self.rules, self._bodies, strict=True):
            facts = ", ".join(f"{constant(f)}: {read}" for f, read in self._facts_read(rule).items())
            fired = f"Firing({constant(rule.id)}, {{holds}}, 0, {{{{{facts}}}}})"
            lines += [*body, *self._store(rule)]
            if rule.then.derive is None:
                lines += ["    if t is True:", f"        out.append({fired.format(holds='True')})"]
            else:
                lines += ["    if t is not None:", f"        out.append({fired.format(holds='t')})"]
        return self._compiled("firings", [*lines, "    return out"])  # type: ignore[no-any-return]

    def _store(self, rule: Rule) -> list[str]:
        derive = rule.then.derive
        return [] if derive is None else [f"    d[{self._writer.constant(derive)}] = t"]

    def _facts_read(self, rule: Rule) -> dict[str, str]:
        """The facts a firing of `rule` shows, each as the source that reads it (answers as given)."""
        out: dict[str, str] = {}
        for atom in rule.when.atoms():
            assert atom.fact is not None
            if atom.fact not in out:
                read = "d" if atom.fact in self.rulebook.derived_facts else "v"
                out[atom.fact] = f"{read}.get({self._writer.constant(atom.fact)})"
        return out

    def truths(self, answers: Answers) -> list[Truth]:
        """Each rule's truth (in the order of `rules`), stopping in each condition where its truth is decided."""
        return self._truths(answers)

    def firings(self, answers: Answers) -> list[Firing]:
        """The rules that hold (and derived facts shown false), with the facts each read."""
        return self._firings(answers)

    def firing_keys(self, answers: Answers) -> list[tuple[str, bool]]:
        """The key of each of `firings(answers)`, in order, from the rules' truths (no facts read, no firings
        made): what `rules verify` holds the engines to. A rule fires when it holds; a derived fact's rule
        fires when its truth is known, holding or not. (It runs each rule's compiled test, which `rules verify`
        compiles anyway, rather than compiling `truths` too.)"""
        derived: dict[str, Truth] = {}
        out = []
        for rule_id, derive, test in self._keyed:
            truth = test(answers, derived)
            if derive is None:
                if truth is True:
                    out.append((rule_id, True))
            else:
                derived[derive] = truth
                if truth is not None:
                    out.append((rule_id, truth))
        return out

    @cached_property
    def _keyed(self) -> list[tuple[str, str | None, RuleTest]]:
        """Each rule's id, the fact it derives (None for none) and its compiled test, in order."""
        return [(rule.id, rule.then.derive, test) for rule, test in zip(self.rules, self._tests, strict=True)]

    def subset(self, rule_ids: Collection[str]) -> RuleSubset:
        """These rules alone, evaluated by the compiled code of this evaluator (nothing compiled again).

        They must include the rules deriving every derived fact they read, down the chains.
        """
        chosen = sorted(self._index[r] for r in rule_ids)
        return RuleSubset([self.rules[i] for i in chosen], [self._tests[i] for i in chosen], chosen)

    def evaluate_rules(
        self, answers: Answers, only: Collection[str] | None = None
    ) -> tuple[list[RuleResult], dict[str, Truth]]:
        """Rules' truths with every atom's record (for `why-not` and `explain`), and the derived facts' values.

        Every atom is evaluated (no short-circuit) by `Condition.truth`, of every rule or of the rules
        in `only`; the derived facts they read come from the compiled code.
        """
        truths = self._truths(answers)
        derived = {r.then.derive: t for r, t in zip(self.rules, truths, strict=True) if r.then.derive is not None}
        values: dict[str, Any] = {k: known(v) for k, v in answers.items()}
        values.update(derived)
        results = []
        for rule, truth in zip(self.rules, truths, strict=True):
            if only is not None and rule.id not in only:
                continue
            atoms: list[AtomResult] = []
            full = rule.when.truth(values, self.params, _recorder(atoms))
            if full != truth:
                raise AssertionError(f"{rule.id}: the compiled evaluator gives {truth}, Condition.truth {full}")
            results.append(RuleResult(rule, truth, tuple(atoms)))
        return results, derived


def _recorder(atoms: list[AtomResult]) -> Callable[[Condition, Truth, Any, Any], None]:
    """A `Condition.truth` visitor that keeps each atom's record in `atoms`."""

    def record(atom: Condition, truth: Truth, actual: Any, operand: Any) -> None:
        if atom.fact is not None and atom.op is not None:
            atoms.append(AtomResult(atom.fact, atom.op, operand, atom.param, actual, truth))

    return record
