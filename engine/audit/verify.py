"""`pain-sdm rules verify`: named findings about a rulebook, each with a severity.

Findings (name: severity, what it means):

Loading (a rulebook that does not load is reported, not raised):
- `schema` (error): a rule, parameter, profile, invariant or requirement does not fit its model.
- `unknown-reference` (error): an unknown fact, parameter, profile, source, criterion or step.
  Each load problem carries its finding name from where it is raised (`Problem.code`).
- `duplicate-id` (error), `derived-cycle` (error): ids used twice; derived facts in a cycle.
- `engine-key` (error): a question read under a key durable_rules or an answers file uses itself
  (`t`, `id`, `sid`, `answers`, `answers_version`), or under another question's key.
- `missing-source` (error for an active rule, warning for a draft): a rule cites no source.

Upkeep:
- `overdue-review` (warning): `last_reviewed` is more than `max_age_days` before `today`.
- `review-date-in-future` (warning): `last_reviewed` is after `today`.
- `unused-parameter` (warning): no rule (and no dispute's `when`) reads the parameter.
- `missing-criteria` (info): an active rule cites no criterion of the register.

Logic, decided over the discretised answer space of each profile (engine.audit.answer_space):
- `never-fires` (error; warning when it fires in another profile): the rule's condition is
  never true, e.g. contradictory atoms on one fact, or a derived fact that is never true.
- `contradiction` (error): two rules with equivalent conditions set different statuses on
  one procedure, so one of them can never decide it.
- `shadowed-rule` (warning): whenever rule A holds, rule B, which sets a more restrictive
  status on the same procedure, holds too: A never decides that procedure's status.
- `duplicate-rule` / `subsumed-rule` (warning): rules setting the same status on one
  procedure whose conditions are equivalent / one implies the other (it adds nothing).
- `overlapping-rules` (info): rules setting the same status on one procedure can hold together.
- `status-overlap` (info): rules setting different statuses on one procedure can hold
  together; the most restrictive wins. Overlaps with a safety-layer rule are by design and
  only counted.
- `unreachable-status` (error for `candidate`, warning otherwise; info when only some
  profiles cannot reach it): no answers give the procedure this status. Every procedure
  should reach every status, except conservative care, which should only be a candidate.
- `undecided` (warning): a question needed more search steps than the budget allows.

Safety invariants (error when broken, named by the invariant's id; the message gives answers that
break it). They are data, in rules/invariants.yaml (engine.model.invariants), loaded and checked
with the rulebook; the shipped ones are:
- `safety-red-flag`: any red flag means urgent assessment and no procedure other than
  conservative care is a candidate.
- `safety-infection`: an infection (`systemic_infection` or `local_infection` is yes) means
  no needle procedure (knowledge `needle: true`) is a candidate.
- `safety-implant`: an implant (knowledge `implant: true`) is a candidate only when its
  prerequisites are met: the `requirements` of the prerequisite layer (rules/30-prerequisites.yaml).
- `safety-conservative-care`: conservative care is always a candidate.
- `safety-unanswered-*`, `safety-anticoagulation-plan*`: no candidate while a bearing safety answer
  is missing or not sure; none under full anticoagulation without an agreed plan (GEN-03, GEN-04).
- `safety-no-fallback`: whatever the answers, a rule sets every procedure's status (no fallback).
Statuses are resolved by `engine.model.status.resolve`, the function the result builder uses.
- `example-skipped` (info): an example patient could not be read, so it is not a baseline.
- `engine-failure` (error): the compiled rulebook fails on durable_rules (a limit such as error 303
  or 108), or disagrees with the evaluator, on some answer set (see engine/audit/engine_check.py).
- `internal-disagreement` (error): answers the search found do not behave as predicted when
  run through the independent evaluator (a fault in this checker, never expected).

Accepted findings (rules/accepted-findings.yaml, see engine.audit.acceptances):
- A warning or note an entry matches becomes a note marked accepted, with who accepted it,
  when and why. Errors, safety invariants and the checker's own faults are never accepted.
- `stale-acceptance` (warning; a note under `--profile`, where other profiles' findings are
  not looked for): an entry matches no finding, or only ones an earlier entry accepts.
- `acceptance-of-error` (warning): an entry matches an error; the error stays an error.

What is enumerated, per profile:
1. Symbolically, everything: each logic check and each invariant is a question put to
   `AnswerSpace.solve`, a complete search over the classes of every answer the active rules
   read (see engine.audit.answer_space). Answers it finds are re-run through the independent
   evaluator and must behave as predicted. Whether one rule implies another (for the relation of
   two rules that can hold together) is decided from their alternatives alone where those decide
   it (`AnswerSpace.implied`, the search's verdict without its steps), else by the search.
2. Explicitly, a covering design for each invariant, run through the independent evaluator
   (no durable_rules): the *projected facts* are the answers the invariant's premise reads
   plus every answer read by the rules that read those; each takes one value per class of the
   atoms on it in those rules. Every combination of them is applied to every *baseline*: the
   all-unknown patient, and, for each rule that can make a procedure the invariant concerns a
   candidate, answers (found by the search) that do so. The output states the counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import random
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from engine import memory
from engine.audit.acceptances import Acceptance, Acceptances, FindingName, load_acceptances
from engine.audit.answer_space import (
    NOT_TRUE,
    TRUE,
    AnswerSpace,
    Conj,
    SearchBudgetExceeded,
    Wanted,
    as_answer,
    hashable,
)
from engine.audit.engine_check import dense, engine_findings, engines_run, threshold_sample
from engine.errors import DataFileError
from engine.evaluation.evaluator import Evaluator, RuleSubset, RuleTest, SharedTests, compile_condition
from engine.model import status as status_model
from engine.model.conditions import Condition, Truth
from engine.model.invariants import FALLBACK
from engine.model.knowledge import PROCEDURE_IDS, Knowledge, load_knowledge
from engine.model.loading import read_data
from engine.model.migration import migrate
from engine.model.questionnaire import UNKNOWN, Questionnaire, load_questionnaire
from engine.model.rulebook import Rule, Rulebook, load_rulebook
from engine.model.status import FALLBACK_STATUS, STATUSES, Status
from engine.paths import data_dir

ENGINE_SAMPLE = 400
"""Answer sets of the search (beside the examples) that `rules verify` also runs on durable_rules, per profile."""

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

CONSERVATIVE = "conservative_care"
EXPECTED_STATUSES: dict[str, tuple[str, ...]] = {
    pid: (("candidate",) if pid == CONSERVATIVE else tuple(STATUSES)) for pid in PROCEDURE_IDS
}
"""The statuses each procedure should be able to reach."""

SEARCH_BUDGET = 200_000
"""Most search steps for one question; beyond it the question is reported as `undecided`."""

ENUMERATION_CAP = 4000
"""Most projected combinations per invariant and profile; above it, only the premise's own facts vary,
and if those over every baseline are still more, only as many baselines as the cap allows are used."""


@dataclass(frozen=True)
class Accepted:
    """How a finding was accepted after review: by which entry, and the severity it had before."""

    acceptance: Acceptance
    entry: str
    severity: Severity

    def to_json(self) -> dict[str, Any]:
        a = self.acceptance
        return {
            "severity": self.severity,
            "accepted_by": a.accepted_by,
            "date": a.date.isoformat(),
            "reason": a.reason,
            "entry": self.entry,
        }


@dataclass(frozen=True)
class AuditFinding:
    """One named finding of `rules verify`: a FindingName, or a broken invariant's id."""

    name: FindingName | str
    severity: Severity
    subject: str
    message: str
    profiles: tuple[str, ...] = ()
    example: dict[str, Any] | None = None
    accepted: Accepted | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "profiles": list(self.profiles),
            "example": self.example,
            "accepted": None if self.accepted is None else self.accepted.to_json(),
        }


