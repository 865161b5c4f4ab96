"""The benchmark's floor: one profile of the rulebook generated as plain Python, statuses only.

It is what the fastest reasonable hand-written program would do: one function per condition
node, three-valued (Kleene) logic with short-circuit, atoms inlined with their thresholds as
constants, derived facts in stratum order, then each procedure's most restrictive status and
the urgent flag. It keeps no evidence. It is checked against `DecisionAid.evaluate` on the
benchmark's patients before anything is timed (`check_agreement`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.model.conditions import OP_TESTS, Condition, operand_constant
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.questionnaire import UNKNOWN
from engine.model.rulebook import Rulebook, derived_depth
from engine.model.status import STATUSES

Outcome = tuple[dict[str, str], bool]
"""Each procedure's status, and whether urgent assessment is set."""


class _Writer:
    def __init__(self, rulebook: Rulebook, params: dict[str, int | float]) -> None:
        self.rulebook = rulebook
        self.params = params
        self.functions: list[str] = []
        self.constants: dict[str, Any] = {}

    def constant(self, value: Any) -> str:
        name = f"K{len(self.constants)}"
        self.constants[name] = value
        return name

    def atom(self, node: Condition) -> str:
        assert node.fact is not None and node.op is not None
        op, fact = node.op, repr(node.fact)
        if node.fact in self.rulebook.derived_facts:
            read, unknown = f"d.get({fact})", "is None"
        else:
            read, unknown = f"v.get({fact}, U)", "== U"
        if op == "is_unknown":
            return f"({read} {unknown})"
        if op == "is_known":
            return f"(not {read} {unknown})"
        operand = self.params[node.param] if node.param is not None else node.value
        test = OP_TESTS[op].format(a="a", k=self.constant(operand_constant(operand)))
        return f"(None if (a := {read}) {unknown} else {test})"

    def node(self, node: Condition) -> str:
        """An expression for the node's truth: an atom inline, anything else a call to its own function."""
        if node.fact is not None:
            return self.atom(node)
        name = f"n{len(self.functions)}"
        self.functions.append("")  # reserve the name; nested nodes take the next ones
        index = len(self.functions) - 1
        lines = [f"def {name}(v, d):"]
        if node.not_ is not None:
            lines += [f"    t = {self.node(node.not_)}", "    return None if t is None else not t"]
        else:
            is_all = node.all is not None
            children = node.all if node.all is not None else node.any or []
            decisive = "False" if is_all else "True"
            lines.append("    u = False")
            for child in children:
                lines += [f"    t = {self.node(child)}", f"    if t is {decisive}:", f"        return {decisive}"]
                lines += ["    if t is None:", "        u = True"]
            lines.append(f"    return None if u else {is_all}")
        self.functions[index] = "\n".join(lines)
        return f"{name}(v, d)"


def generate(rulebook: Rulebook, profile: str) -> tuple[str, dict[str, Any]]:
    """The Python source of `evaluate(answers) -> (statuses, urgent)` for one profile, and its constants."""
    params = {pid: p.value(profile) for pid, p in rulebook.parameters.items()}
    writer = _Writer(rulebook, params)
    rules = rulebook.active_rules(profile)
    depth = derived_depth(rules, rulebook.derived_facts)
    body = ["def evaluate(v):", "    d = {}"]
    for rule in sorted((r for r in rules if r.then.derive is not None), key=lambda r: depth[r.id]):
        body.append(f"    d[{rule.then.derive!r}] = {writer.node(rule.when)}")
    body += [f"    r = [-1] * {len(PROCEDURE_IDS)}", "    urgent = False"]
    index = {pid: i for i, pid in enumerate(PROCEDURE_IDS)}
    for rule in rules:
        then = rule.then
        if then.derive is not None or (then.status is None and not then.urgent_assessment):
            continue
        body.append(f"    if {writer.node(rule.when)} is True:")
        if then.urgent_assessment:
            body.append("        urgent = True")
        if then.status is not None:
            rank = then.status.rank
            for pid in dict.fromkeys(then.procedures):
                body += [f"        if r[{index[pid]}] < {rank}:", f"            r[{index[pid]}] = {rank}"]
    body.append("    return {p: NAMES[x] for p, x in zip(PROCEDURES, r)}, urgent")
    source = "\n\n".join([*writer.functions, "\n".join(body)]) + "\n"
    constants = {**writer.constants, "U": UNKNOWN, "NAMES": (*STATUSES, "not_indicated"), "PROCEDURES": PROCEDURE_IDS}
    return source, constants


def compile_floor(rulebook: Rulebook, profile: str) -> Callable[[dict[str, Any]], Outcome]:
    source, constants = generate(rulebook, profile)
    namespace: dict[str, Any] = dict(constants)
    exec(compile(source, f"<floor {profile}>", "exec"), namespace)  # noqa: S102 - our own generated code
    evaluate: Callable[[dict[str, Any]], Outcome] = namespace["evaluate"]
    return evaluate


def check_agreement(
    floor: Callable[[dict[str, Any]], Outcome], outcomes: Iterable[tuple[dict[str, Any], Outcome]]
) -> int:
    """How many answer sets the floor agrees on with pain-sdm's own outcomes; raises at the first disagreement."""
    count = 0
    for answers, expected in outcomes:
        got = floor(answers)
        if got != expected:
            raise AssertionError(f"the floor disagrees with pain-sdm: {got} != {expected} for {answers}")
        count += 1
    return count
