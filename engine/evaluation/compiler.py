"""Compile a rulebook, for one profile, into the durable_rules JSON ruleset format.

Each rule's condition is put in disjunctive normal form; each conjunction becomes one
durable rule. Answer atoms join on the single patient fact; derived-fact atoms join on
`derived` facts asserted by earlier rules. A derived-layer rule is compiled twice: once
for its condition being true (asserting the fact as true) and once for its negation
(asserting it as false), so no rule ever needs "absence" (durable's `$not`), and an
unknown answer leaves the derived fact unknown, exactly as the evaluator's Kleene logic.

A derived fact is three-valued, and a rule may test `is_unknown` / `is_known` on it. `is_known`
joins on the fact being true or being false (two branches). `is_unknown` joins on the fact with
the value "unknown", which an `UnknownMark` asserts: one per stratum, at a priority after every
rule deriving a fact of that stratum and before any rule reading one, it asserts each fact of the
stratum that a rule reads with `is_unknown` and that neither polarity asserted. So the engines
still need no absence, and a fact is unknown exactly when the evaluator finds its rule unknown.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.evaluation.firing import Firing, ProfileFirings
from engine.model.conditions import Condition, dnf, effective_op
from engine.model.facts import DERIVED, PATIENT, SEP
from engine.model.parse_cache import cache_folder, code_hash, read_cache_file, write_cache_file
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
    variant: int = 0
    """Which variant of its rule this branch is (see `compile_joint`); 0 in a one-profile ruleset."""
    asserts: str | None = None
    """The name the derived fact is asserted under, when it is not the rule's own (see `compile_joint`)."""

    @property
    def derives(self) -> str | None:
        """The derived fact as this ruleset asserts it (None for a rule that derives nothing)."""
        return self.asserts or self.rule.then.derive


JoinValue = bool | str
"""What a join wants of a derived fact: true, false, or UNKNOWN (asserted by an `UnknownMark`)."""


@dataclass(frozen=True)
class UnknownMark:
    """At priority `priority`, every one of `facts` that no rule has asserted is asserted as UNKNOWN.

    The priority comes after every rule deriving these facts and before every rule reading them
    (derived rules of stratum d run at 2d, their marks at 2d + 1), so the facts are settled.
    """

    name: str
    priority: int
    facts: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRuleset:
    name: str
    definition: dict[str, Any]
    branches: dict[str, Branch]
    parameters: dict[str, int | float]
    last_priority: int = 1000
    """A priority after every rule's (durable_rules runs higher numbers later): the engine's own bookkeeping rules."""
    profiles: dict[str, frozenset[int]] = field(default_factory=dict)
    """A joint ruleset's profiles, each with the variants of rules it runs (empty for a one-profile ruleset)."""
    marks: tuple[UnknownMark, ...] = ()
    """The derived facts rules read as unknown, asserted as such once their stratum is done (see `UnknownMark`)."""

    def by_profile(self, firings: list[Firing], variants: list[int]) -> ProfileFirings:
        """A joint ruleset's firings (with the variant of each) as each profile's own, in the order they fired."""
        return ProfileFirings(self.profiles, self.common_variants, firings, variants)

    @functools.cached_property
    def common_variants(self) -> frozenset[int]:
        """The variants every profile of a joint ruleset runs: the rules they all run alike."""
        return frozenset.intersection(*self.profiles.values()) if self.profiles else frozenset()


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


@dataclass(frozen=True)
class _Compiled:
    """One profile's durable rules before `_spread`, with their branches, priorities and unknown marks."""

    definition: dict[str, Any]
    branches: dict[str, Branch]
    parameters: dict[str, int | float]
    top: int
    marks: tuple[UnknownMark, ...]


def _join_choices(op: str) -> tuple[JoinValue, ...]:
    """The values a derived-fact literal joins on: `is_known` is true or false (two branches)."""
    choices: dict[str, tuple[JoinValue, ...]] = {
        "is_true": (True,),
        "is_false": (False,),
        "is_unknown": (UNKNOWN,),
        "is_known": (True, False),
    }
    return choices[op]


def profile_parameters(rulebook: Rulebook, profile: str) -> dict[str, int | float]:
    """Every parameter's value in one profile, as the profile's compiled rules compare with it."""
    return {pid: p.value(profile) for pid, p in rulebook.parameters.items()}


