"""Reviewer-facing explanations: rules in plain English, the firing trace, and why an option is not open.

- `Wording` renders conditions ("IF ... AND ... THEN ...") with the questionnaire's words for
  facts and choices and each parameter's value (in one profile, or in every profile).
- `explain` renders a `Result`'s trace in firing order, then every derived fact with what
  justifies it (shown true, shown false, or left unknown).
- `why_not` shows, for every rule that could open a procedure (candidate or after
  prerequisite) and every derived fact those rules read, each condition with the patient's
  value, the threshold and whether it was met. It is built on the independent evaluator
  (engine.evaluation.evaluator), which evaluates every atom and never short-circuits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from engine.errors import UsageError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.evaluator import AtomResult, RuleResult
from engine.evaluation.result import FALLBACK_ID, Finding, Result
from engine.model.conditions import OP_WORDS, Condition, Truth
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.rulebook import PLACEHOLDER, Rule, Then
from engine.model.status import OPEN_STATUSES
from engine.presentation.report import fact_value

MARKS: dict[Truth, str] = {True: "met    ", False: "NOT MET", None: "UNKNOWN"}
TRUTH_WORDS: dict[Truth, str] = {True: "true", False: "false", None: "unknown"}
OPENING = OPEN_STATUSES


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass(frozen=True)
class Wording:
    """Words for facts, values and parameters; `profile` None means: every profile's value."""

    aid: DecisionAid
    profile: str | None = None

    def describe_fact(self, fact: str) -> str:
        """What a fact is: the question's prompt, or the rule that derives it."""
        question = self.aid.questionnaire.questions.get(fact)
        if question is not None:
            unit = f" ({question.unit})" if question.unit else ""
            return f"question: {question.prompt}{unit}"
        rule_id = self.aid.rulebook.derived_facts.get(fact)
        if rule_id is None:
            return "derived fact (no rule defines it)"
        return f"derived by {rule_id}: {self.aid.rulebook.rule(rule_id).title}"

    def choice(self, fact: str, value: Any) -> str:
        question = self.aid.questionnaire.questions.get(fact)
        if question is None or question.type == "number":
            return _number(value)
        if question.type == "yes_no":
            return f'"{value}"'
        return f'"{question.label_of(str(value))}" ({value})'

    def _values(self, pid: str, profiles: Sequence[str] = ()) -> tuple[dict[str, int | float], str]:
        """The parameter's value in the chosen profile (else in `profiles`, else in every profile),
        and its UNCONFIRMED mark."""
        param = self.aid.rulebook.parameters[pid]
        mark = " UNCONFIRMED" if param.confidence != "confirmed" else ""
        if self.profile is not None:
            return {self.profile: param.value(self.profile)}, mark
        return {p: param.value(p) for p in profiles or self.aid.rulebook.profiles}, mark

    def parameter(self, pid: str) -> str:
        values, mark = self._values(pid)
        unit = self.aid.rulebook.parameters[pid].unit
        if self.profile is not None:
            return f"{_number(values[self.profile])} {unit} ({pid}{mark})"
        if len(set(values.values())) == 1:
            return f"{_number(next(iter(values.values())))} {unit} ({pid}, every profile{mark})"
        listed = ", ".join(f"{p} {_number(v)}" for p, v in values.items())
        return f"{pid} {unit} ({listed}{mark})"

    def text(self, text: str, profiles: Sequence[str] = ()) -> str:
        """A rule's patient text for a reviewer: each `{parameter}` as its value, naming the parameter.

        The one place rule texts are filled for reviewers (rule cards, the rulebook, explain); the
        patient sees `fill_parameters` with the chosen profile's values. One value (in the chosen
        profile, or the same in every profile) reads `80 [mbb_positive_percent]`; values that differ
        by profile read `[mbb_positive_percent: us-medicare 80, consensus 50]`, so no raw
        placeholder is ever shown. `profiles` limits the values to the profiles a rule applies in.
        """

        def one(match: re.Match[str]) -> str:
            pid = match.group(1)
            values, mark = self._values(pid, profiles)
            if len(set(values.values())) == 1:
                return f"{_number(next(iter(values.values())))} [{pid}{mark}]"
            return f"[{pid}: " + ", ".join(f"{p} {_number(v)}" for p, v in values.items()) + f"{mark}]"

        return PLACEHOLDER.sub(one, text)

    def conclusion(self, then: Then, profiles: Sequence[str] = ()) -> str:
        """What a rule concludes, in words, its texts filled by `text`."""
        return conclusion(then, lambda text: self.text(text, profiles))

    def operand(self, atom: Condition) -> str:
        if atom.param is not None:
            return self.parameter(atom.param)
        question = self.aid.questionnaire.questions.get(atom.fact or "")
        value = atom.value
        if isinstance(value, list):
            return ", ".join(self.choice(atom.fact or "", v) for v in value)
        if question is not None and question.type == "number":
            return f"{_number(value)} {question.unit}".strip()
        return self.choice(atom.fact or "", value)

    def atom(self, atom: Condition) -> str:
        assert atom.fact is not None and atom.op is not None
        words = f"{atom.fact} {OP_WORDS[atom.op]}"
        if atom.value is None and atom.param is None:
            return words
        return f"{words} {self.operand(atom)}"

    def lines(self, node: Condition, depth: int = 0) -> list[str]:
        """A condition as indented lines: one per atom, `ALL of:` / `ANY of:` / `NOT:` for groups."""
        pad = "  " * depth
        if node.fact is not None:
            return [pad + self.atom(node)]
        if node.not_ is not None:
            return [pad + "NOT:", *self.lines(node.not_, depth + 1)]
        children = node.all if node.all is not None else node.any or []
        if not children:
            return [pad + ("always" if node.all is not None else "never")]
        if len(children) == 1:
            return self.lines(children[0], depth)
        head = "ALL of:" if node.all is not None else "ANY of:"
        return [pad + head, *(line for c in children for line in self.lines(c, depth + 1))]

    def if_then(self, rule: Rule) -> str:
        """The rule as `IF ... AND ... THEN ...`."""
        node = rule.when
        parts = node.all if node.all is not None and node.all else [node]
        out = []
        for i, part in enumerate(parts):
            lines = self.lines(part, 0)
            out.append(f"{'IF ' if i == 0 else 'AND'}  {lines[0]}")
            out += [f"       {line}" for line in lines[1:]]
        out.append(f"THEN {self.conclusion(rule.then, rule.profiles)}")
        return "\n".join(out)


