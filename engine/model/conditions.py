"""The condition language shared by rules (`when:`) and the questionnaire (`ask_if:`).

A condition is a tree of `all`, `any` and `not` over atoms such as
`{fact: pain_duration_months, op: ">=", param: chronic_pain_months}`.

Semantics are three-valued (Kleene): an atom on an unknown answer is *unknown*,
never silently false or true. `all` is true only when every part is true, `any`
is true when one part is true, and `not` leaves unknown as unknown. A rule fires
only when its condition is true. `is_unknown` / `is_known` test explicitly for an
unknown answer, or a derived fact its rule left unknown (derived facts are three-valued
too). Both the durable_rules compiler and the independent evaluator follow these
semantics; a test holds them to each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Op = Literal[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "contains_any",
    "contains_none",
    "is_true",
    "is_false",
    "is_unknown",
    "is_known",
]

UNARY_OPS = frozenset({"is_true", "is_false", "is_unknown", "is_known"})

NEGATED: dict[str, str] = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "in": "not_in",
    "not_in": "in",
    "contains": "not_contains",
    "not_contains": "contains",
    "contains_any": "contains_none",
    "contains_none": "contains_any",
    "is_true": "is_false",
    "is_false": "is_true",
    "is_unknown": "is_known",
    "is_known": "is_unknown",
}

OP_WORDS: dict[str, str] = {
    "==": "is",
    "!=": "is not",
    "<": "is less than",
    "<=": "is at most",
    ">": "is more than",
    ">=": "is at least",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "includes",
    "not_contains": "does not include",
    "contains_any": "includes any of",
    "contains_none": "includes none of",
    "is_true": "is true",
    "is_false": "is false",
    "is_unknown": "is unknown",
    "is_known": "is known",
}

Scalar = int | float | str
Truth = bool | None  # None is "unknown"


class Condition(BaseModel):
    """One node of a condition tree: exactly one of `all`, `any`, `not`, or an atom (`fact` + `op`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")
    fact: str | None = Field(default=None, examples=["pain_duration_months"])
    op: Op | None = Field(default=None, examples=[">="])
    value: Scalar | list[Scalar] | None = Field(default=None, examples=[3])
    param: str | None = Field(default=None, examples=["chronic_pain_months"])

    @field_validator("value", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        """Refuse true/false before pydantic would read it as 1/0 (YAML reads a bare yes as true)."""
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value)):
            raise ValueError(
                f"got {value!r}: in YAML a bare yes, no, on, off, true or false is read as true or false; "
                "write a yes/no answer as the quoted string 'yes' or 'no', and a number as a number"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = [k for k in ("all", "any", "not_", "fact") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a condition needs exactly one of `all`, `any`, `not`, or `fact` with `op`")
        if self.fact is not None:
            if self.op is None:
                raise ValueError(f"the atom on `{self.fact}` needs an `op`, such as `==` or `>=`")
            has_operand = self.value is not None or self.param is not None
            if self.op in UNARY_OPS and has_operand:
                raise ValueError(f"`{self.op}` takes no `value` or `param`")
            if self.op not in UNARY_OPS and (self.value is None) == (self.param is None):
                raise ValueError(f"`{self.fact} {self.op}` needs exactly one of `value` or `param`")
        elif self.fact is None and (self.op or self.value is not None or self.param):
            raise ValueError("`op`, `value` and `param` belong to an atom with a `fact`")
        return self

    def truth(
        self,
        values: Mapping[str, Any],
        params: Mapping[str, int | float] | None = None,
        visit: Callable[[Condition, Truth, Any, Any], None] | None = None,
    ) -> Truth:
        """The condition's three-valued (Kleene) truth on known values (a missing or None value is unknown).

        The one implementation of the semantics above, for the evaluator, the answer-space search,
        the interview's skip conditions and the explanations. Every part is evaluated (no
        short-circuit), depth first; `visit(node, truth, actual, operand)` is called for every
        node after its parts (actual and operand are None for `all`, `any` and `not`).
        """
        if self.fact is not None:
            assert self.op is not None
            if self.param is not None:
                if params is None:
                    raise ValueError(f"the atom on `{self.fact}` reads parameter `{self.param}`, and none are given")
                operand: Any = params[self.param]
            else:
                operand = self.value
            actual = values.get(self.fact)
            truth = compare(self.op, actual, operand)
            if visit is not None:
                visit(self, truth, actual, operand)
            return truth
        if self.not_ is not None:
            inner = self.not_.truth(values, params, visit)
            truth = None if inner is None else not inner
        else:
            parts = [c.truth(values, params, visit) for c in (self.all if self.all is not None else self.any or [])]
            truth = kleene_all(parts) if self.all is not None else kleene_any(parts)
        if visit is not None:
            visit(self, truth, None, None)
        return truth

    def atoms(self) -> list[Condition]:
        """Every atom of the tree, in order."""
        if self.fact is not None:
            return [self]
        children = self.all if self.all is not None else self.any if self.any is not None else [self.not_]
        return [a for c in children if c is not None for a in c.atoms()]


Literal_ = tuple[Condition, bool]
"""An atom and whether it is negated."""


def dnf(node: Condition, negate: bool = False) -> list[list[Literal_]]:
    """Disjunctive normal form: a list of conjunctions of (atom, negated) literals."""
    if node.fact is not None:
        return [[(node, negate)]]
    if node.not_ is not None:
        return dnf(node.not_, not negate)
    children = node.all if node.all is not None else node.any or []
    is_and = (node.all is not None) != negate
    parts = [dnf(c, negate) for c in children]
    if is_and:
        return [list(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]
    return [conj for part in parts for conj in part]


def effective_op(atom: Condition, negated: bool) -> str:
    assert atom.op is not None
    return NEGATED[atom.op] if negated else atom.op


def kleene_all(values: list[Truth]) -> Truth:
    if any(v is False for v in values):
        return False
    return True if all(v is True for v in values) else None


def kleene_any(values: list[Truth]) -> Truth:
    if any(v is True for v in values):
        return True
    return False if all(v is False for v in values) else None


OP_TESTS: dict[str, str] = {
    "is_true": "{a} is True",
    "is_false": "{a} is False",
    "==": "{a} == {k}",
    "!=": "{a} != {k}",
    "<": "{a} < {k}",
    "<=": "{a} <= {k}",
    ">": "{a} > {k}",
    ">=": "{a} >= {k}",
    "in": "{a} in {k}",
    "not_in": "{a} not in {k}",
    "contains": "{k} in {a}",
    "not_contains": "{k} not in {a}",
    "contains_any": "not {k}.isdisjoint({a})",
    "contains_none": "{k}.isdisjoint({a})",
}
"""What each operator but `is_unknown` / `is_known` means on a *known* value `{a}`, as Python source over
its operand `{k}` (a list operand as a frozenset: see `operand_constant`). The one definition of the
operators: `compare` runs it, and the compiled evaluator (engine.evaluation.evaluator) writes it into
the code it generates. On an unknown value every one of them is unknown."""

_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    op: eval(f"lambda a, k: {source.format(a='a', k='k')}")  # noqa: S307 - the fixed sources above
    for op, source in OP_TESTS.items()
}


def operand_constant(operand: Any) -> Any:
    """An operand as `OP_TESTS` reads it: a list of values as a frozenset (membership, disjointness)."""
    return frozenset(operand) if isinstance(operand, list | tuple) else operand


def atom_test(op: str, operand: Any) -> Callable[[Any], Truth]:
    """The test of one atom on a known or unknown value (`None` means unknown), its operand prepared once."""
    if op == "is_unknown":
        return lambda actual: actual is None
    if op == "is_known":
        return lambda actual: actual is not None
    test = _TESTS.get(op)
    if test is None:
        raise ValueError(f"unknown operator {op!r}")  # unreachable: Op is a closed Literal
    constant = operand_constant(operand)
    return lambda actual: None if actual is None else test(actual, constant)


def compare(op: str, actual: Any, operand: Any) -> Truth:
    """Evaluate one atom against a known or unknown value (`None` means unknown)."""
    return atom_test(op, operand)(actual)