def _compile(rulebook: Rulebook, profile: str, questionnaire: Questionnaire) -> _Compiled:
    rules = rulebook.active_rules(profile)
    params = profile_parameters(rulebook, profile)
    depth = derived_depth(rules, rulebook.derived_facts)
    top = 2 * (max(depth.values(), default=0) + 1)
    definition: dict[str, Any] = {}
    branches: dict[str, Branch] = {}
    read_unknown: set[str] = set()
    for rule in rules:
        polarities = (True, False) if rule.then.derive is not None else (True,)
        for holds in polarities:
            index = 0
            for conjunction in dnf(rule.when, negate=not holds):
                answer_terms: list[dict[str, Any]] = [{"t": PATIENT}]
                derived_literals: list[tuple[str, tuple[JoinValue, ...]]] = []
                answer_facts: list[str] = []
                for atom, negated in conjunction:
                    assert atom.fact is not None
                    if atom.fact in rulebook.derived_facts:
                        derived_literals.append((atom.fact, _join_choices(effective_op(atom, negated))))
                    else:
                        answer_terms.append(_answer_expr(atom, negated, questionnaire, params))
                        answer_facts.append(atom.fact)
                derived_facts = tuple(dict.fromkeys(fact for fact, _ in derived_literals))
                for wanted in itertools.product(*(choices for _, choices in derived_literals)):
                    values: dict[str, JoinValue] = {}
                    for (fact, _), value in zip(derived_literals, wanted, strict=True):
                        values.setdefault(fact, value)
                    if any(values[fact] != value for (fact, _), value in zip(derived_literals, wanted, strict=True)):
                        continue  # one fact wanted with two values: this branch can never hold
                    # one join per fact: durable matches a fact to one alias of a rule only
                    joins = [
                        {f"d{n}": {"$and": [{"t": DERIVED}, {"name": fact}, {"value": value}]}}
                        for n, (fact, value) in enumerate(values.items())
                    ]
                    read_unknown.update(fact for fact, value in values.items() if value == UNKNOWN)
                    name = f"{rule.id}#{'t' if holds else 'f'}{index}"
                    pri = 2 * depth[rule.id] if rule.then.derive is not None else top
                    definition[name] = {"all": [{"p": list(answer_terms)}, *joins], "pri": pri}
                    branches[name] = Branch(rule, holds, index, tuple(dict.fromkeys(answer_facts)), derived_facts)
                    index += 1
    strata: dict[int, list[str]] = {}
    for fact in sorted(read_unknown):
        strata.setdefault(depth[rulebook.derived_facts[fact]], []).append(fact)
    marks = tuple(
        UnknownMark(f"zz-unknown-{level}", 2 * level + 1, tuple(facts)) for level, facts in sorted(strata.items())
    )
    return _Compiled(definition, branches, params, top, marks)


Parts = dict[str, _Compiled]
"""Profiles' durable rules as compiled before they are laid out (`_spread`), by profile: given to
`compile_rulebook` and `compile_joint` together, each profile is compiled once for both."""


def _part(rulebook: Rulebook, profile: str, questionnaire: Questionnaire, parts: Parts | None) -> _Compiled:
    """The profile's compiled rules, from `parts` if they are there (else compiled, and kept there)."""
    if parts is None:
        return _compile(rulebook, profile, questionnaire)
    if profile not in parts:
        parts[profile] = _compile(rulebook, profile, questionnaire)
    return parts[profile]


def compile_rulebook(
    rulebook: Rulebook, profile: str, questionnaire: Questionnaire, parts: Parts | None = None
) -> CompiledRuleset:
    """Build the durable ruleset definition for one profile (actions are attached by the engine)."""
    compiled = _part(rulebook, profile, questionnaire, parts)
    # each rule's list of terms is its own, so laying it out leaves the part (read by `joint_ruleset`) as it was
    definition = {name: {**body, "all": list(body["all"])} for name, body in compiled.definition.items()}
    _spread(definition)
    name = f"pain-sdm-{rulebook.version}-{profile}"
    return CompiledRuleset(
        name, definition, compiled.branches, compiled.parameters, compiled.top + 1000, marks=compiled.marks
    )


QUALIFIER = "@"
"""Joins a derived fact's name to its variant in a joint ruleset (fact names are lower-case ids: never `@`)."""


JOINT_FORMAT = "pain-sdm/joint-ruleset/1"


def compile_joint(rulebook: Rulebook, questionnaire: Questionnaire, parts: Parts | None = None) -> CompiledRuleset:
    """`joint_ruleset`, kept in the user's cache folder: compiling it is most of a short command's own work.

    The cache file is named by the rulebook version (the content hash of every rule and knowledge
    file, the questionnaire among them) and its header carries that version and the hash of the
    code that compiles (`code_version`): a ruleset made from other files or by other code is never
    used, and one that does not match its digest is compiled again. A ruleset is kept only if it
    reads back equal to the one compiled. `parts`: see `Parts`.
    """
    folder, code = cache_folder(), code_version()
    if folder is None or code is None:
        return joint_ruleset(rulebook, questionnaire, parts)
    path = folder / f"joint-{rulebook.version}.json"
    header = {"format": JOINT_FORMAT, "version": rulebook.version, "code": code}
    cached = _ruleset_from_json(read_cache_file(path, header), rulebook)
    if cached is not None:
        return cached
    ruleset = joint_ruleset(rulebook, questionnaire, parts)
    data = _ruleset_to_json(ruleset)
    if _ruleset_from_json(json.loads(json.dumps(data)), rulebook) == ruleset:
        write_cache_file(path, header, data, replaces="joint-*.json")
    return ruleset