def conclusion(then: Then, fill: Callable[[str], str] = str) -> str:
    """What a rule concludes, in words; `fill` renders its texts (as written, by default: `rules diff`
    compares what the rule file says)."""
    procedures = ", ".join(then.procedures)
    if then.derive is not None:
        return f"derived fact {then.derive} is true (false when the condition is false, unknown when it is unknown)"
    parts = []
    if then.status is not None:
        parts.append(f"{procedures}: status {then.status}")
        if then.steps:
            parts.append("after: " + "; ".join(f"{fill(s.text)} ({s.id})" for s in then.steps))
    if then.caution is not None:
        parts.append(f"caution for {procedures}: {fill(then.caution)}")
    if then.declined:
        parts.append(f"{procedures}: marked as declined by the patient")
    if then.urgent_assessment:
        parts.append("urgent assessment needed")
    return "; ".join(parts)


# -- explain: the trace -------------------------------------------------------------------------


def _facts(aid: DecisionAid, finding: Finding) -> str:
    return "; ".join(f"{k} = {fact_value(aid, k, v)}" for k, v in finding.facts.items()) or "nothing (always applies)"


def _concluded(finding: Finding) -> str:
    if finding.kind == "derived":
        return f"{finding.derived} is {'TRUE' if finding.holds else 'FALSE'}"
    procedures = ", ".join(finding.procedures)
    if finding.kind == "status":
        text = f"{procedures} -> {finding.status}"
        if finding.steps:
            text += " (after: " + ", ".join(s.id for s in finding.steps) + ")"
        return text + ("; URGENT ASSESSMENT" if finding.urgent_assessment else "")
    if finding.kind == "caution":
        return f"caution for {procedures}: {finding.text}"
    if finding.kind == "declined":
        return f"{procedures} declined by the patient"
    return "URGENT ASSESSMENT"


def unknown_inputs(atoms: tuple[AtomResult, ...], answers: BaseModel, aid: DecisionAid) -> str:
    """Why atoms are unknown, in words: answers not given, answers marked 'not sure', derived facts unknown."""
    given = answers.model_fields_set
    groups: dict[str, list[str]] = {"not answered": [], "marked 'not sure'": [], "unknown derived": []}
    for atom in atoms:
        if atom.truth is not None or atom.actual is not None:
            continue
        if atom.fact in aid.rulebook.derived_facts:
            key = "unknown derived"
        else:
            key = "marked 'not sure'" if atom.fact in given else "not answered"
        if atom.fact not in groups[key]:
            groups[key].append(atom.fact)
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items() if v)