@dataclass
class VerifyReport:
    findings: list[AuditFinding]
    enumerated: list[str] = field(default_factory=list)
    seconds: float = 0.0
    acceptances: Path | None = None

    @property
    def errors(self) -> list[AuditFinding]:
        return [f for f in self.findings if f.severity == "error"]

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITY_ORDER}

    def to_json(self) -> dict[str, Any]:
        return {
            "findings": [f.to_json() for f in self.findings],
            "counts": self.counts(),
            "enumerated": self.enumerated,
            "seconds": round(self.seconds, 2),
        }


# -- loading ---------------------------------------------------------------------------------


def load_findings(exc: DataFileError) -> list[AuditFinding]:
    """One error per load problem, named by the code the loader gave it where it was raised."""
    out = []
    for problem in exc.problems:
        subject = ", ".join(p for p in (problem.file, problem.entry) if p)
        where = f"field `{problem.field}`: " if problem.field else ""
        out.append(AuditFinding(problem.code, "error", subject, where + problem.message))
    return out


# -- upkeep ----------------------------------------------------------------------------------


def upkeep_findings(rulebook: Rulebook, knowledge: Knowledge, today: dt.date, max_age_days: int) -> list[AuditFinding]:
    out = []
    for rule in rulebook.rules:
        if rule.status == "retired":
            continue
        age = (today - rule.last_reviewed).days
        if age > max_age_days:
            out.append(
                AuditFinding(
                    "overdue-review",
                    "warning",
                    rule.id,
                    f"last reviewed {rule.last_reviewed}, {age} days before {today} (limit {max_age_days} days)",
                )
            )
        elif age < 0:
            out.append(
                AuditFinding(
                    "review-date-in-future",
                    "warning",
                    rule.id,
                    f"last reviewed {rule.last_reviewed}, which is after {today}",
                )
            )
        if not rule.sources:
            out.append(AuditFinding("missing-source", "warning", rule.id, f"a {rule.status} rule that cites no source"))
        if rule.active and not rule.criteria:
            out.append(AuditFinding("missing-criteria", "info", rule.id, "cites no criterion of the register"))
    used = {a.param for r in rulebook.rules if r.status != "retired" for a in r.when.atoms() if a.param}
    used |= {a.param for d in knowledge.disagreements.values() if d.when for a in d.when.atoms() if a.param}
    for pid in rulebook.parameters:
        if pid not in used:
            out.append(AuditFinding("unused-parameter", "warning", pid, "no rule reads this parameter"))
    return out


# -- outcomes through the independent evaluator -------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the result builder would conclude from these rule results: statuses, urgency, rules holding."""

    statuses: dict[str, Status]
    urgent: bool
    holding: frozenset[str]
    fallback: frozenset[str] = frozenset()

    @classmethod
    def of(cls, results: Iterable[tuple[Rule, Truth]], procedures: tuple[str, ...] = PROCEDURE_IDS) -> Outcome:
        """Resolved by `engine.model.status.resolve`, the function the result builder uses.

        Only the statuses of `procedures` are resolved (the others are left out).
        """
        return Tally.of(results, procedures).outcome()


@dataclass
class Tally:
    """The rules holding so far and what they set (for `Outcome`): the part of an enumeration's answers that
    a baseline fixes is tallied once, and each combination adds its own rules to a copy."""

    setting: dict[str, list[str]]
    urgent: bool = False
    held: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, results: Iterable[tuple[Rule, Truth]], procedures: tuple[str, ...]) -> Tally:
        return cls({pid: [] for pid in procedures}).add(results)

    def add(self, results: Iterable[tuple[Rule, Truth]]) -> Tally:
        """This tally with the rules of `results` that hold added (in place)."""
        setting, held = self.setting, self.held
        urgent = self.urgent
        for rule, truth in results:
            if truth is not True:
                continue
            held.append(rule.id)
            then = rule.then
            urgent = urgent or then.urgent_assessment
            if then.status is not None:
                for pid in then.procedures:
                    if pid in setting:
                        setting[pid].append(then.status)
        self.urgent = urgent
        return self

    def copy(self) -> Tally:
        return Tally({pid: list(statuses) for pid, statuses in self.setting.items()}, self.urgent, list(self.held))

    def outcome(self) -> Outcome:
        resolved = {pid: status_model.resolve(statuses) for pid, statuses in self.setting.items()}
        statuses = {pid: FALLBACK_STATUS if s is None else s for pid, s in resolved.items()}
        fallback = frozenset(pid for pid, s in resolved.items() if s is None)
        return Outcome(statuses, self.urgent, frozenset(self.held), fallback)


Expectation = Callable[[Outcome, dict[str, Any]], bool]


def holding(*rule_ids: str) -> Expectation:
    """Expect these rules to hold."""
    return lambda outcome, _: set(rule_ids) <= outcome.holding


def with_status(pid: str, status: str) -> Expectation:
    """Expect `pid` to have `status`."""
    return lambda outcome, _: outcome.statuses[pid] == status


# -- safety invariants -------------------------------------------------------------------------


@dataclass(frozen=True)
class Invariant:
    """One invariant of rules/invariants.yaml as checked: while every premise takes a truth it wants, the
    procedures get no forbidden status (and urgent assessment is set, if `urgent`)."""

    name: str
    statement: str
    premises: tuple[tuple[Condition, Wanted], ...]
    procedures: tuple[str, ...]
    forbids: tuple[str, ...] = ()
    urgent: bool = False
    key: str = ""

    def conditions(self) -> list[Condition]:
        return [c for c, _ in self.premises]

    def forbidden_statuses(self) -> list[Status]:
        return [Status(s) for s in self.forbids if s != FALLBACK]

    def broken(self, outcome: Outcome) -> list[str]:
        """What is wrong with this outcome, one phrase each."""
        out = []
        for pid in self.procedures:
            status = outcome.statuses[pid]
            if FALLBACK in self.forbids and pid in outcome.fallback:
                out.append(f"{pid} is {status} by the fallback (no status rule holds for it)")
            elif status in self.forbids:
                out.append(f"{pid} is a candidate" if status == Status.CANDIDATE else f"{pid} is {status}")
        if self.urgent and not outcome.urgent:
            out.append("urgent assessment is not set")
        return out


