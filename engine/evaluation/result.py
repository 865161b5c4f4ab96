"""The result of one evaluation: every option's status with its evidence.

Everything shown to a patient, clinician or reviewer (the screen, the summary, `explain`,
the records) is rendered from this one record. Its JSON form (`schema` below) is stable:
fields may be added, never renamed or removed, without a new schema version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from engine.evaluation.firing import Firing
from engine.evaluation.kept import Kept, values_key
from engine.model import status as status_model
from engine.model.facts import known
from engine.model.knowledge import PROCEDURE_IDS, Disagreement, Knowledge
from engine.model.rulebook import Rule, Rulebook, Step, fill_parameters
from engine.model.status import FALLBACK_STATUS, Status, StatusField

SCHEMA = "pain-sdm/result/1"
SUMMARY_SCHEMA = "pain-sdm/result-summary/1"
EARLIER_ENGINE = "durable_rules 2.0.28"
"""The engine behind every result stored before results named their engine."""

FALLBACK_ID = "FALLBACK"
FALLBACK_SET = frozenset({FALLBACK_ID})
FALLBACK_TEXT = (
    "None of the rules that would open this option applied to your answers. "
    "Answers marked 'not sure' can be the reason; your clinician can check."
)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Finding(Model):
    """One rule's conclusion for this patient, with the evidence behind it."""

    rule_id: str
    rule_version: int
    title: str
    layer: str
    kind: Literal["derived", "status", "caution", "declined", "urgent"]
    holds: bool = True
    derived: str | None = None
    status: StatusField | None = None
    procedures: list[str] = []
    text: str
    facts: dict[str, Any] = {}
    parameters: dict[str, int | float] = {}
    steps: list[Step] = []
    sources: list[str] = []
    criteria: list[str] = []
    unconfirmed: list[str] = []
    urgent_assessment: bool = False


class OptionResult(Model):
    """One procedure's status, with the reasons that set it, its cautions and next steps."""

    procedure: str
    name: str
    status: StatusField
    reasons: list[Finding]
    cautions: list[Finding] = []
    next_steps: list[Step] = []
    declined: Finding | None = None


class ProfileDifference(Model):
    """Under another guideline profile this procedure would have another status."""

    procedure: str
    profile: str
    status: StatusField
    this_status: StatusField
    rules: list[str]
    parameters: dict[str, dict[str, int | float]] = {}


class Result(Model):
    schema_: str = Field(SCHEMA, alias="schema", description="the result's schema and version")
    rulebook_version: str
    engine: str = Field(
        EARLIER_ENGINE,
        description="the rule engine that produced the result, with its version (e.g. `durable_rules 2.0.28`); "
        "results stored before results named it were all made by durable_rules 2.0.28",
    )
    profile: str
    urgent_assessment: bool
    urgent_reasons: list[Finding] = []
    options: list[OptionResult]
    derived: list[Finding] = []
    trace: list[Finding] = []
    profile_differences: list[ProfileDifference] = []
    disagreements: list[str] = []

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    def option(self, procedure: str) -> OptionResult:
        return next(o for o in self.options if o.procedure == procedure)

    def statuses(self) -> dict[str, str]:
        return {o.procedure: o.status for o in self.options}

    def to_json(self) -> dict[str, Any]:
        """The JSON form `pain-sdm schema result` describes (the first field is `schema`)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json_text(self) -> str:
        """`to_json()` as compact JSON text, written by pydantic's serializer (several times faster)."""
        return self.model_dump_json(by_alias=True)


def _unconfirmed(rule: Rule, rulebook: Rulebook, knowledge: Knowledge) -> list[str]:
    marks = [c for c in rule.criteria if knowledge.criteria[c].confidence != "confirmed"]
    for atom in rule.when.atoms():
        if atom.param and rulebook.parameters[atom.param].confidence != "confirmed":
            marks.append(f"parameter {atom.param}")
    return marks


def criteria_held(findings: Iterable[Finding]) -> set[str]:
    """Criteria encoded by the rules that held: a fact found false makes no criterion bear on the patient."""
    return {c for f in findings if f.holds for c in f.criteria}