def explain(result: Result, aid: DecisionAid, answers: BaseModel | None = None) -> str:
    """The full trace in firing order, the derived facts with their justification, and the outcome.

    With the `answers` the result came from, an unknown derived fact names the answers that
    left it unknown (not answered, or marked 'not sure').
    """
    profile = aid.rulebook.profiles[result.profile]
    evaluated: dict[str, RuleResult] = {}
    if answers is not None:
        deriving = set(aid.rulebook.derived_facts.values())
        results, _ = aid.evaluator(result.profile).evaluate_rules(answers.model_dump(), only=deriving)
        evaluated = {r.rule.id: r for r in results}
    lines = [
        f"Trace under {profile.name} ({result.profile}), rulebook version {result.rulebook_version}, "
        f"on {result.engine}: {len(result.trace)} rule firings, in the order they fired.",
        "",
    ]
    for n, f in enumerate(result.trace, 1):
        shown = "" if f.holds else " (condition false, so the fact is false)"
        lines.append(f"{n:3}. {f.rule_id} v{f.rule_version} [{f.layer}] {f.title}{shown}")
        lines.append(f"       matched: {_facts(aid, f)}")
        if f.parameters:
            lines.append("       thresholds: " + ", ".join(_threshold(aid, k, v) for k, v in f.parameters.items()))
        lines.append(f"       concluded: {_concluded(f)}")
        if f.sources:
            lines.append(f"       sources: {', '.join(f.sources)}")
        if f.unconfirmed:
            lines.append(f"       UNCONFIRMED: {', '.join(f.unconfirmed)}")
    lines += ["", "Derived facts and what justifies them:"]
    decided = {f.derived: f for f in result.derived}
    for fact, rule_id in aid.rulebook.derived_facts.items():
        found = decided.get(fact)
        if found is None:
            lines.append(f"  {fact}: unknown: {_undecided(aid, rule_id, result.profile, evaluated, answers)}")
            continue
        truth = "true" if found.holds else "false"
        lines.append(f"  {fact}: {truth}, by {rule_id} v{found.rule_version}: {_facts(aid, found)}")
    lines += ["", "Outcome:"]
    if result.urgent_assessment:
        lines.append("  URGENT ASSESSMENT: " + ", ".join(f.rule_id for f in result.urgent_reasons))
    for option in result.options:
        lines.append(f"  {option.procedure}: {option.status} ({set_by(option.reasons)})")
    return "\n".join(lines) + "\n"


def set_by(reasons: list[Finding]) -> str:
    """The rules behind a status; the fallback (no rule set one) said in words."""
    if [r.rule_id for r in reasons] == [FALLBACK_ID]:
        return f"no rule set a status, so it is not_indicated by default ({FALLBACK_ID})"
    return "set by " + ", ".join(r.rule_id for r in reasons)


def _threshold(aid: DecisionAid, pid: str, value: Any) -> str:
    param = aid.rulebook.parameters.get(pid)
    unit = f" {param.unit}" if param is not None and param.unit else ""
    mark = " UNCONFIRMED" if param is not None and param.confidence != "confirmed" else ""
    return f"{pid} = {_number(value)}{unit}{mark}"


def _undecided(
    aid: DecisionAid, rule_id: str, profile: str, evaluated: dict[str, RuleResult], answers: BaseModel | None
) -> str:
    """Why a derived fact's rule decided nothing."""
    rule = aid.rulebook.rule(rule_id)
    if not rule.active or (rule.profiles and profile not in rule.profiles):
        return f"{rule_id} does not apply under {profile}"
    res = evaluated.get(rule_id)
    if res is None or answers is None:
        return f"{rule_id} could not decide it (answers not given or marked 'not sure')"
    return f"{rule_id} could not decide it ({unknown_inputs(res.atoms, answers, aid)})"


# -- why not: every rule that could have opened a procedure ------------------------------------


def patient_value(aid: DecisionAid, res: AtomResult, given: set[str]) -> str:
    """The patient's value for an atom in words; an unknown answer says whether it was given as 'not sure'."""
    if res.actual is not None:
        return fact_value(aid, res.fact, res.actual)
    if res.fact in aid.rulebook.derived_facts:
        return "unknown"
    return "not sure" if res.fact in given else "not answered"