def invariants(knowledge: Knowledge, rulebook: Rulebook) -> list[Invariant]:
    """The rulebook's safety invariants (rules/invariants.yaml), one check each, or one per procedure
    for an invariant on unmet prerequisites (each procedure's own requirement, from the rule files)."""
    out: list[Invariant] = []
    for spec in rulebook.invariants:
        premises = () if spec.when is None else ((spec.when, TRUE),)
        procedures = spec.selected(knowledge)
        forbids = tuple(str(s) for s in spec.forbids)
        if spec.prerequisites != "unmet":
            out.append(Invariant(spec.id, spec.statement, premises, procedures, forbids, spec.urgent, spec.id))
            continue
        for pid in procedures:
            req = rulebook.requirements[pid]
            statement = f"{pid} is a candidate only with {' '.join(req.statement.split())}"
            out.append(
                Invariant(
                    spec.id,
                    statement,
                    (*premises, (req.met, NOT_TRUE)),
                    (pid,),
                    forbids,
                    spec.urgent,
                    f"{spec.id} ({pid})",
                )
            )
    return out


# -- the per-profile audit ----------------------------------------------------------------------


@dataclass
class _Done:
    """One check's outcome in the profile that ran it, for a later profile in which it reads the same rules."""

    value: Any
    findings: list[AuditFinding]
    evaluated: list[dict[str, Any]]
    evaluations: int
    profile: str


@dataclass
class SharedChecks:
    """Checks already run in an earlier profile, by what they read (see `ProfileAudit.signature`).

    Most rules are the same in every profile. A check (does a rule ever fire; can two rules hold
    together; is an invariant kept) reads only some rules: if each of those is the same in a later
    profile (the same rule, the same parameter values, the same rules deriving the facts it reads,
    down the chains), the check's outcome is the same there, and it is not run again. Its findings
    are given again under the later profile; the answer sets it evaluated still feed that profile's
    engine sample, so the engine check runs what it ran before.
    """

    done: dict[Any, _Done] = field(default_factory=dict)
    tests: SharedTests = field(default_factory=SharedTests)
    """The rules' compiled tests of the profiles' evaluators, each compiled once where it is the same."""