@functools.cache
def code_version() -> str | None:
    """A hash of the code that compiles a ruleset (this module, `firing`, `engine.model`); None when unreadable."""
    here = Path(__file__).resolve()
    return code_hash([here, here.parent / "firing.py", *sorted((here.parent.parent / "model").glob("*.py"))])


def _ruleset_to_json(ruleset: CompiledRuleset) -> dict[str, Any]:
    return {
        "name": ruleset.name,
        "definition": ruleset.definition,
        "branches": {
            name: [b.rule.id, b.holds, b.index, list(b.answer_facts), list(b.derived_facts), b.variant, b.asserts]
            for name, b in ruleset.branches.items()
        },
        "parameters": ruleset.parameters,
        "last_priority": ruleset.last_priority,
        "profiles": {p: sorted(v) for p, v in ruleset.profiles.items()},
        "marks": [[m.name, m.priority, list(m.facts)] for m in ruleset.marks],
    }


def _ruleset_from_json(data: Any, rulebook: Rulebook) -> CompiledRuleset | None:
    """The ruleset `_ruleset_to_json` wrote, on this rulebook's rules; None for anything else."""
    if not isinstance(data, dict):
        return None
    rules = {r.id: r for r in rulebook.rules}
    try:
        branches = {
            name: Branch(rules[rid], holds, index, tuple(answers), tuple(derived), variant, asserts)
            for name, (rid, holds, index, answers, derived, variant, asserts) in data["branches"].items()
        }
        return CompiledRuleset(
            data["name"],
            data["definition"],
            branches,
            data["parameters"],
            data["last_priority"],
            {p: frozenset(v) for p, v in data["profiles"].items()},
            tuple(UnknownMark(name, priority, tuple(facts)) for name, priority, facts in data["marks"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def joint_ruleset(rulebook: Rulebook, questionnaire: Questionnaire, parts: Parts | None = None) -> CompiledRuleset:
    """One durable ruleset that evaluates every profile at once, for comparing profiles in one run.

    Most rules compile to the same durable rules in every profile; those are written once. A rule
    that differs (another threshold, another priority, active in some profiles only, or reading a
    derived fact that differs) is written once per variant, each variant naming the profiles that
    run it, and a derived fact that differs between profiles is asserted under a name of its own
    per variant (`fact@1`), so no profile ever joins on another's. The firings of one profile are
    then those of its own ruleset, in the same order: durable fires the pending rule that comes
    first by priority and then by the order rules were registered (`getNextResultInState` in
    durable's state.c), each profile's rules keep their relative priorities (option rules all take
    the highest option priority, still after every derived rule), and they are registered in
    rulebook order, as in each profile's own ruleset. A test holds the two equal. `parts`: see `Parts`.
    """
    profiles = list(rulebook.profiles)
    parts = {p: _part(rulebook, p, questionnaire, parts) for p in profiles}
    top = max(part.top for part in parts.values())
    by_rule: dict[str, dict[str, list[str]]] = {p: {} for p in profiles}
    for p, part in parts.items():
        for name, branch in part.branches.items():
            by_rule[p].setdefault(branch.rule.id, []).append(name)
    asserted: dict[tuple[str, str], str] = {}  # (derived fact, profile) -> the name it is asserted under

    def body(p: str, name: str) -> dict[str, Any]:
        source = parts[p].definition[name]
        joins = []
        for term in source["all"][1:]:
            ((alias, expr),) = term.items()
            fact = next(part["name"] for part in expr["$and"] if "name" in part)
            expr = {"$and": [{"name": asserted[(fact, p)]} if "name" in part else part for part in expr["$and"]]}
            joins.append({alias: expr})
        pri = source["pri"] if parts[p].branches[name].rule.then.derive is not None else top
        return {"all": [source["all"][0], *joins], "pri": pri}

    definition: dict[str, Any] = {}
    branches: dict[str, Branch] = {}
    runs: dict[str, set[int]] = {p: set() for p in profiles}
    depth = derived_depth(rulebook.rules, rulebook.derived_facts)
    order = {r.id: i for i, r in enumerate(rulebook.rules)}
    variants: dict[str, list[tuple[list[str], list[dict[str, Any]]]]] = {}
    for rule in sorted(rulebook.rules, key=lambda r: (depth[r.id], order[r.id])):  # a fact before its readers
        groups: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        for p in profiles:
            names = by_rule[p].get(rule.id)
            if names is not None:
                bodies = [body(p, n) for n in names]
                groups.setdefault(json.dumps([names, bodies], sort_keys=True), ([], bodies))[0].append(p)
        variants[rule.id] = list(groups.values())
        fact = rule.then.derive
        if fact is not None:
            shared = len(groups) == 1 and len(next(iter(groups.values()))[0]) == len(profiles)
            for p in profiles:
                asserted[(fact, p)] = fact if shared else f"{fact}{QUALIFIER}none"
            for number, (members, _) in enumerate(variants[rule.id]):
                for p in members:
                    asserted[(fact, p)] = fact if shared else f"{fact}{QUALIFIER}{number}"
    variant = 0
    for rule in rulebook.rules:  # registered in rulebook order, as in each profile's own ruleset
        several = len(variants[rule.id]) > 1
        for number, (members, bodies) in enumerate(variants[rule.id]):
            variant += 1
            for p in members:
                runs[p].add(variant)
            first = members[0]
            fact = rule.then.derive
            derives = None if fact is None or asserted[(fact, first)] == fact else asserted[(fact, first)]
            for name, compiled_body in zip(by_rule[first][rule.id], bodies, strict=True):
                joint_name = f"{name}~{number}" if several else name
                definition[joint_name] = compiled_body
                source = parts[first].branches[name]
                branches[joint_name] = Branch(
                    rule, source.holds, source.index, source.answer_facts, source.derived_facts, variant, derives
                )
    _spread(definition)
    name = f"pain-sdm-{rulebook.version}-joint"
    frozen = {p: frozenset(v) for p, v in runs.items()}
    marked: dict[int, set[str]] = {}  # each profile's marks, on the names its facts are asserted under
    for p, part in parts.items():
        for mark in part.marks:
            marked.setdefault(mark.priority, set()).update(asserted[(fact, p)] for fact in mark.facts)
    marks = tuple(UnknownMark(f"zz-unknown-{pri}", pri, tuple(sorted(facts))) for pri, facts in sorted(marked.items()))
    default = parts[rulebook.default_profile].parameters
    return CompiledRuleset(name, definition, branches, default, top + 1000, frozen, marks)


def joined_facts(body: dict[str, Any]) -> tuple[tuple[str, str, JoinValue], ...]:
    """The derived facts a compiled rule joins on: each as joined, by its own name, and the value it must have.

    A joint ruleset joins on a fact under its variant's name (`fact@1`, see `compile_joint`); the
    firing names it by its own. Read by both engines.
    """
    found = []
    for term in body["all"][1:]:
        ((_, expr),) = term.items()
        parts = {k: v for part in expr["$and"] for k, v in part.items()}
        assert parts["t"] == DERIVED, f"unexpected join {expr}"
        found.append((parts["name"], parts["name"].split(QUALIFIER)[0], parts["value"]))
    return tuple(found)


FAN_OUT = 16
"""Siblings per level of the alpha network's bucket tree (see `_spread`)."""

SPREAD_FROM = 64
"""Compiled rules from which the tree is laid out. It costs about 3% of engine time (measured on the
shipped rulebook, 258 compiled rules); a smaller ruleset keeps the plain network, as small test
rulebooks do; `rules verify` runs the engine either way."""


def _spread(definition: dict[str, Any]) -> None:
    """Lay the rules' patient tests out as a tree of buckets, so the alpha network never fans out wide.

    durable_rules walks the alpha network depth first with a fixed stack of 64 pending nodes
    (`MAX_STACK_SIZE` in events.c, error 303): every test that matches a fact is pushed at once,
    so 60-odd rules whose first tests all hold for one patient overflow it. Here each rule's
    patient expression starts, after `t == patient`, with a path of `t != "~L.D"` tests (always
    true for a patient), FAN_OUT siblings to a level, and the rule's own tests follow on a leaf
    bucket it shares with at most FAN_OUT - 1 other rules. The stack then holds at most
    (levels - 1) x (FAN_OUT - 1) + FAN_OUT + a rule's own branching, whatever the rule count
    (measured: see the README, "Engine limits"). The tests are true for every patient, so no
    result changes. Every visited alpha node costs a walk over the fact's properties in durable, so
    the leaves are shared: a bucket per rule (as before) cost a quarter more engine time.
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
        bucket = [
            {"$neq": {"t": f"~{level}.{number // FAN_OUT ** (levels - 1 - level)}"}} for level in range(levels - 1)
        ]
        terms = definition[name]["all"][0]["p"]
        expression = [terms[0], *bucket, *terms[1:]]
        definition[name]["all"][0] = {"p": {"$and": expression}}
