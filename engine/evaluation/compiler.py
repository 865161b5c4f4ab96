"""Compile a rulebook, for one profile, into the durable_rules JSON ruleset format.

Each rule's condition is put in disjunctive normal form; each conjunction becomes one
durable rule. Answer atoms join on the single patient fact; derived-fact atoms join on
`derived` facts asserted by earlier rules. A derived-layer rule is compiled twice: once
for its condition being true (asserting the fact as true) and once for its negation
(asserting it as false), so no rule ever needs "absence" (durable's `$not`), and an
unknown answer leaves the derived fact unknown, exactly as the evaluator's Kleene logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.model.conditions import Condition, dnf, effective_op
from engine.model.facts import DERIVED, PATIENT, SEP
from engine.model.questionnaire import UNKNOWN, Questionnaire
from engine.model.rulebook import Rule, Rulebook, derived_depth


@dataclass(frozen=True)
class Branch:
    """One durable rule: a conjunction of one rulebook rule, for one polarity."""

    rule: Rule
    holds: bool
    index: int
    answer_facts: tuple[str, ...]
    derived_facts: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRuleset:
    name: str
    definition: dict[str, Any]
    branches: dict[str, Branch]
    parameters: dict[str, int | float]
    last_priority: int = 1000
    """A priority after every rule's (durable_rules runs higher numbers later): the engine's own bookkeeping rules."""


def _operand(atom: Condition, params: dict[str, int | float]) -> Any:
    return params[atom.param] if atom.param is not None else atom.value


def _answer_expr(
    atom: Condition, negated: bool, questionnaire: Questionnaire, params: dict[str, int | float]
) -> dict[str, Any]:
    """The durable expression that is true exactly when the (possibly negated) atom is true."""
    assert atom.fact is not None
    op = effective_op(atom, negated)
    name = atom.fact
    question = questionnaire.questions[name]
    value = _operand(atom, params)
    if question.type == "multiple":
        probe = f"{name}{SEP}{question.values[0]}"
        if op == "is_unknown":
            return {"$nex": {probe: 1}}
        if op == "is_known":
            return {"$ex": {probe: 1}}
        if op in ("contains", "not_contains"):
            return {f"{name}{SEP}{value}": op == "contains"}
        terms = [{f"{name}{SEP}{v}": op == "contains_any"} for v in value]
        return {"$or": terms} if op == "contains_any" else {"$and": terms}
    if question.type == "number":
        if op == "is_unknown":
            return {"$nex": {name: 1}}
        if op == "is_known":
            return {"$ex": {name: 1}}
        symbol = {"==": None, "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}[op]
        return {name: value} if symbol is None else {symbol: {name: value}}
    # single and yes_no: "unknown" is a stored string, and must never satisfy a comparison
    if op == "is_unknown":
        return {name: UNKNOWN}
    if op == "is_known":
        return {"$neq": {name: UNKNOWN}}
    if op == "==":
        return {name: value}
    if op == "in":
        return {"$or": [{name: v} for v in value]}
    excluded = [value] if op == "!=" else list(value)
    return {"$and": [{"$neq": {name: v}} for v in [*excluded, UNKNOWN]]}


def compile_rulebook(rulebook: Rulebook, profile: str, questionnaire: Questionnaire) -> CompiledRuleset:
    """Build the durable ruleset definition for one profile (actions are attached by the engine)."""
    rules = rulebook.active_rules(profile)
    params = {pid: p.value(profile) for pid, p in rulebook.parameters.items()}
    depth = derived_depth(rules, rulebook.derived_facts)
    top = max(depth.values(), default=0) + 1
    definition: dict[str, Any] = {}
    branches: dict[str, Branch] = {}
    for rule in rules:
        polarities = (True, False) if rule.then.derive is not None else (True,)
        for holds in polarities:
            for index, conjunction in enumerate(dnf(rule.when, negate=not holds)):
                answer_terms: list[dict[str, Any]] = [{"t": PATIENT}]
                joins: list[dict[str, Any]] = []
                answer_facts: list[str] = []
                derived_facts: list[str] = []
                for atom, negated in conjunction:
                    assert atom.fact is not None
                    if atom.fact in rulebook.derived_facts:
                        wanted = effective_op(atom, negated) == "is_true"
                        alias = f"d{len(joins)}"
                        joins.append({alias: {"$and": [{"t": DERIVED}, {"name": atom.fact}, {"value": wanted}]}})
                        derived_facts.append(atom.fact)
                    else:
                        answer_terms.append(_answer_expr(atom, negated, questionnaire, params))
                        answer_facts.append(atom.fact)
                name = f"{rule.id}#{'t' if holds else 'f'}{index}"
                pri = depth[rule.id] if rule.then.derive is not None else top
                definition[name] = {"all": [{"p": answer_terms}, *joins], "pri": pri}
                branches[name] = Branch(
                    rule, holds, index, tuple(dict.fromkeys(answer_facts)), tuple(dict.fromkeys(derived_facts))
                )
    _spread(definition)
    return CompiledRuleset(f"pain-sdm-{rulebook.version}-{profile}", definition, branches, params, top + 1000)


def joined_facts(body: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    """The derived facts a compiled rule joins on, with the value each must have (read by both engines)."""
    found = []
    for term in body["all"][1:]:
        ((_, expr),) = term.items()
        parts = {k: v for part in expr["$and"] for k, v in part.items()}
        assert parts["t"] == DERIVED, f"unexpected join {expr}"
        found.append((parts["name"], parts["value"]))
    return tuple(found)


FAN_OUT = 16
"""Siblings per level of the alpha network's bucket tree (see `_spread`)."""

SPREAD_FROM = 224
"""Compiled rules from which the tree is laid out. Below it the plain network is kept: the tree costs
about a quarter more engine time per patient (measured on the shipped rulebook), and the shipped
rulebook (188 to 198 compiled rules) runs without it; `rules verify` runs the engine either way."""


def _spread(definition: dict[str, Any]) -> None:
    """Lay the rules' patient tests out as a tree of buckets, so the alpha network never fans out wide.

    durable_rules walks the alpha network depth first with a fixed stack of 64 pending nodes
    (`MAX_STACK_SIZE` in events.c, error 303): every test that matches a fact is pushed at once,
    so 60-odd rules whose first tests all hold for one patient overflow it. Here each rule's
    patient expression starts, after `t == patient`, with a path of `t != "~L.D"` tests (always
    true for a patient, never shared by two paths' leaves), FAN_OUT siblings to a level and as many
    levels as the rule count needs; the rule's own tests follow on its own leaf. The stack then
    holds at most levels x (FAN_OUT - 1) + the rule's own tests, whatever the rule count (measured:
    see the README, "Engine limits"). The tests are true for every patient, so no result changes.
    """
    names = list(definition)
    if len(names) < SPREAD_FROM:
        for name in names:
            terms = definition[name]["all"][0]["p"]
            definition[name]["all"][0] = {"p": terms[0] if len(terms) == 1 else {"$and": terms}}
        return
    levels = 1
    while FAN_OUT**levels < len(names):
        levels += 1
    for number, name in enumerate(names):
        # the node at each level is named by the rule number's leading base-FAN_OUT digits: shared by its subtree
        bucket = [{"$neq": {"t": f"~{level}.{number // FAN_OUT ** (levels - 1 - level)}"}} for level in range(levels)]
        terms = definition[name]["all"][0]["p"]
        expression = [terms[0], *bucket, *terms[1:]]
        definition[name]["all"][0] = {"p": {"$and": expression}}