class ProfileAudit:
    """Every logic check and invariant for one profile."""

    def __init__(
        self,
        rulebook: Rulebook,
        questionnaire: Questionnaire,
        profile: str,
        checks: list[Invariant],
        budget: int,
        shared: SharedChecks | None = None,
    ):
        self.profile = profile
        self.shared = shared or SharedChecks()
        # profile -> how many checks this profile took from it, and their evaluations
        self.reused: dict[str, tuple[int, int]] = {}
        self._evaluated: list[dict[str, Any]] = []  # every answer set `run` evaluated, in order
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._sampled = 0
        self.rulebook = rulebook
        extra = [c for inv in checks for c in inv.conditions()]
        self.space = AnswerSpace(rulebook, questionnaire, profile, extra=extra, budget=budget)
        self.by_id = {r.id: r for r in self.space.rules}
        self.evaluator = Evaluator(rulebook, profile, self.shared.tests)
        self.invariants = checks
        self.findings: list[AuditFinding] = []
        self.evaluations = 0
        self.enumerated: dict[str, int] = {}
        self.distinct: dict[str, int] = {}
        self.enumerated_facts: dict[str, tuple[list[str], list[int], int, int]] = {}
        self.broken: set[str] = set()
        self.safety_overlaps = 0
        self.fires: set[str] = set()
        self._witness_cache: dict[str, list[dict[str, Any]]] = {}
        self._evaluators: dict[frozenset[str], RuleSubset] = {}
        self._chains: dict[str, frozenset[str]] = {}
        self._status_rules: dict[tuple[str, str | None], list[Rule]] = {}
        self._premises: dict[str, list[tuple[RuleTest, Wanted]]] = {}
        self._every_rule: RuleSubset | None = None
        self._baselines: dict[int, tuple[dict[str, Any], list[Truth], list[int]]] = {}  # by id, the baseline kept
        self.examples: list[dict[str, Any]] = []
        self.engine_sample: list[dict[str, Any]] = []  # answer sets the search evaluated, run on durable_rules too
        self._sampler = random.Random(ENGINE_SAMPLE)  # noqa: S311 - a fixed seed: the same sample every run

    # helpers
    def status_rules(self, pid: str, status: str | None = None) -> list[Rule]:
        """The active rules setting a status (or this one) on `pid`, in rulebook order (a kept list: not to change)."""
        found = self._status_rules.get((pid, status))
        if found is None:
            found = self._status_rules[(pid, status)] = [
                r
                for r in self.space.rules
                if r.then.status is not None and pid in r.then.procedures and status in (None, r.then.status)
            ]
        return found

    def restrictive(self, pid: str, status: str) -> list[Rule]:
        """The status rules that would win over `status` (by the one resolution, engine.model.status.resolve)."""
        return [r for r in self.status_rules(pid) if status_model.resolve([status, r.then.status or status]) != status]

    def status_routes(self, pid: str, status: str) -> list[list[list[Conj]]]:
        """Alternative goal lists under which `pid` gets `status`."""
        setting = [c for r in self.status_rules(pid, status) for c in self.space.rule_true(r)]
        routes = [[setting] + [self.space.rule_not_true(r) for r in self.restrictive(pid, status)]]
        if status == "not_indicated":
            routes.append([self.space.rule_not_true(r) for r in self.status_rules(pid)])
        return routes

    def run(self, answers: dict[str, Any], deciding: list[Rule] | None = None) -> Outcome:
        """The outcome of these answers; with `deciding`, of those rules alone (see `evaluator_for`)."""
        self.evaluations += 1
        self._evaluated.append(answers)
        self._sample(answers)
        if deciding is None:
            return Outcome.of(zip(self.evaluator.rules, self.evaluator.truths(answers), strict=True))
        return Outcome.of(self.evaluator_for(deciding)(answers))

    def _sample(self, answers: dict[str, Any]) -> None:
        """Keep a uniform sample of every answer set evaluated for the engine check (reservoir sampling)."""
        self._sampled += 1
        if len(self.engine_sample) < ENGINE_SAMPLE:
            self.engine_sample.append(answers)
        elif (slot := self._sampler.randrange(self._sampled)) < ENGINE_SAMPLE:
            self.engine_sample[slot] = answers

    def signature(self, rule: Rule) -> tuple[Any, ...]:
        """What a rule means in this profile: its id, the values of the parameters it reads, and the
        signature of the rule deriving each derived fact it reads (None where no rule derives it)."""
        if rule.id not in self._signatures:
            atoms = rule.when.atoms()
            derived = sorted({a.fact for a in atoms if a.fact is not None and self.space.is_derived(a.fact)})
            reads = tuple(
                (f, self.signature(self.space.derived[f]) if f in self.space.derived else None) for f in derived
            )
            self._signatures[rule.id] = (rule.id, self.parameter_values(atoms), reads)
        return self._signatures[rule.id]

    def parameter_values(self, atoms: Iterable[Condition]) -> tuple[tuple[str, int | float], ...]:
        """The parameters these atoms read, each with its value in this profile (in id order)."""
        return tuple(sorted({(a.param, self.space.params[a.param]) for a in atoms if a.param is not None}))

    def once(self, key: Any, check: Callable[[], Any], keep: Callable[[AuditFinding], bool] | None = None) -> Any:
        """`check()`, or its outcome in an earlier profile where it read the same rules (`key`, see SharedChecks).

        `keep`: which of the earlier findings still apply here (default: all).
        """
        done = self.shared.done.get(key)
        if done is None:
            findings, evaluated, evaluations = len(self.findings), len(self._evaluated), self.evaluations
            value = check()
            self.shared.done[key] = _Done(
                value,
                self.findings[findings:],
                self._evaluated[evaluated:],
                self.evaluations - evaluations,
                self.profile,
            )
            return value
        checks, evaluations = self.reused.get(done.profile, (0, 0))
        self.reused[done.profile] = (checks + 1, evaluations + done.evaluations)
        for answers in done.evaluated:
            self._sample(answers)
        self.findings += [
            dataclasses.replace(f, profiles=(self.profile,)) for f in done.findings if keep is None or keep(f)
        ]
        return done.value

    def rules_key(self, rules: Iterable[Rule]) -> frozenset[tuple[Any, ...]]:
        return frozenset(self.signature(r) for r in rules)

    def evaluator_for(self, deciding: list[Rule]) -> RuleSubset:
        """The independent evaluator of these rules and of the rules deriving every fact they read, down the chains.

        An expectation about some rules or procedures depends on nothing else: checking it on
        them alone gives the same verdict as on every rule, at a fraction of the cost.
        """
        key = frozenset(r.id for r in deciding)
        if key not in self._evaluators:
            self._evaluators[key] = self.evaluator.subset(set().union(*(self._reads(rule) for rule in deciding)))
        return self._evaluators[key]

    def _reads(self, rule: Rule) -> frozenset[str]:
        """The rule and the rules deriving every fact it reads, down the chains (their ids)."""
        reads = self._chains.get(rule.id)
        if reads is None:
            derived = self.space.derived
            chain = (derived[f].id for f in self.rulebook.derived_read([rule]) if f in derived)
            reads = self._chains[rule.id] = frozenset((rule.id, *chain))
        return reads

    def baseline_truths(self, base: dict[str, Any]) -> tuple[list[Truth], list[int]]:
        """Every rule's truth on a baseline of the enumeration (in the evaluator's order), and the places of
        those that hold: worked out once per baseline, for every invariant enumerated over it."""
        known = self._baselines.get(id(base))
        if known is None or known[0] is not base:
            if self._every_rule is None:
                self._every_rule = self.evaluator.subset([r.id for r in self.evaluator.rules])
            truths = [truth for _, truth in self._every_rule(base)]
            known = self._baselines[id(base)] = (base, truths, [i for i, t in enumerate(truths) if t is True])
        return known[1], known[2]

    def applies(self, inv: Invariant, answers: dict[str, Any]) -> bool:
        """Whether each of the invariant's premises takes a truth it wants on these answers (derived facts unknown)."""
        tests = self._premises.get(inv.key)
        if tests is None:
            derived, params = self.rulebook.derived_facts, self.space.params
            tests = self._premises[inv.key] = [(compile_condition(c, derived, params), w) for c, w in inv.premises]
        return all(test(answers, {}) in wanted for test, wanted in tests)

    def find(
        self, goals: list[list[Conj]], expect: Expectation, what: str, deciding: list[Rule] | None = None
    ) -> dict[str, Any] | None:
        """Answers meeting the goals (checked by the evaluator with `expect`), or None if there are none.

        `deciding`: the rules `expect` depends on (default: every rule), see `evaluator_for`.
        """
        try:
            state = self.space.solve(goals)
        except SearchBudgetExceeded:
            self.findings.append(
                AuditFinding(
                    "undecided",
                    "warning",
                    what,
                    f"left undecided after {self.space.budget} search steps",
                    (self.profile,),
                )
            )
            return None
        if state is None:
            return None
        answers = self.space.witness(state)
        if not expect(self.run(answers, deciding), answers):
            self.findings.append(
                AuditFinding(
                    "internal-disagreement",
                    "error",
                    what,
                    "the search predicted answers the independent evaluator does not confirm",
                    (self.profile,),
                    answers,
                )
            )
            return None
        return answers

    # checks
    def never_fires(self) -> None:
        for rule in self.space.rules:

            def fires(rule: Rule = rule) -> bool:
                return self.find([self.space.rule_true(rule)], holding(rule.id), rule.id, [rule]) is not None

            if self.once(("fires", self.signature(rule)), fires):
                self.fires.add(rule.id)

    def reachability(self) -> dict[tuple[str, str], bool | None]:
        """Whether answers exist giving each procedure each expected status (None: no rule names it)."""
        reached: dict[tuple[str, str], bool | None] = {}
        for pid, statuses in EXPECTED_STATUSES.items():
            for status in statuses:
                if status != "not_indicated" and not self.status_rules(pid, status):
                    reached[(pid, status)] = None
                    continue

                def reach(pid: str = pid, status: str = status) -> bool:
                    for goals in self.status_routes(pid, status):
                        found = self.find(goals, with_status(pid, status), f"{pid}: {status}", self.status_rules(pid))
                        if found is not None:
                            return True
                    return False

                reached[(pid, status)] = self.once(
                    ("reach", pid, status, self.rules_key(self.status_rules(pid))), reach
                )
        return reached

    def pairs(self) -> None:
        """Compare every two rules that set a status on one procedure (findings grouped by rule pair)."""
        space = self.space
        grouped: dict[tuple[FindingName, str, str], tuple[list[str], str, dict[str, Any]]] = {}
        for pid in PROCEDURE_IDS:
            for a, b in itertools.combinations(self.status_rules(pid), 2):

                def pair(a: Rule = a, b: Rule = b) -> tuple[dict[str, Any], FindingName, str, str] | None:
                    found = self.find(
                        [space.rule_true(a), space.rule_true(b)], holding(a.id, b.id), f"{a.id} and {b.id}", [a, b]
                    )
                    if found is None:
                        return None
                    name, first, second = self._relation(a, b)
                    return found, name, first.id, second.id

                related = self.once(("pair", self.signature(a), self.signature(b)), pair)
                if related is None:
                    continue
                both, name, first_id, second_id = related
                first, second = self.by_id[first_id], self.by_id[second_id]
                if name in ("status-overlap", "overlapping-rules") and "safety" in (a.layer, b.layer):
                    self.safety_overlaps += 1
                    continue
                procedures, _, example = grouped.setdefault((name, first.id, second.id), ([], "", both))
                procedures.append(pid)
        for (kind, one, other), (procedures, _, example) in grouped.items():
            self.findings.append(self._pair_finding(kind, self.by_id[one], self.by_id[other], procedures, example))

    def _implies(self, a: Rule, b: Rule) -> bool:
        """Whether `b` holds whenever `a` does: from the rules' alternatives where they decide it, else by a search."""
        space = self.space
        premise, denial = space.rule_true(a), space.rule_not_true(b)
        decided = space.implied(premise, space.rule_true(b), denial)
        if decided is not None:
            return decided
        try:
            return space.solve([premise, denial]) is None
        except SearchBudgetExceeded:
            return False

    def _relation(self, a: Rule, b: Rule) -> tuple[FindingName, Rule, Rule]:
        """How two rules that can hold together relate, ordered (less restrictive or implying rule first)."""
        a_b, b_a = self._implies(a, b), self._implies(b, a)
        if a.then.status != b.then.status:
            if (a.then.status or STATUSES[0]).rank > (b.then.status or STATUSES[0]).rank:
                a, b, a_b, b_a = b, a, b_a, a_b
            if a_b and b_a:
                return "contradiction", a, b
            return ("shadowed-rule" if a_b else "status-overlap"), a, b
        if a_b and b_a:
            return "duplicate-rule", a, b
        if b_a:
            return "subsumed-rule", b, a
        return ("subsumed-rule" if a_b else "overlapping-rules"), a, b

    def _pair_finding(
        self, name: FindingName, a: Rule, b: Rule, procedures: list[str], example: dict[str, Any]
    ) -> AuditFinding:
        where = ", ".join(procedures)
        sa, sb = a.then.status, b.then.status
        messages: dict[str, tuple[str, Severity]] = {
            "contradiction": (f"equivalent conditions set {where} to {sa} and to {sb}", "error"),
            "shadowed-rule": (
                f"whenever {a.id} holds, {b.id} holds too and sets {where} to {sb}: {a.id} ({sa}) never decides it",
                "warning",
            ),
            "status-overlap": (f"can hold together; {where} becomes {sb} ({b.id}), not {sa}", "info"),
            "duplicate-rule": (f"equivalent conditions, both set {where} to {sa}", "warning"),
            "subsumed-rule": (f"whenever {a.id} holds, {b.id} holds too; both set {where} to {sa}", "warning"),
            "overlapping-rules": (f"can hold together; both set {where} to {sa}", "info"),
        }
        message, severity = messages[name]
        shown = example if severity != "error" else None
        return AuditFinding(name, severity, f"{a.id} / {b.id}", message, (self.profile,), shown)

    # invariants
    def candidate_witnesses(self, pid: str) -> list[dict[str, Any]]:
        """For each rule that can make `pid` a candidate, answers that do (found by the search)."""
        if pid not in self._witness_cache:
            found = []
            blockers = [self.space.rule_not_true(r) for r in self.restrictive(pid, "candidate")]
            for rule in self.status_rules(pid, "candidate"):
                answers = self.find(
                    [self.space.rule_true(rule), *blockers],
                    with_status(pid, "candidate"),
                    f"{pid}: candidate by {rule.id}",
                    self.status_rules(pid),
                )
                if answers is not None:
                    found.append(answers)
            self._witness_cache[pid] = found
        return self._witness_cache[pid]

    def check_invariant(self, inv: Invariant) -> None:
        """Search for answers that break the invariant, then enumerate around the premise (see `enumerate`).

        Run once for the profiles in which every rule about the procedures it concerns (and about
        urgency, if it checks that) is the same, with the parameters its premise reads (see SharedChecks).
        """
        concerned = set(self.concerned(inv))
        reads = [
            r
            for r in self.space.rules
            if concerned & set(r.then.procedures) or (inv.urgent and r.then.urgent_assessment)
        ]
        params = self.parameter_values(a for c in inv.conditions() for a in c.atoms())
        key = ("invariant", id(inv), self.rules_key(reads), params)
        was_broken = inv.statement in self.broken

        def check() -> tuple[tuple[int, int, tuple[list[str], list[int], int, int]], bool]:
            return self._check_invariant(inv, params), inv.statement in self.broken

        counted, broken = self.once(key, check, keep=lambda f: not (was_broken and f.name == inv.name))
        if broken:
            self.broken.add(inv.statement)
        self._count(inv, *counted)

    def _count(self, inv: Invariant, count: int, distinct: int, facts: tuple[list[str], list[int], int, int]) -> None:
        key = inv.key or inv.name
        self.enumerated[key] = self.enumerated.get(key, 0) + count
        self.distinct[key] = self.distinct.get(key, 0) + distinct
        self.enumerated_facts[key] = facts

    def _check_invariant(
        self, inv: Invariant, params: tuple[tuple[str, int | float], ...]
    ) -> tuple[int, int, tuple[list[str], list[int], int, int]]:
        """The symbolic search, one question per procedure, status and route (and urgency), then the enumeration.

        Each question reads only the status rules of its procedure (or the urgency rules), so it is
        asked once for the profiles in which those are the same; its answers must break the
        invariant for that procedure (or urgency) itself. `params`: the parameters the premise reads.
        """
        space = self.space
        premise = [space.cases(c, wanted) for c, wanted in inv.premises]
        questions: list[tuple[str, Invariant, list[Rule], list[list[Conj]]]] = []
        for pid in inv.procedures:
            part = dataclasses.replace(inv, procedures=(pid,), urgent=False)
            rules = self.status_rules(pid)
            for status in inv.forbidden_statuses():
                for route, goals in enumerate(self.status_routes(pid, status)):
                    questions.append((f"{pid} {status}" + f" ({route})" * bool(route), part, rules, premise + goals))
            if FALLBACK in inv.forbids:
                no_rule = [self.space.rule_not_true(r) for r in rules]
                questions.append((f"{pid} by the fallback", part, rules, premise + no_rule))
        if inv.urgent:
            urgent_rules = [r for r in space.rules if r.then.urgent_assessment]
            part = dataclasses.replace(inv, procedures=(), urgent=True)
            questions.append(
                ("no urgent assessment", part, urgent_rules, premise + [space.rule_not_true(r) for r in urgent_rules])
            )
        for what, part, rules, goals in questions:

            def ask(
                what: str = what, part: Invariant = part, rules: list[Rule] = rules, goals: list[list[Conj]] = goals
            ) -> bool:
                def broken(outcome: Outcome, answers: dict[str, Any]) -> bool:
                    return self.applies(inv, answers) and bool(part.broken(outcome))

                answers = self.find(goals, broken, f"{inv.name}: {what.split(' (')[0]}", rules)
                if answers is not None:
                    self._violation(inv, answers)
                return answers is not None

            if self.once(("question", id(inv), what, self.rules_key(rules), params), ask):
                self.broken.add(inv.statement)
                break
        return self.enumerate(inv)

    def _violation(self, inv: Invariant, answers: dict[str, Any]) -> None:
        if inv.statement in self.broken:
            return
        self.broken.add(inv.statement)
        outcome = self.run(answers)
        self.findings.append(
            AuditFinding(
                inv.name,
                "error",
                ", ".join(inv.procedures) or inv.name,
                f"broken ({'; '.join(inv.broken(outcome))}); the invariant: {inv.statement}",
                (self.profile,),
                answers,
            )
        )

    def concerned(self, inv: Invariant) -> tuple[str, ...]:
        return PROCEDURE_IDS if inv.urgent else inv.procedures

    def projection(self, inv: Invariant, baselines: int) -> tuple[list[str], dict[str, list[Any]]]:
        """The facts an invariant's enumeration varies, and the class representatives of each.

        They are the answers the premise reads, plus every answer read by the rules that read
        one of those and conclude about a procedure the invariant concerns (or urgency); each
        takes one value per class of the atoms on it in those rules and the premise. If that is
        more than ENUMERATION_CAP answer sets in all, only the premise's own answers vary.
        """
        space = self.space
        if not inv.premises:
            return [], {}
        own = [a for c in inv.conditions() for a in c.atoms() if a.fact is not None and not space.is_derived(a.fact)]
        base_facts = {a.fact for a in own if a.fact is not None}
        concerned = set(self.concerned(inv))
        readers = [
            r
            for r in space.rules
            if base_facts & {a.fact for a in r.when.atoms()}
            and (concerned & set(r.then.procedures) or (inv.urgent and r.then.urgent_assessment))
        ]
        atoms = own + [
            a for r in readers for a in r.when.atoms() if a.fact is not None and not space.is_derived(a.fact)
        ]
        facts = sorted({a.fact for a in atoms if a.fact is not None})
        classes = {f: space.classes(f, [a for a in atoms if a.fact == f]) for f in facts}
        if math.prod(len(classes[f]) for f in facts) * baselines > ENUMERATION_CAP:
            facts = sorted(base_facts)
        return facts, {f: classes[f] for f in facts}

    def deciding_rules(self, inv: Invariant) -> list[Rule]:
        """The rules that decide what the invariant checks: those setting a status on a procedure it
        concerns, and those setting urgency if it checks urgency (other rules cannot change its verdict).
        """
        concerned = set(self.concerned(inv))
        return [
            r
            for r in self.space.rules
            if (r.then.status is not None and concerned & set(r.then.procedures))
            or (inv.urgent and r.then.urgent_assessment)
        ]

    def enumerate(self, inv: Invariant) -> tuple[int, int, tuple[list[str], list[int], int, int]]:
        """Every combination of the classes of the answers the premise reads (and the rules about its
        procedures read), over baselines; returns how many were evaluated, how many were distinct
        to the deciding rules, and what was varied (see `_describe`)."""
        fixed: list[dict[str, Any]] = [{}, *self.examples]
        witnesses = [self.candidate_witnesses(pid) for pid in self.concerned(inv)]
        every = fixed + [w for found in witnesses for w in found]
        facts, values = self.projection(inv, len(every))
        combos = math.prod(len(values[f]) for f in facts)
        baselines = every
        if combos * len(every) > ENUMERATION_CAP:
            # Even the premise's own answers over every baseline are too many: keep the fixed
            # baselines and as many witnesses as the cap allows, taken in turn from each procedure
            # (the symbolic search above has already decided the invariant over every answer).
            room = max(0, ENUMERATION_CAP // combos - len(fixed))
            in_turn = [w for group in itertools.zip_longest(*witnesses) for w in group if w is not None]
            baselines = fixed + in_turn[:room]
        evaluator = self.evaluator_for(self.deciding_rules(inv))
        space = self.space
        read = sorted(
            {a.fact for r in evaluator.rules for a in r.when.atoms() if a.fact and not space.is_derived(a.fact)}
        )
        # Only the rules reading a varied answer (directly or through derived facts) change within a
        # baseline: the others are evaluated once per baseline, and only their holding ones are kept.
        # Two answer sets are the same to the deciding rules when they agree on every answer those read:
        # on the baseline's part of them (kept with the baseline), and on the combination's.
        # A rule reading no varied answer has the truth the whole rulebook gives it on the baseline (the
        # rules deriving what it reads read none either): taken from `baseline_truths`, worked out once.
        fixed_rules, varying = evaluator.split(facts)
        fixed_at = set(fixed_rules.indices)
        derivers = [
            (i, rule.then.derive)
            for rule, i in zip(fixed_rules.rules, fixed_rules.indices, strict=True)
            if rule.then.derive is not None
        ]
        every_rule = self.evaluator.rules
        varied = [f for f in read if f in values]
        settled = []
        for base in baselines:
            truths, holds = self.baseline_truths(base)
            held: list[tuple[Rule, Truth]] = [(every_rule[i], True) for i in holds if i in fixed_at]
            derived: dict[str, Truth] = {derive: truths[i] for i, derive in derivers}
            settled.append(
                (
                    base,
                    Tally.of(held, inv.procedures),
                    derived,
                    tuple(hashable(base.get(f, UNKNOWN)) for f in read if f not in values),
                )
            )
        seen: set[tuple[Any, ...]] = set()
        count = 0
        # The premise reads only answers (derived facts unknown): if the combination varies all it reads,
        # whether it applies is the combination's alone, asked once for every baseline.
        premise_read = {a.fact for c in inv.conditions() for a in c.atoms() if a.fact and not space.is_derived(a.fact)}
        by_combination = premise_read <= set(facts)
        for combo in _product(facts, values):
            if by_combination and not self.applies(inv, combo):
                count += len(settled)
                continue
            from_combo = tuple(hashable(combo[f]) for f in varied)
            for base, tally, derived, from_base in settled:
                answers = {**base, **combo}
                count += 1
                if not by_combination and not self.applies(inv, answers):
                    continue
                distinct = (from_base, from_combo)
                if distinct in seen:
                    continue  # the same answers to every deciding rule: the same verdict
                seen.add(distinct)
                self.evaluations += 1
                if inv.broken(tally.copy().add(varying(answers, dict(derived))).outcome()):
                    self._violation(inv, answers)
        return count, len(seen), (facts, [len(values[f]) for f in facts], len(baselines), len(every))


def _product(facts: list[str], values: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    for combo in itertools.product(*(values[f] for f in facts)):
        yield {f: as_answer(v) for f, v in zip(facts, combo, strict=True)}


def example_patients(
    questionnaire: Questionnaire, folder: Path | None = None
) -> tuple[list[dict[str, Any]], list[AuditFinding]]:
    """The example patients in `folder` (else those shipped with the rules), as baselines."""
    out, skipped = [], []
    for path in sorted(data_dir("examples", folder).glob("*.yaml")):
        try:
            data = read_data(path)
            answers = questionnaire.answers_model.model_validate(migrate(data, path.name).answers).model_dump()
        except (DataFileError, ValidationError) as exc:
            skipped.append(AuditFinding("example-skipped", "info", path.name, f"not used as a baseline: {exc}"))
            continue
        out.append({k: v for k, v in answers.items() if questionnaire.questions[k].type != "text"})
    return out, skipped


# -- putting it together -------------------------------------------------------------------------


def _merge(findings: list[AuditFinding]) -> list[AuditFinding]:
    """One finding per name, subject and message, listing every profile it holds in."""
    merged: dict[tuple[str, str, str], AuditFinding] = {}
    for f in findings:
        key = (f.name, f.subject, f.message)
        if key in merged:
            old = merged[key]
            profiles = tuple(dict.fromkeys(old.profiles + f.profiles))
            merged[key] = AuditFinding(old.name, old.severity, old.subject, old.message, profiles, old.example)
        else:
            merged[key] = f
    return sorted(merged.values(), key=lambda f: (SEVERITY_ORDER[f.severity], f.name, f.subject))


def accept(findings: list[AuditFinding], acceptances: Acceptances, every_profile: bool) -> list[AuditFinding]:
    """Findings with the reviewers' acceptances applied, and a warning for each entry that is stale or matches an error.

    An entry accepts every warning or note it matches that no earlier entry accepts: that finding
    becomes a note marked accepted. Errors are never accepted.
    """
    out = list(findings)
    for index, entry in enumerate(acceptances.entries):
        where = acceptances.where(index)
        matched = [i for i, f in enumerate(out) if f.accepted is None and entry.matches(f.name, f.subject, f.message)]
        for i in matched:
            f = out[i]
            if f.severity == "error":
                message = (
                    f"accepts the error `{f.name}: {f.subject}: {f.message}`; errors are never accepted: "
                    "fix the rulebook, and remove this entry"
                )
                out.append(AuditFinding("acceptance-of-error", "warning", where, message))
            else:
                accepted = Accepted(entry, where, f.severity)
                out[i] = AuditFinding(f.name, "info", f.subject, f.message, f.profiles, f.example, accepted)
        if not matched:
            message = f"`{entry.describe()}` matches no finding, or only ones an earlier entry accepts; remove it"
            if every_profile:
                out.append(AuditFinding("stale-acceptance", "warning", where, message))
            else:
                message += " if it matches none when every profile is checked (run without --profile)"
                out.append(AuditFinding("stale-acceptance", "info", where, message))
    return sorted(out, key=lambda f: (SEVERITY_ORDER[f.severity], f.name, f.subject))


def verify(
    rules_dir: Path | None = None,
    knowledge_dir: Path | None = None,
    today: dt.date | None = None,
    max_age_days: int = 365,
    profile: str | None = None,
    budget: int = SEARCH_BUDGET,
    examples_dir: Path | None = None,
) -> VerifyReport:
    """Every check, over every profile (or one), with the reviewers' acceptances applied.

    The searches start from the example patients (`examples_dir`, else those shipped with the rules).

    Never raises for a bad rulebook: that is a finding. A bad accepted-findings file raises
    RulebookError: acceptances that cannot be read cannot be trusted.

    The cyclic garbage collector waits until the report is made (`memory.building`): what the
    checks make lives until then or is freed by reference counting, and each collection walked it
    all again (measured: 0.3 s of CPU in 650 collections at 1x, about 4 s at 8x the option rules;
    the cycles left, 140,000 objects at 8x, take 9 MiB more at the peak and are freed after it).
    """
    with memory.building():
        return _verify(rules_dir, knowledge_dir, today, max_age_days, profile, budget, examples_dir)


def _verify(
    rules_dir: Path | None,
    knowledge_dir: Path | None,
    today: dt.date | None,
    max_age_days: int,
    profile: str | None,
    budget: int,
    examples_dir: Path | None,
) -> VerifyReport:
    start = time.perf_counter()
    today = today or dt.date.today()
    kdir, rdir = data_dir("knowledge", knowledge_dir), data_dir("rules", rules_dir)
    acceptances = load_acceptances(rdir)
    try:
        knowledge = load_knowledge(kdir)
        questionnaire = load_questionnaire(kdir / "questionnaire.yaml", knowledge.conditions, knowledge.treatments)
        rulebook = load_rulebook(rdir, knowledge, questionnaire, kdir)
    except DataFileError as exc:
        findings = load_findings(exc)
        note = "the rulebook does not load, so the logic and safety checks did not run"
        return VerifyReport(_merge(findings), [note], time.perf_counter() - start)
    findings = upkeep_findings(rulebook, knowledge, today, max_age_days)
    checks = invariants(knowledge, rulebook)
    examples, skipped = example_patients(questionnaire, examples_dir)
    findings += skipped
    enumerated: list[str] = []
    active_in: dict[str, list[str]] = {}
    fires_in: dict[str, list[str]] = {}
    reached: dict[tuple[str, str], list[str]] = {}
    unnamed: dict[tuple[str, str], list[str]] = {}
    profiles = list(rulebook.profiles) if profile is None else [rulebook.check_profile(profile)]
    near = threshold_sample(rulebook, questionnaire)
    evaluators: dict[str, Evaluator] = {}
    own: dict[str, list[dict[str, Any]]] = {}
    described: dict[str, str] = {}
    already = SharedChecks()
    for name in profiles:
        audit = ProfileAudit(rulebook, questionnaire, name, checks, budget, already)
        audit.examples = examples
        audit.never_fires()
        for rule in audit.space.rules:
            active_in.setdefault(rule.id, []).append(name)
            if rule.id in audit.fires:
                fires_in.setdefault(rule.id, []).append(name)
        for pair, hit in audit.reachability().items():
            reached.setdefault(pair, [])
            if hit:
                reached[pair].append(name)
            elif hit is None:
                unnamed.setdefault(pair, []).append(name)
        audit.pairs()
        for inv in checks:
            audit.check_invariant(inv)
        findings += audit.findings
        evaluators[name] = audit.evaluator
        own[name] = [*examples, *dense(examples, questionnaire), *audit.engine_sample]
        described[name] = _describe(audit)
    # The example patients and the answer sets near the thresholds are the same for every profile:
    # they run once, on the joint ruleset, and each profile's own ruleset runs the examples and the
    # answer sets its search evaluated.
    shared = [*examples, *dense(examples, questionnaire), *near]
    findings += engine_findings(rulebook, questionnaire, evaluators, own, shared)
    ran = {name: len(own[name]) + len(near) for name in profiles}
    enumerated += [f"{described[name]}; {ran[name]} of them also run on {engines_run()}" for name in profiles]
    findings += _never_fires_findings(active_in, fires_in, rulebook)
    findings += _reach_findings(reached, unnamed, profiles)
    checked = accept(_merge(findings), acceptances, every_profile=profile is None)
    used = acceptances.path if acceptances.entries else None
    return VerifyReport(checked, enumerated, time.perf_counter() - start, used)


def _describe(audit: ProfileAudit) -> str:
    space = audit.space
    facts = space.answer_facts()
    classes = sum(len(space.domain(f)) for f in facts)
    digits = math.log10(space.size()) if facts else 0
    lines = [
        f"profile {audit.profile}: {len(space.rules)} active rules read {len(facts)} answers; "
        f"{classes} answer classes in all, standing for about 10^{digits:.0f} distinct answer sets, "
        f"searched symbolically: {space.stats.queries} questions, {space.stats.steps} search steps",
    ]
    for key, count in audit.enumerated.items():
        facts_, sizes, bases, candidates = audit.enumerated_facts[key]
        varied = ", ".join(f"{f} ({n})" for f, n in zip(facts_, sizes, strict=True)) or "nothing (baselines only)"
        capped = f" (of {candidates}: at most {ENUMERATION_CAP} answer sets)" if bases < candidates else ""
        lines.append(
            f"  {key}: {count} answer sets evaluated = {bases} baselines{capped} x classes of {varied}; "
            f"{audit.distinct[key]} of them distinct on the answers its deciding rules read"
        )
    if audit.safety_overlaps:
        lines.append(f"  {audit.safety_overlaps} overlaps of a safety-layer status with another rule (by design)")
    taken = {p: n for p, n in audit.reused.items() if p != audit.profile}
    if taken:
        froms = ", ".join(f"{n} from {p}" for p, (n, _) in taken.items())
        lines.append(
            f"  {sum(n for n, _ in taken.values())} checks read only rules that are the same as in an earlier profile: "
            f"not run again ({froms}; their {sum(e for _, e in taken.values())} evaluations stand)"
        )
    lines.append(f"  {audit.evaluations} evaluations by the independent evaluator in all")
    return "\n".join(lines)


def _never_fires_findings(
    active_in: dict[str, list[str]], fires_in: dict[str, list[str]], rulebook: Rulebook
) -> list[AuditFinding]:
    out = []
    for rid, profiles in active_in.items():
        fired = fires_in.get(rid, [])
        dead = [p for p in profiles if p not in fired]
        if not dead:
            continue
        why = _why_dead(rulebook.rule(rid), rulebook, fires_in)
        if not fired:
            out.append(AuditFinding("never-fires", "error", rid, f"its condition is never true{why}", tuple(dead)))
        else:
            out.append(
                AuditFinding(
                    "never-fires",
                    "warning",
                    rid,
                    f"never true under {', '.join(dead)}, though it is under {', '.join(fired)}",
                    tuple(dead),
                )
            )
    return out


def _why_dead(rule: Rule, rulebook: Rulebook, fires_in: dict[str, list[str]]) -> str:
    dead = [
        a.fact
        for a in rule.when.atoms()
        if a.fact in rulebook.derived_facts and a.op == "is_true" and rulebook.derived_facts[a.fact] not in fires_in
    ]
    if dead:
        return f": it needs derived fact(s) {', '.join(sorted(set(dead)))}, which are never true"
    return " (for example, contradictory conditions on one answer in every alternative)"


def _reach_findings(
    reached: dict[tuple[str, str], list[str]], unnamed: dict[tuple[str, str], list[str]], profiles: list[str]
) -> list[AuditFinding]:
    out = []
    for (pid, status), hit in reached.items():
        if len(hit) == len(profiles):
            continue
        missing = tuple(p for p in profiles if p not in hit)
        no_rule = set(unnamed.get((pid, status), [])) == set(missing)
        if hit:
            message, severity = f"never {status} under {', '.join(missing)}", "info"
        elif status == "candidate":
            message, severity = f"no answers make it {status}", "error"
        elif no_rule:
            message, severity = f"never {status}: no rule sets this status for it", "warning"
        else:
            message, severity = f"no answers make it {status}, though rules set that status", "error"
        out.append(AuditFinding("unreachable-status", severity, pid, message, missing))  # type: ignore[arg-type]
    return out


COUNTED_NOTES = ("overlapping-rules", "status-overlap")
"""Notes that are many and by design (rules that can hold together): counted in text unless asked for."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render(report: VerifyReport, all_notes: bool = False) -> str:
    """The report as text: what was enumerated, then the findings, most severe first.

    Example answers are printed for errors and warnings; notes carry theirs in `--format json`.
    Notes about overlapping rules are counted, not listed, unless `all_notes`. Accepted findings
    come last, in their own block, each with who accepted it, when and why.
    """
    lines = ["What was checked:"]
    lines += [f"  {line}" for block in report.enumerated for line in block.splitlines()]
    lines.append("")
    hidden: dict[str, int] = {}
    accepted = [(f, f.accepted) for f in report.findings if f.accepted is not None]
    for f in report.findings:
        if f.accepted is not None:
            continue
        if f.severity == "info" and f.name in COUNTED_NOTES and not all_notes:
            hidden[f.name] = hidden.get(f.name, 0) + 1
            continue
        where = f" [{', '.join(f.profiles)}]" if f.profiles else ""
        lines.append(f"{f.severity.upper():7} {f.name}: {f.subject}{where}: {f.message}")
        if f.example is not None and f.severity != "info":
            shown = ", ".join(f"{k}={v}" for k, v in sorted(f.example.items()))
            lines.append(f"        e.g. answers: {shown or '(all unknown)'}")
    if hidden:
        counted = ", ".join(f"{name} ({n})" for name, n in hidden.items())
        lines.append(f"INFO    not listed: {counted}: rules that can hold together; list them with --notes")
    if accepted:
        lines += ["", f"Accepted after review ({len(accepted)}), in {report.acceptances}:"]
    for f, how in accepted:
        a = how.acceptance
        where = f" [{', '.join(f.profiles)}]" if f.profiles else ""
        lines.append(f"  {f.name}: {f.subject}{where}: {f.message}")
        said = f"a {how.severity}, accepted by {a.accepted_by} on {a.date.isoformat()}: {' '.join(a.reason.split())}"
        lines += textwrap.wrap(said, 100, initial_indent="    ", subsequent_indent="    ")
    counts = report.counts()
    lines.append("")
    lines.append(
        f"{_plural(counts['error'], 'error')}, {_plural(counts['warning'], 'warning')}, "
        f"{_plural(counts['info'], 'note')}{f' ({len(accepted)} accepted)' if accepted else ''} "
        f"in {report.seconds:.1f} s"
    )
    return "\n".join(lines) + "\n"