def bears_on(dispute: Disagreement, procedures: set[str], cited: set[str]) -> bool:
    """A dispute matters when it is about one of `procedures` and (if it names criteria) one of them is `cited`."""
    return bool(procedures.intersection(dispute.procedures)) and (
        not dispute.criteria or bool(cited.intersection(dispute.criteria))
    )


Outcomes = dict[str, tuple[Status, frozenset[str]]]
"""Each procedure's status and the rules that set a status on it (FALLBACK when none)."""

Answer = Callable[[str], Any]
"""Reads one answer of the patient by question id (`Patient.fact`); `UNKNOWN` when not given."""


def finding(
    rule: Rule, firing: Firing, params: dict[str, int | float], rulebook: Rulebook, knowledge: Knowledge
) -> Finding:
    """The evidence record for one firing."""
    then = rule.then
    used = {a.param: params[a.param] for a in rule.when.atoms() if a.param}
    text = fill_parameters(rule.explanation, params) if firing.holds else f"Not the case: {rule.title.rstrip('.')}."
    return Finding(
        rule_id=rule.id,
        rule_version=rule.version,
        title=rule.title,
        layer=rule.layer,
        kind=then.kind,
        holds=firing.holds,
        derived=then.derive,
        status=then.status,
        procedures=list(then.procedures),
        text=fill_parameters(then.caution, params) if then.caution is not None else text,
        facts=dict(firing.facts),
        parameters=used,
        steps=list(then.steps),
        sources=list(rule.sources),
        criteria=list(rule.criteria),
        unconfirmed=_unconfirmed(rule, rulebook, knowledge),
        urgent_assessment=then.urgent_assessment,
    )


_set_attribute = object.__setattr__

M = TypeVar("M", bound=BaseModel)


