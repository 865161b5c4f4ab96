"""An independent evaluator of the rule files, in plain Python, that never short-circuits.

It reads the same rule files as the compiler but shares none of its code: conditions
are evaluated directly on the answers with three-valued (Kleene) logic, every atom is
evaluated (so `why-not` can report every failed condition, not just the first), and
derived facts are computed stratum by stratum. A test holds its firings equal to
durable_rules' on the golden cases and on generated patients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.evaluation.firing import Firing
from engine.model.conditions import Condition, Truth
from engine.model.facts import known
from engine.model.rulebook import Rule, Rulebook, derived_depth


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


class Evaluator:
    """Evaluates a rulebook for one profile without durable_rules."""

    def __init__(self, rulebook: Rulebook, profile: str) -> None:
        self.rulebook = rulebook
        self.rules = rulebook.active_rules(profile)
        self.params = {pid: p.value(profile) for pid, p in rulebook.parameters.items()}
        depth = derived_depth(self.rules, rulebook.derived_facts)
        self._order = sorted(self.rules, key=lambda r: (r.then.derive is None, depth[r.id]))

    def _eval(self, node: Condition, values: dict[str, Any], atoms: list[AtomResult]) -> Truth:
        def record(atom: Condition, truth: Truth, actual: Any, operand: Any) -> None:
            if atom.fact is not None and atom.op is not None:
                atoms.append(AtomResult(atom.fact, atom.op, operand, atom.param, actual, truth))

        return node.truth(values, self.params, record)

    def evaluate_rules(self, answers: dict[str, Any]) -> tuple[list[RuleResult], dict[str, Truth]]:
        """Every active rule's truth and atoms, plus the derived facts' values."""
        values: dict[str, Any] = {k: known(v) for k, v in answers.items()}
        derived: dict[str, Truth] = {}
        results = []
        for rule in self._order:
            atoms: list[AtomResult] = []
            truth = self._eval(rule.when, values, atoms)
            results.append(RuleResult(rule, truth, tuple(atoms)))
            if rule.then.derive is not None:
                derived[rule.then.derive] = truth
                values[rule.then.derive] = truth
        return results, derived

    def firings(self, answers: dict[str, Any]) -> list[Firing]:
        """The rules that hold (and derived facts shown false), with the facts each read."""
        results, _ = self.evaluate_rules(answers)
        out = []
        for res in results:
            if res.truth is None or (res.truth is False and res.rule.then.derive is None):
                continue
            facts = {a.fact: answers.get(a.fact, a.actual) for a in res.atoms}
            out.append(Firing(res.rule.id, bool(res.truth), 0, facts))
        return out
