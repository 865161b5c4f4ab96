"""The compiled evaluator means what `Condition.truth` means: one three-valued semantics.

`Condition.truth` (conditions.py) is the definition; the evaluator writes conditions out as Python
that stops at the first part that decides. Here the two are held equal on every operator with every
kind of value, known or unknown (missing, None, "unknown"), and on random condition trees.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluation.evaluator import compile_condition
from engine.model.conditions import Condition, Truth
from engine.model.facts import known
from engine.model.questionnaire import OPS_BY_TYPE, UNKNOWN

CHOICES = ["a", "b", "c"]
PARAMS = {"limit": 4, "fraction": 2.5}
FACTS = {"n": "number", "s": "single", "y": "yes_no", "m": "multiple", "x": "derived"}
DERIVED = {"x"}
ABSENT = object()
"""A value the answers do not hold at all."""

VALUES: dict[str, list[Any]] = {
    "number": [ABSENT, None, UNKNOWN, 0, 2.5, 3, 4, 4.5, 10],
    "single": [ABSENT, None, UNKNOWN, *CHOICES],
    "yes_no": [ABSENT, None, UNKNOWN, "yes", "no"],
    "multiple": [ABSENT, None, UNKNOWN, [], ["a"], ["b", "c"], CHOICES],
    "derived": [ABSENT, None, True, False],
}
OPERANDS: dict[str, list[dict[str, Any]]] = {
    "number": [{"value": 4}, {"value": 2.5}, {"param": "limit"}, {"param": "fraction"}],
    "single": [{"value": "a"}, {"value": ["a", "c"]}],
    "yes_no": [{"value": "yes"}, {"value": ["no"]}],
    "multiple": [{"value": "a"}, {"value": ["a", "b"]}],
    "derived": [{}],
}
LIST_OPS = {"in", "not_in", "contains_any", "contains_none"}


def atoms_of(fact: str) -> list[Condition]:
    kind = FACTS[fact]
    out = []
    for op in sorted(OPS_BY_TYPE[kind]):
        if op in ("is_unknown", "is_known", "is_true", "is_false"):
            out.append(Condition(fact=fact, op=op))
            continue
        for operand in OPERANDS[kind]:
            if isinstance(operand.get("value"), list) == (op in LIST_OPS):
                out.append(Condition(fact=fact, op=op, **operand))
    return out


ATOMS = [atom for fact in FACTS for atom in atoms_of(fact)]


def both(node: Condition, answers: dict[str, Any], derived: dict[str, Truth]) -> tuple[Truth, Truth]:
    """The compiled truth and `Condition.truth`, on these answers (as given) and derived facts."""
    compiled = compile_condition(node, DERIVED, PARAMS)(answers, derived)
    values = {**{k: known(v) for k, v in answers.items()}, **derived}
    return compiled, node.truth(values, PARAMS)


def test_every_operator_on_every_kind_of_value_known_or_unknown() -> None:
    assert {a.op for a in ATOMS} == set().union(*OPS_BY_TYPE.values())
    checked = 0
    for atom in ATOMS:
        assert atom.fact is not None
        for value in VALUES[FACTS[atom.fact]]:
            given_ = {} if value is ABSENT else {atom.fact: value}
            answers, derived = ({}, given_) if atom.fact in DERIVED else (given_, {})
            compiled, defined = both(atom, answers, derived)
            assert compiled is defined, (atom, value, compiled, defined)
            checked += 1
    assert checked > 150


def trees() -> st.SearchStrategy[Condition]:
    leaves = st.sampled_from(ATOMS)
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(lambda parts: Condition(all=parts)),
            st.lists(children, max_size=4).map(lambda parts: Condition(any=parts)),
            children.map(lambda part: Condition(**{"not": part})),
        ),
        max_leaves=10,
    )


@settings(max_examples=300, deadline=None)
@given(tree=trees(), data=st.data())
def test_condition_trees_short_circuit_to_the_same_truth(tree: Condition, data: st.DataObject) -> None:
    answers: dict[str, Any] = {}
    derived: dict[str, Truth] = {}
    for fact, kind in FACTS.items():
        value = data.draw(st.sampled_from(VALUES[kind]), label=fact)
        if value is not ABSENT:
            (derived if fact in DERIVED else answers)[fact] = value
    compiled, defined = both(tree, answers, derived)
    assert compiled is defined