def made(model: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """The model pydantic would make of `fields` (every field, in the model's order, of its type already), unvalidated.

    It sets what pydantic's constructor and shallow copy set: the fields, the fields set, no extra
    and no private attributes (these models have none). For a result's parts, built from values
    that are already what the fields hold; tests hold each one equal to the validated model,
    fields set included.
    """
    instance = model.__new__(model)
    _set_attribute(instance, "__dict__", fields)
    _set_attribute(instance, "__pydantic_extra__", None)
    _set_attribute(instance, "__pydantic_fields_set__", fields_set)
    _set_attribute(instance, "__pydantic_private__", None)
    return instance


def updated(record: M, **fields: Any) -> M:
    """`record.model_copy(update=fields)`, about three times faster (see `made`): for values the fields hold."""
    return made(type(record), record.__dict__ | fields, record.__pydantic_fields_set__ | fields.keys())


def with_facts(template: Finding, facts: dict[str, Any]) -> Finding:
    """`template.model_copy(update={"facts": facts})`, about three times faster (see `made`)."""
    return updated(template, facts=facts)


@dataclass(frozen=True, slots=True)
class Role:
    """What one rule's finding (for one polarity) does in a result, worked out once and read for every patient."""

    template: Finding
    """The finding without the patient's facts (every patient's finding is a copy with its facts)."""
    order: int
    """The rule's place in the rulebook: findings are resolved in rulebook order."""
    procedures: tuple[str, ...]
    status: Status | None
    rank: int
    kind: str
    urgent: bool
    steps: tuple[Step, ...]
    criteria: frozenset[str]
    """The criteria it encodes, if it held (see `criteria_held`)."""
    sets_status_on: tuple[str, ...]
    """The procedures it sets a status on (its procedures, if it sets a status)."""
    caution_on: tuple[str, ...]
    declines: tuple[str, ...]


Placed = tuple[Role, Finding]
"""A finding of one patient with its rule's role."""


_OPTION_FIELDS = frozenset(OptionResult.model_fields)
"""The fields `build` sets on an option: every one."""

_RESULT_FIELDS = frozenset(Result.model_fields) - {"schema_", "profile_differences"}
"""The fields `build` sets on a result: every one but those left at their defaults."""


def _by_order(pair: Placed) -> int:
    return pair[0].order


class ResultBuilder:
    """Builds the results of one rulebook under one profile.

    What does not depend on the patient (a rule's finding without its facts, the fallback
    reasons, procedure names) is worked out once, on first use, and shared by every result
    it builds: findings are frozen, so sharing them is safe.
    """

    def __init__(self, rulebook: Rulebook, knowledge: Knowledge, profile: str, params: dict[str, int | float]) -> None:
        self.rulebook = rulebook
        self.knowledge = knowledge
        self.profile = profile
        self.params = params
        self._rules = {r.id: r for r in rulebook.rules}
        self._order = {r.id: i for i, r in enumerate(rulebook.rules)}
        self._fallbacks: dict[str, Finding] = {}
        self._roles: tuple[dict[str, Role], dict[str, Role]] = ({}, {})
        """Each rule's role, for a finding that it does not hold (index False) or holds (True), made on first use."""
        self._every_profile = [
            {pid: p.value(name) for pid, p in rulebook.parameters.items()} for name in rulebook.profiles
        ]
        self._conditions: dict[str, tuple[tuple[str, ...], list[dict[str, int | float]]]] = {}
        self._findings: Kept[tuple[Any, ...], Finding] = Kept()
        """Findings made for patients, by role and facts (see `_placed`)."""
        self._seen: Kept[int, tuple[Firing, Placed]] = Kept()
        """Each firing seen (by its id: the entry holds the firing) with its role and finding (see `_placed`)."""
        self._options: Kept[tuple[Any, ...], tuple[OptionResult, bool]] = Kept()
        """Options resolved for patients (and whether each is open), by procedure and the findings behind them."""
        self._names = {pid: p.name for pid, p in knowledge.procedures.items()}
        self._disputes = [(d, frozenset(d.procedures)) for d in knowledge.disagreements.values()]
        """Each dispute with the procedures it is about, in the knowledge's order (see `disputes`)."""
        self._ruled_out_by: Kept[tuple[Any, ...], bool] = Kept()
        """Whether a dispute's `when` rules it out, by dispute and the answers it reads (see `_ruled_out`)."""

    def disputes(self, procedures: set[str], cited: set[str], answer: Answer) -> list[str]:
        """The disputes that bear on this patient: about `procedures` and `cited` (`bears_on`), and not ruled
        out by the answers: a dispute's `when` false under every profile's parameters leaves it out (unknown
        keeps it in, since it may bear on them). Profiles differ on what a dispute is about, so any one counts.
        """
        out = []
        for d, about in self._disputes:
            if about.isdisjoint(procedures) or not bears_on(d, procedures, cited):
                continue
            if d.when is not None and self._ruled_out(d, answer):
                continue
            out.append(d.id)
        return out

    def _ruled_out(self, dispute: Disagreement, answer: Answer) -> bool:
        """Whether the dispute's `when` is false under every profile's parameters, for these answers (worked
        out once for the same answers, of the same types, to the facts it reads: kept, see `values_key`)."""
        facts, every_profile = self._condition(dispute)
        values = {fact: known(answer(fact)) for fact in facts}
        key = (dispute.id, *values_key(values.values()))
        found, keep = self._ruled_out_by.find(key)
        if found is None:
            when = dispute.when
            assert when is not None
            found = all(when.truth(values, params) is False for params in every_profile)
            if keep:
                self._ruled_out_by.keep(key, found)
        return found

    def _condition(self, dispute: Disagreement) -> tuple[tuple[str, ...], list[dict[str, int | float]]]:
        """The facts a dispute's `when` reads, and the profiles' values of the parameters it reads (each set once:
        profiles that agree on them give it the same truth)."""
        found = self._conditions.get(dispute.id)
        if found is None:
            assert dispute.when is not None
            atoms = dispute.when.atoms()
            read = sorted({a.param for a in atoms if a.param is not None})
            distinct = {tuple(params[p] for p in read): params for params in self._every_profile}
            facts = tuple(dict.fromkeys(a.fact for a in atoms if a.fact is not None))
            found = self._conditions[dispute.id] = (facts, list(distinct.values()))
        return found

    def finding(self, firing: Firing) -> Finding:
        """The evidence record for one firing (the same as `finding`, faster)."""
        return with_facts(self._role_for(firing.rule_id, firing.holds).template, dict(firing.facts))

    def _fallback(self, pid: str) -> Finding:
        if pid not in self._fallbacks:
            self._fallbacks[pid] = Finding(
                rule_id=FALLBACK_ID,
                rule_version=0,
                title="No rule opened this option",
                layer="option",
                kind="status",
                status=FALLBACK_STATUS,
                procedures=[pid],
                text=FALLBACK_TEXT,
            )
        return self._fallbacks[pid]

    def _role_for(self, rule_id: str, holds: bool) -> Role:
        """The role of a rule's finding for one polarity (the hot loops inline this lookup)."""
        return self._roles[holds].get(rule_id) or self._role(rule_id, holds)

    def _role(self, rule_id: str, holds: bool) -> Role:
        rule = self._rules[rule_id]
        template = finding(rule, Firing(rule_id, holds), self.params, self.rulebook, self.knowledge)
        status = Status(template.status) if template.status is not None else None
        procedures = tuple(dict.fromkeys(template.procedures))  # a procedure named twice is one reason, not two
        role = Role(
            template,
            self._order[rule_id],
            procedures,
            status,
            status.rank if status is not None else -1,
            template.kind,
            template.urgent_assessment,
            tuple(template.steps),
            frozenset(template.criteria) if template.holds else frozenset(),
            procedures if status is not None else (),
            procedures if template.kind == "caution" else (),
            procedures if template.kind == "declined" else (),
        )
        self._roles[holds][rule_id] = role
        return role

    def _placed(self, firings: list[Firing], with_patient_facts: bool) -> list[Placed]:
        """Each firing's role with its finding (the template alone when the facts are not wanted), in firing order.

        A rule's finding with the same facts is the same frozen record for every patient: the last
        RECORDS_KEPT of them are kept and shared, not made again (most rules read a few yes/no answers).
        The engine shares its firings the same way (see `DurableEngine`), so a firing seen before is
        found by itself, without reading its facts.
        """
        roles, role = self._roles, self._role
        if not with_patient_facts:
            out = []
            for firing in firings:
                r = roles[firing.holds].get(firing.rule_id) or role(firing.rule_id, firing.holds)
                out.append((r, r.template))
            return out
        seen, kept = self._seen, self._findings
        out = []
        for firing in firings:
            entry = seen.get(id(firing))
            if entry is not None and entry[0] is firing:
                out.append(entry[1])
                continue
            r = roles[firing.holds].get(firing.rule_id) or role(firing.rule_id, firing.holds)
            facts = firing.facts
            key = (id(r), *facts, *values_key(facts.values()))
            found, keep = kept.find(key)
            if found is None:
                found = with_facts(r.template, dict(facts))
                if keep:
                    kept.keep(key, found)
            pair = (r, found)
            if keep:
                seen.keep(id(firing), (firing, pair))  # it holds the firing: its id stays its own
            out.append(pair)
        return out

    def _resolve(self, placed: list[Placed], answer: Answer) -> Resolution:
        """One status per procedure (the most restrictive wins), with the findings behind each."""
        in_order = sorted(placed, key=_by_order)
        setting: dict[str, list[Finding]] = {}
        cautions: dict[str, list[Finding]] = {}
        declined: dict[str, Finding] = {}
        urgent: list[Finding] = []
        derived: list[Finding] = []
        cited: set[str] = set()
        for r, f in in_order:
            kind = r.kind  # a rule does one thing: derives, sets a status, cautions, declines, or is urgent
            if kind == "derived":
                derived.append(f)
            elif kind == "status":
                for pid in r.sets_status_on:
                    if pid in setting:
                        setting[pid].append(f)
                    else:
                        setting[pid] = [f]
            elif kind == "caution":
                for pid in r.caution_on:
                    if pid in cautions:
                        cautions[pid].append(f)
                    else:
                        cautions[pid] = [f]
            elif kind == "declined":
                for pid in r.declines:
                    declined.setdefault(pid, f)
            if r.urgent:
                urgent.append(f)
            if r.criteria:
                cited |= r.criteria
        options = []
        open_procedures = set()
        kept = self._options
        for pid in PROCEDURE_IDS:
            found = setting.get(pid)
            mine_cautions = cautions.get(pid)
            mine_declined = declined.get(pid)
            # the same findings (kept ones are the same records) come to the same option: kept and shared;
            # the key is flat (no id is 0, so the zeros part the reasons, cautions and declined unambiguously)
            key = (pid, *map(id, found or ()), 0, *map(id, mine_cautions or ()), 0, id(mine_declined))
            entry = kept.get(key)
            if entry is not None:
                options.append(entry[0])
                if entry[1]:
                    open_procedures.add(pid)
                continue
            steps: dict[str, Step] = {}
            if found is None:
                status, reasons = FALLBACK_STATUS, [self._fallback(pid)]
            else:  # the reasons for the status it comes to first, then the others, most restrictive first
                mine = [(self._role_for(f.rule_id, f.holds), f) for f in found]
                status = status_model.resolve([r.status for r, _ in mine if r.status is not None]) or FALLBACK_STATUS
                chosen = status
                ranked = sorted(mine, key=lambda pair: (pair[0].status != chosen, -pair[0].rank)) if mine[1:] else mine
                reasons = [f for _, f in ranked]
                if status in (Status.AFTER_PREREQUISITE, Status.DEFERRED):
                    for r, _ in ranked:  # a deferred option shows what settles the safety issue, not later steps
                        for step in r.steps if r.status == status else ():
                            steps.setdefault(step.id, step)
            if status.is_open:
                open_procedures.add(pid)
            option = made(
                OptionResult,
                {
                    "procedure": pid,
                    "name": self._names[pid],
                    "status": status,
                    "reasons": reasons,
                    "cautions": mine_cautions or [],
                    "next_steps": list(steps.values()),
                    "declined": mine_declined,
                },
                set(_OPTION_FIELDS),
            )
            kept.keep(key, (option, status.is_open))  # it holds the findings of its key: their ids stay theirs
            options.append(option)
        disagreements = self.disputes(open_procedures, cited, answer)
        return Resolution([f for _, f in placed], options, urgent, derived, disagreements)

    def build(self, firings: list[Firing], engine: str, answer: Answer) -> Result:
        """The result of one patient's firings, made by `engine` (its name and version); `answer` reads answers."""
        found = self._resolve(self._placed(firings, True), answer)
        fields = {
            "schema_": SCHEMA,
            "rulebook_version": self.rulebook.version,
            "engine": engine,
            "profile": self.profile,
            "urgent_assessment": bool(found.urgent),
            "urgent_reasons": found.urgent,
            "options": found.options,
            "derived": found.derived,
            "trace": found.trace,
            "profile_differences": [],
            "disagreements": found.disagreements,
        }
        return made(Result, fields, set(_RESULT_FIELDS))

    def outcomes(self, firings: list[Firing]) -> tuple[Outcomes, set[str]]:
        """Each procedure's status and the ids of the rules that set a status on it, as `build` resolves them,
        and the criteria held (`criteria_held` of the findings).

        For comparing profiles: no evidence record is built (what each rule does is worked out once, `Role`).
        """
        held: set[str] = set()
        for firing in firings:
            held |= self._role_for(firing.rule_id, firing.holds).criteria
        setting = self._setting_status(firings)
        return {pid: self._outcome(setting.get(pid, ())) for pid in PROCEDURE_IDS}, held

    def changed_outcomes(self, options: list[OptionResult], mine: list[Firing], theirs: list[Firing]) -> Outcomes:
        """Another profile's `outcomes`, on the procedures where they can differ from `options` (a result's),
        when its firings are the result's but for `mine` (the result's own) and `theirs` (the other's own).

        A procedure's status and reasons are those of the rules that set a status on it (a rule's role is
        its own, whatever the profile): where the two sets of own firings set none differently, the other
        profile's rules are the result's, and so is its outcome. Most profiles differ from the chosen one on
        no procedure, or on one.
        """
        lost, gained = self._setting_status(mine), self._setting_status(theirs)
        out: Outcomes = {}
        if lost == gained:  # (most often both empty)
            return out
        for option in options:
            pid = option.procedure
            minus, plus = lost.get(pid), gained.get(pid)
            if minus != plus:
                kept = {(f.rule_id, f.holds) for f in option.reasons if f.rule_id != FALLBACK_ID}
                out[pid] = self._outcome((kept - (minus or set())) | (plus or set()))
        return out

    def _setting_status(self, firings: list[Firing]) -> dict[str, set[tuple[str, bool]]]:
        """The rules (with their polarity) that set a status on each procedure, of these firings."""
        roles, role = self._roles, self._role
        setting: dict[str, set[tuple[str, bool]]] = {}
        for firing in firings:
            r = roles[firing.holds].get(firing.rule_id) or role(firing.rule_id, firing.holds)
            for pid in r.sets_status_on:
                if pid in setting:
                    setting[pid].add(firing.key)
                else:
                    setting[pid] = {firing.key}
        return setting

    def _outcome(self, setting: Iterable[tuple[str, bool]]) -> tuple[Status, frozenset[str]]:
        """A procedure's status and the ids of the rules that set it, from the rules that set a status on it."""
        statuses: list[Status] = []
        ids = set()
        for rule_id, holds in setting:
            status = self._role_for(rule_id, holds).status
            assert status is not None, "a rule that sets a status has one"
            statuses.append(status)
            ids.add(rule_id)
        resolved = status_model.resolve(statuses)
        return (FALLBACK_STATUS, FALLBACK_SET) if resolved is None else (resolved, frozenset(ids))

    def summarize(self, firings: list[Firing], engine: str, answer: Answer) -> dict[str, Any]:
        """`summary(self.build(firings, engine, answer))`, without building the evidence records (much faster)."""
        found = self._resolve(self._placed(firings, False), answer)
        return _summary(self.rulebook.version, engine, self.profile, found, [])


@dataclass(frozen=True)
class Resolution:
    """What one patient's findings come to: the fields of a `Result`, before it is built."""

    trace: list[Finding]
    options: list[OptionResult]
    urgent: list[Finding]
    derived: list[Finding]
    disagreements: list[str]


def summary(result: Result) -> dict[str, Any]:
    """The compact form of a result (schema `pain-sdm/result-summary/1`), as a batch run writes it.

    Rules are named by id; the evidence (texts, facts, parameters, sources) is in the full result.
    """
    found = Resolution(result.trace, result.options, result.urgent_reasons, result.derived, result.disagreements)
    return _summary(result.rulebook_version, result.engine, result.profile, found, result.profile_differences)


def _summary(
    version: str, engine: str, profile: str, found: Resolution, differences: list[ProfileDifference]
) -> dict[str, Any]:
    def ids(findings: list[Finding]) -> list[str]:
        return [f.rule_id for f in findings]

    return {
        "schema": SUMMARY_SCHEMA,
        "rulebook_version": version,
        "engine": engine,
        "profile": profile,
        "urgent_assessment": bool(found.urgent),
        "urgent_reasons": ids(found.urgent),
        "options": {
            o.procedure: {
                "status": o.status,
                "reasons": ids(o.reasons),
                "cautions": ids(o.cautions),
                "next_steps": [s.id for s in o.next_steps],
                "declined": o.declined.rule_id if o.declined else None,
            }
            for o in found.options
        },
        "derived": {f.derived: f.holds for f in found.derived},
        "trace": ids(found.trace),
        "profile_differences": [
            {"procedure": d.procedure, "profile": d.profile, "status": d.status} for d in differences
        ],
        "disagreements": list(found.disagreements),
    }