def _tree(
    node: Condition,
    atoms: Iterator[AtomResult],
    truths: dict[int, Truth],
    wording: Wording,
    aid: DecisionAid,
    depth: int,
    given: set[str],
) -> list[str]:
    """Walk a condition alongside the evaluator's atom results (same depth-first order); `truths` by node id."""
    pad = "  " * depth
    truth = truths[id(node)]
    if node.fact is not None:
        res = next(atoms)
        value = patient_value(aid, res, given)
        return [f"[{MARKS[truth]}] {pad}{wording.atom(node)}; patient: {value}"]
    if node.not_ is not None:
        return [f"[{MARKS[truth]}] {pad}NOT:", *_tree(node.not_, atoms, truths, wording, aid, depth + 1, given)]
    children = node.all if node.all is not None else node.any or []
    top = depth == 0 and node.all is not None  # the top-level ALL reads as one line per condition
    lines = [
        line for c in children for line in _tree(c, atoms, truths, wording, aid, depth if top else depth + 1, given)
    ]
    if top:
        return lines or [f"[{MARKS[truth]}] always"]
    head = "ALL of:" if node.all is not None else "ANY of:"
    return [f"[{MARKS[truth]}] {pad}{head}", *lines]


def _rule_block(res: RuleResult, wording: Wording, aid: DecisionAid, label: str, given: set[str]) -> list[str]:
    values = {a.fact: a.actual for a in res.atoms}
    params = {a.param: a.operand for a in res.atoms if a.param is not None}
    truths: dict[int, Truth] = {}
    res.rule.when.truth(values, params, lambda node, t, _actual, _operand: truths.__setitem__(id(node), t))
    lines = _tree(res.rule.when, iter(res.atoms), truths, wording, aid, 0, given)
    truth = truths[id(res.rule.when)]
    head = f"{res.rule.id} v{res.rule.version}: {res.rule.title} -> {label}: {TRUTH_WORDS[truth].upper()}"
    return [head, *(f"    {line}" for line in lines), ""]


def why_not(aid: DecisionAid, procedure: str, answers: BaseModel, profile: str | None = None) -> str:
    """Why `procedure` has its status: every rule that could open it, condition by condition."""
    if procedure not in PROCEDURE_IDS:
        raise UsageError(f"unknown procedure `{procedure}`; choose one of: {', '.join(PROCEDURE_IDS)}")
    chosen = aid.rulebook.check_profile(profile)
    result = aid.evaluate(answers, chosen, compare_profiles=False)
    option = result.option(procedure)
    wording = Wording(aid, chosen)
    evaluator = aid.evaluator(chosen)
    openers = [r for r in evaluator.rules if r.then.status in OPENING and procedure in r.then.procedures]
    asked = {r.id for r in openers} | {aid.rulebook.derived_facts[f] for f in aid.rulebook.derived_read(openers)}
    results, _ = evaluator.evaluate_rules(answers.model_dump(), only=asked)
    by_id = {r.rule.id: r for r in results}
    active = {r.id for r in evaluator.rules}
    given = set(answers.model_fields_set)
    lines = [f"{option.name} ({procedure}) under {aid.rulebook.profiles[chosen].name} ({chosen}): {option.status}."]
    if result.urgent_assessment:
        lines.append("Urgent assessment is needed: " + ", ".join(f.rule_id for f in result.urgent_reasons) + ".")
    lines.append("Set by:")
    for reason in option.reasons:
        if reason.rule_id == FALLBACK_ID:
            lines.append(f"  - no rule set a status, so it is not_indicated by default ({FALLBACK_ID})")
        else:
            lines.append(f"  - {reason.rule_id} v{reason.rule_version} ({reason.status}): {reason.title}")
    lines.append("")
    elsewhere = [
        r
        for r in aid.rulebook.rules
        if r.active and r.then.status in OPENING and procedure in r.then.procedures and r.id not in active
    ]
    if not openers:
        lines.append(f"No rule could open {procedure} under {chosen}.")
    else:
        lines.append(f"Rules that could open {procedure} ({len(openers)}), every condition checked:")
        lines.append("")
        for rule in openers:
            lines += _rule_block(by_id[rule.id], wording, aid, rule.then.status or "", given)
    for rule in elsewhere:
        lines.append(f"{rule.id} ({rule.then.status}) applies only under: {', '.join(rule.profiles)}.")
    derived = [f for f in aid.rulebook.derived_read(openers) if aid.rulebook.derived_facts[f] in by_id]
    if derived:
        lines += ["", "Derived facts these rules read:", ""]
        for fact in derived:
            lines += _rule_block(by_id[aid.rulebook.derived_facts[fact]], wording, aid, fact, given)
    return "\n".join(lines).rstrip() + "\n"
