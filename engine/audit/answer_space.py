"""The discretised answer space of a rulebook, and an exhaustive search over it (for `rules verify`).

Rules read an answer only through their atoms, so two answers that give every atom on their
fact the same truth value are interchangeable. The space keeps one representative per such
*class* (its signature is the tuple of atom truths):

- a number question: each threshold an atom uses (a value, or a parameter in this profile),
  the whole numbers either side of it (integer questions) or the midpoints between thresholds
  (other questions), the question's minimum and maximum, and unknown;
- a single-choice or yes/no question: each choice, and unknown;
- a multiple-choice question: every subset of the options the rules name, and unknown;
- a derived fact: true, false or unknown (unknown only, if its rule does not apply).

The classes are exact: every real answer behaves, for every rule, like its class's
representative. So a search over classes is a search over every possible patient.

`AnswerSpace.solve` decides whether some answers meet a list of goals. A goal is a
disjunction of conjunctions (`Conj`: a fact -> allowed-class bitmask), built by `cases()`
from a condition and the truth values wanted of it (true; false; unknown; not true = false
or unknown; ...), with the same three-valued (Kleene) logic as the evaluator. The search is
complete (backtracking over every alternative of every goal, then over the value of every
derived fact the chosen alternatives constrain, with the derived fact's own rule added as a
goal), so "no answers found" is a proof over the whole space, within the step budget.
Every answer set it finds is re-checked by the independent evaluator (see engine.audit.verify).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.model.conditions import Condition, Truth, atom_test
from engine.model.questionnaire import UNKNOWN, Questionnaire
from engine.model.rulebook import Rule, Rulebook

Conj = dict[str, int]
"""One alternative: for each fact it constrains, a bitmask of the allowed classes (domain indices)."""

Wanted = frozenset[Truth]

_Goal = tuple[int, list[Conj], frozenset[str] | None]
"""A goal in the search: the id of the goal as asked (it names it while the search runs), its alternatives
still open, and the facts they constrain (None: not yet checked against the state)."""

TRUE: Wanted = frozenset({True})
FALSE: Wanted = frozenset({False})
UNKNOWN_: Wanted = frozenset({None})
NOT_TRUE: Wanted = frozenset({False, None})
NOT_FALSE: Wanted = frozenset({True, None})
KNOWN: Wanted = frozenset({True, False})
ANY_TRUTH: Wanted = frozenset({True, False, None})

MAX_MENTIONED_OPTIONS = 16
"""A multiple-choice question with more options named in rules is enumerated by subsets of up to 3."""


class SearchBudgetExceeded(Exception):
    """The search took more steps than allowed; the question is left undecided."""


def flip(wanted: Wanted) -> Wanted:
    """Truth values wanted of `x` when `not x` should take `wanted`."""
    swap: dict[Truth, Truth] = {True: False, False: True, None: None}
    return frozenset(swap[w] for w in wanted)


def truth_of(node: Condition, values: dict[str, Any], params: dict[str, int | float]) -> Truth:
    """A condition's three-valued truth on known values (None = unknown), e.g. for an invariant's trigger."""
    return node.truth(values, params)


def _number_points(lo: float, hi: float, integer: bool, thresholds: Iterable[float]) -> list[float]:
    inside = sorted({t for t in thresholds if lo <= t <= hi})
    if integer:
        points = {int(lo), int(hi)}
        for t in thresholds:
            for p in (math.floor(t) - 1, math.floor(t), math.ceil(t), math.ceil(t) + 1):
                points.add(p)
        return sorted(p for p in points if lo <= p <= hi)
    edges = sorted({lo, hi, *inside})
    mids = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    return sorted({*edges, *mids})


@dataclass
class SearchStats:
    queries: int = 0
    steps: int = 0


@dataclass
class AnswerSpace:
    """The classes of every fact the rules (and any extra conditions) read, for one profile."""

    rulebook: Rulebook
    questionnaire: Questionnaire
    profile: str
    extra: list[Condition] = field(default_factory=list)
    budget: int = 200_000

    def __post_init__(self) -> None:
        self.params: dict[str, int | float] = {
            pid: p.value(self.profile) for pid, p in self.rulebook.parameters.items()
        }
        self.rules: list[Rule] = self.rulebook.active_rules(self.profile)
        self.derived: dict[str, Rule] = {r.then.derive: r for r in self.rules if r.then.derive is not None}
        self.atoms: dict[str, list[Condition]] = {}
        for node in [r.when for r in self.rules] + list(self.extra):
            for atom in node.atoms():
                assert atom.fact is not None
                self.atoms.setdefault(atom.fact, []).append(atom)
        self._domains: dict[str, list[Any]] = {}
        self._cases: dict[tuple[int, Wanted], list[Conj]] = {}
        self._masks: dict[tuple[str, str, type, Any], dict[Truth, int]] = {}
        self._keep: list[Condition] = []  # keeps ids of cached condition objects alive and unique
        self.stats = SearchStats()

    # -- domains -------------------------------------------------------------------------

    def operand(self, atom: Condition) -> Any:
        return self.params[atom.param] if atom.param is not None else atom.value

    def is_derived(self, fact: str) -> bool:
        return fact in self.rulebook.derived_facts

    def raw_values(self, fact: str) -> list[Any]:
        """Every candidate value of a fact before merging classes (None = unknown)."""
        if self.is_derived(fact):
            return [True, False, None] if fact in self.derived else [None]
        question = self.questionnaire.questions[fact]
        atoms = self.atoms.get(fact, [])
        if question.type == "number":
            assert question.min is not None and question.max is not None
            thresholds = [float(self.operand(a)) for a in atoms if a.param is not None or a.value is not None]
            points = _number_points(question.min, question.max, question.integer, thresholds)
            return [int(p) if float(p).is_integer() else p for p in points] + [None]
        if question.type == "multiple":
            named: set[str] = set()
            for a in atoms:
                value = self.operand(a)
                if value is not None:
                    named.update(value if isinstance(value, list) else [value])
            ordered = [o for o in question.values if o in named]
            sizes = range(len(ordered) + 1) if len(ordered) <= MAX_MENTIONED_OPTIONS else range(4)
            subsets = [tuple(c) for k in sizes for c in itertools.combinations(ordered, k)]
            return [*subsets, None]
        return [*question.values, None]

    def classes(self, fact: str, atoms: list[Condition] | None = None) -> list[Any]:
        """One representative value per signature over `atoms` (default: every atom on the fact)."""
        chosen = self.atoms.get(fact, []) if atoms is None else atoms
        # atoms with the same test give the same truth: each test counts once (rules repeat them)
        tests = {(a.op or "", hashable(self.operand(a))): atom_test(a.op or "", self.operand(a)) for a in chosen}
        values = self.raw_values(fact)
        if not tests:
            return values[:1]  # every value has the empty signature
        seen: dict[tuple[Truth, ...], Any] = {}
        columns = [list(map(test, values)) for test in tests.values()]  # each test's truth on every value
        for signature, value in zip(zip(*columns, strict=True), values, strict=True):
            seen.setdefault(signature, value)
        return list(seen.values())

    def domain(self, fact: str) -> list[Any]:
        if fact not in self._domains:
            self._domains[fact] = self.classes(fact)
        return self._domains[fact]

    def full(self, fact: str) -> int:
        return (1 << len(self.domain(fact))) - 1

    def answer_facts(self) -> list[str]:
        return [f for f in self.atoms if not self.is_derived(f)]

    def size(self) -> int:
        """How many distinct answer sets the classes stand for (the product of class counts)."""
        return math.prod(len(self.domain(f)) for f in self.answer_facts())

    # -- conditions as alternatives -------------------------------------------------------

    def atom_mask(self, atom: Condition, wanted: Wanted) -> int:
        """The classes of the atom's fact on which the atom takes one of the `wanted` truth values."""
        by_truth = self._atom_masks(atom)
        mask = 0
        for truth in wanted:
            mask |= by_truth.get(truth, 0)
        return mask

    def _atom_masks(self, atom: Condition) -> dict[Truth, int]:
        """For each truth value, the classes on which the atom takes it: once per test, as rules repeat tests."""
        assert atom.fact is not None and atom.op is not None
        operand = self.operand(atom)
        key = (atom.fact, atom.op, type(operand), hashable(operand))
        by_truth = self._masks.get(key)
        if by_truth is None:
            by_truth = self._masks[key] = {}
            test = atom_test(atom.op, operand)
            for index, value in enumerate(self.domain(atom.fact)):
                truth = test(value)
                by_truth[truth] = by_truth.get(truth, 0) | 1 << index
        return by_truth

    def cases(self, node: Condition, wanted: Wanted) -> list[Conj]:
        """The alternatives under which `node` takes one of the `wanted` truth values."""
        key = (id(node), wanted)
        if key not in self._cases:
            self._keep.append(node)
            self._cases[key] = _dedupe(self._cases_of(node, wanted))
        return self._cases[key]

    def _cases_of(self, node: Condition, wanted: Wanted) -> list[Conj]:
        if not wanted:
            return []
        if wanted == ANY_TRUTH:
            return [{}]
        if node.fact is not None:
            mask = self.atom_mask(node, wanted)
            return [{node.fact: mask}] if mask else []
        if node.not_ is not None:
            return self.cases(node.not_, flip(wanted))
        is_all = node.all is not None
        children = node.all if node.all is not None else node.any or []
        # `any` is the dual of `all`: swap true and false, combine the same way.
        strong, weak = (True, False) if is_all else (False, True)
        if wanted == KNOWN:
            return self.cases(node, frozenset({strong})) + self.cases(node, frozenset({weak}))
        if wanted == frozenset({strong}):
            return self._product([self.cases(c, frozenset({strong})) for c in children])
        if wanted == frozenset({weak}):
            return [conj for c in children for conj in self.cases(c, frozenset({weak}))]
        if wanted == frozenset({weak, None}):
            return [conj for c in children for conj in self.cases(c, frozenset({weak, None}))]
        if wanted == frozenset({strong, None}):
            return self._product([self.cases(c, frozenset({strong, None})) for c in children])
        # unknown alone: no child weak, and at least one child unknown
        out: list[Conj] = []
        for i, child in enumerate(children):
            parts = [self.cases(child, UNKNOWN_)]
            parts += [self.cases(c, frozenset({strong, None})) for j, c in enumerate(children) if j != i]
            out.extend(self._product(parts))
        return out

    def _product(self, parts: list[list[Conj]]) -> list[Conj]:
        out: list[Conj] = [{}]
        for options in parts:
            out = _dedupe([m for a in out for b in options if (m := self.merge(a, b)) is not None])
            if not out:
                return []
        return out

    def merge(self, a: Conj, b: Conj) -> Conj | None:
        """Both constraints at once, or None if they allow no common class of some fact."""
        merged = dict(a)
        for fact, mask in b.items():
            if fact in merged:
                mask &= merged[fact]
            if not mask:
                return None
            merged[fact] = mask
        return merged

    def rule_true(self, rule: Rule) -> list[Conj]:
        return self.cases(rule.when, TRUE)

    def rule_not_true(self, rule: Rule) -> list[Conj]:
        return self.cases(rule.when, NOT_TRUE)

    def implied(self, premise: list[Conj], conclusion: list[Conj], denial: list[Conj]) -> bool | None:
        """Whether answers meeting `premise` always meet `conclusion` (`denial`: the alternatives under which
        they do not), where the alternatives alone decide it; None where only a search can.

        True when each alternative of the premise lies within one of the conclusion (for every fact the
        latter constrains, the former allows only classes the latter allows); False when an alternative
        of the premise and one of the denial agree on some class of every fact both constrain and neither
        constrains a derived fact (any answers in both meet the premise and not the conclusion). A
        search (`solve([premise, denial])`) comes to the same verdict; this is a question without its steps.
        """
        if _within_one(premise, conclusion):
            self.stats.queries += 1
            return True
        derived = self.rulebook.derived_facts.keys()
        answers_only = [d for d in denial if derived.isdisjoint(d)]
        for alternative in premise:
            if not derived.isdisjoint(alternative):
                continue
            if any(self.merge(alternative, d) is not None for d in answers_only):
                self.stats.queries += 1
                return False
        return None

    # -- the search ----------------------------------------------------------------------

    def solve(self, goals: list[list[Conj]]) -> Conj | None:
        """Constraints (one fact -> classes each) under which every goal holds, or None if none exist.

        A goal that another goal implies (each of the other's alternatives lies within one of its own)
        adds no constraint: the goals without it are searched first, and if they cannot hold together,
        neither can all of them. Otherwise (or if that search runs out of steps) every goal is searched,
        so the answers found are the ones the whole search finds first. (Copies of a rule at other
        thresholds make many such goals: at 8x the option rules, the slowest questions, "no rule sets
        this procedure's status", took 61,000 to 67,000 steps, 2,400 to 3,200 without them.)

        Raises `SearchBudgetExceeded` when the search needs more than `budget` steps.
        """
        self.stats.queries += 1
        essential = essential_goals(goals) if len(goals) > 2 else goals
        if len(essential) < len(goals):
            try:
                if self.search(essential) is None:
                    return None
            except SearchBudgetExceeded:
                pass
        return self.search(goals)

    def search(self, goals: list[list[Conj]]) -> Conj | None:
        """The search for answers meeting every goal, with its own budget and memory of failures (`solve` first
        drops the goals others imply)."""
        self._steps = 0
        self._failed: dict[int, list[tuple[Conj, frozenset[str], list[_Goal]]]] = {}
        return self._search({}, 0, [(id(goal), goal, None) for goal in goals], frozenset(), frozenset())

    def _search(
        self, state: Conj, hashed: int, goals: list[_Goal], committed: frozenset[str], changed: frozenset[str]
    ) -> Conj | None:
        """One node, unless the same state, goals left and derived facts settled failed before.

        The search reaches the same constraints with the same goals left by many paths (goals met
        in another order): what failed once fails again, so it is not searched again. Only
        failures are kept, so the answers found are the ones the whole search would find first.
        `hashed`: the hash of the state (the exclusive or of `hash((fact, mask))` over its items), kept
        up as the state narrows, so that a node builds no key from the whole state; the states and
        goals are compared only where it matches.
        """
        key = hashed ^ hash(committed)
        failed = self._failed.get(key)
        if failed is not None:
            numbers = {goal[0] for goal in goals}
            for old_state, old_committed, old_goals in failed:
                if old_state == state and old_committed == committed and numbers == {goal[0] for goal in old_goals}:
                    return None
        found = self._step(state, hashed, goals, committed, changed)
        if found is None:
            self._failed.setdefault(key, []).append((state, committed, goals))
        return found

    def _step(
        self, state: Conj, hashed: int, goals: list[_Goal], committed: frozenset[str], changed: frozenset[str]
    ) -> Conj | None:
        """One node: a goal the state meets already is dropped, and a goal with one way left is taken.

        Before choosing among the ways of a goal, a derived fact the state constrains is settled
        (each allowed value in turn, its rule's condition for that value a further goal), so a
        choice that contradicts a derived fact's rule fails at once, not after every other goal
        (the no-fallback questions took millions of steps without it, a few thousand with it).

        `changed`: the facts the parent node narrowed. A goal none of whose alternatives reads one
        of them is as it was there (its open alternatives, not met): it is not checked again.
        """
        self._steps += 1
        self.stats.steps += 1
        if self._steps > self.budget:
            raise SearchBudgetExceeded
        best_index = -1
        kept: list[_Goal] = []  # each goal's alternatives still open (the state only narrows further down)
        get = state.get
        for goal in goals:
            number, alternatives, facts = goal
            if facts is not None and facts.isdisjoint(changed):
                compatible = alternatives
            else:
                compatible = []
                met = False
                fresh = facts is None  # a goal not checked against the state yet: every alternative is
                for alternative in alternatives:
                    if not fresh and changed.isdisjoint(alternative):
                        compatible.append(alternative)  # as in the parent node: open, and not met
                        continue
                    # how `merge(state, alternative)` would come out (the search's inner loop, inlined):
                    # no class left for some fact, the state itself, or the state narrowed
                    narrows = False
                    for fact, mask in alternative.items():
                        held = get(fact)
                        if held is None:
                            if not mask:
                                break
                            narrows = True
                        elif not mask & held:
                            break
                        elif mask & held != held:
                            narrows = True
                    else:
                        if not narrows:
                            met = True  # the state meets this goal already: no choice to make
                            break
                        compatible.append(alternative)
                if met:
                    continue
                if not compatible:
                    return None
                if facts is None:  # the facts of every alternative it had: a superset serves
                    facts = frozenset(f for alternative in alternatives for f in alternative)
                goal = (number, compatible, facts)
            if best_index < 0 or len(compatible) < len(kept[best_index][1]):
                best_index = len(kept)
            kept.append(goal)
        best = kept[best_index][1] if best_index >= 0 else None
        if best is not None and len(best) == 1:
            merged, narrowed_hash, changed = self._narrowed(state, hashed, best[0])
            return self._search(merged, narrowed_hash, kept[:best_index] + kept[best_index + 1 :], committed, changed)
        derived_facts = self.rulebook.derived_facts
        for fact, mask in state.items():
            if fact not in derived_facts or fact in committed or mask == self.full(fact):
                continue
            rule = self.derived.get(fact)
            for index, value in enumerate(self.domain(fact)):
                if not mask >> index & 1:
                    continue
                narrowed = {**state, fact: 1 << index}
                more = [] if rule is None else [self.cases(rule.when, frozenset({value}))]
                found = self._search(
                    narrowed,
                    hashed ^ hash((fact, mask)) ^ hash((fact, 1 << index)),
                    [*kept, *((id(goal), goal, None) for goal in more)],
                    committed | {fact},
                    frozenset({fact}),
                )
                if found is not None:
                    return found
            return None
        if best is not None:
            rest = kept[:best_index] + kept[best_index + 1 :]
            for option in best:
                merged, narrowed_hash, changed = self._narrowed(state, hashed, option)
                found = self._search(merged, narrowed_hash, rest, committed, changed)
                if found is not None:
                    return found
            return None
        return state

    def _narrowed(self, state: Conj, hashed: int, alternative: Conj) -> tuple[Conj, int, frozenset[str]]:
        """The state narrowed by one alternative of a goal (compatible with it), its hash, and the facts it narrowed.

        (It returns, rather than searching on, so that a level of the search is two calls deep: the
        search recurses once per goal taken, and long chains of derived facts are deep.)
        """
        merged = dict(state)
        changed = []
        for fact, mask in alternative.items():
            held = merged.get(fact)
            if held is None:
                merged[fact] = mask
            elif mask & held != held:
                hashed ^= hash((fact, held))
                merged[fact] = mask = mask & held
            else:
                continue
            hashed ^= hash((fact, mask))
            changed.append(fact)
        return merged, hashed, frozenset(changed)

    def witness(self, state: Conj) -> dict[str, Any]:
        """Answers (as an answers file would hold them) meeting the constraints; others left unknown."""
        answers: dict[str, Any] = {}
        for fact, mask in state.items():
            if self.is_derived(fact):
                continue
            value = self.domain(fact)[(mask & -mask).bit_length() - 1]
            answers[fact] = as_answer(value)
        return answers


def _within_one(premise: list[Conj], conclusion: list[Conj]) -> bool:
    """Whether each alternative of `premise` lies within one of `conclusion` (for every fact that one
    constrains, it allows only classes that one allows): whatever meets the premise meets the conclusion."""
    return all(
        any(
            all(fact in alternative and not alternative[fact] & ~allowed for fact, allowed in way.items())
            for way in conclusion
        )
        for alternative in premise
    )


def essential_goals(goals: list[list[Conj]]) -> list[list[Conj]]:
    """The goals, in order, without each that another one kept implies (`_within_one`); only goals on the
    same facts are compared (as copies of a rule at other thresholds are). Answers meet all the goals
    exactly when they meet these."""
    on: dict[frozenset[str], list[int]] = {}
    for index, goal in enumerate(goals):
        on.setdefault(frozenset(fact for alternative in goal for fact in alternative), []).append(index)
    dropped: set[int] = set()
    for same in on.values():
        for index in same:
            if any(
                other != index and other not in dropped and _within_one(goals[other], goals[index]) for other in same
            ):
                dropped.add(index)
    return [goal for index, goal in enumerate(goals) if index not in dropped]


def hashable(value: Any) -> Any:
    """A value as a dict key or set member (a multiple-choice answer's list as a tuple)."""
    return tuple(value) if isinstance(value, list) else value


def as_answer(value: Any) -> Any:
    """A class representative as an answers-file value."""
    if value is None:
        return UNKNOWN
    if isinstance(value, tuple):
        return list(value)
    return value


def _dedupe(conjs: list[Conj]) -> list[Conj]:
    seen: set[tuple[tuple[str, int], ...]] = set()
    out = []
    for conj in conjs:
        key = tuple(sorted(conj.items()))
        if key not in seen:
            seen.add(key)
            out.append(conj)
    return out
