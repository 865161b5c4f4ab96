"""The rulebook: rule files, named parameters and guideline profiles, loaded and cross-checked.

Rules live in rules/*.yaml (one layer per file), parameters in rules/parameters.yaml
and profiles in rules/profiles.yaml. Loading checks every reference: each atom names a
known fact, uses an operator that fits the fact's type and a value the question allows;
each parameter, source and criterion exists. A rule that could not be evaluated fails
here, at load, never as a silent false at run time.
"""

import datetime as dt
import hashlib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from engine.errors import Problem, RulebookError, UsageError
from engine.model import invariants as invariant_model
from engine.model.conditions import Condition
from engine.model.facts import engine_key_problems
from engine.model.invariants import Invariant, InvariantFile, Requirement
from engine.model.knowledge import Knowledge, ProcedureId, Strict
from engine.model.loading import load_file, read_bounded, validate
from engine.model.questionnaire import Questionnaire, atom_problems
from engine.model.status import StatusField

Layer = Literal["derived", "option", "prerequisite", "safety", "preference"]
LAYERS: tuple[Layer, ...] = get_args(Layer)


class Step(Strict):
    """A next step that opens an option, e.g. a diagnostic block or a stimulation trial."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["diagnostic_mbb"])
    text: str = Field(examples=["A test injection (medial branch block) to confirm where the pain comes from"])


class Then(Strict):
    """What a rule concludes when its condition is true."""

    derive: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$", examples=["chronic_pain"])
    status: StatusField | None = None
    procedures: list[ProcedureId] = []
    steps: list[Step] = []
    caution: str | None = None
    urgent_assessment: bool = False
    declined: bool = False

    @model_validator(mode="after")
    def _shape(self) -> Self:
        kinds = [
            k
            for k, on in (
                ("derive", self.derive is not None),
                ("status", self.status is not None),
                ("caution", self.caution is not None),
                ("declined", self.declined),
            )
            if on
        ]
        if len(kinds) != 1 and not (self.urgent_assessment and not kinds):
            raise ValueError("`then` needs exactly one of `derive`, `status`, `caution` or `declined: true`")
        if kinds and kinds[0] != "derive" and not self.procedures:
            raise ValueError(f"a `{kinds[0]}` conclusion needs `procedures`, e.g. [epidural_steroid_injection]")
        if self.derive is not None and (self.procedures or self.steps or self.urgent_assessment):
            raise ValueError("a `derive` conclusion takes no procedures, steps or urgent flag")
        if self.steps and self.status not in ("after_prerequisite", "deferred"):
            raise ValueError("`steps` belong only to `status: after_prerequisite` or `deferred` (what settles it)")
        if self.status == "after_prerequisite" and not self.steps:
            raise ValueError("`status: after_prerequisite` needs the `steps` that would open the option")
        return self

    @property
    def kind(self) -> Literal["derived", "status", "caution", "declined", "urgent"]:
        if self.derive is not None:
            return "derived"
        if self.status is not None:
            return "status"
        if self.caution is not None:
            return "caution"
        if self.declined:
            return "declined"
        return "urgent"


class Rule(Strict):
    """One reviewed rule. The `explanation` is shown to patients; `purpose` to reviewers."""

    id: str = Field(pattern=r"^[A-Z]{2,5}-[A-Z0-9-]+$", examples=["ESI-CAND-01"])
    title: str
    version: int = Field(ge=1, examples=[1])
    status: Literal["draft", "active", "retired"]
    purpose: str
    explanation: str
    when: Condition
    then: Then
    sources: list[str] = []
    criteria: list[str] = []
    profiles: list[str] = Field(default=[], description="the profiles this rule applies in; empty means all")
    last_reviewed: dt.date = Field(examples=["2026-11-24"])
    aliases: list[str] = []
    layer: Layer = "option"

    @property
    def active(self) -> bool:
        return self.status == "active"


PARAMETERS = "rules/parameters.yaml"
SEED_SOURCE = "seed-article"
"""The seed article: the procedure files cite it for what they take from it; rules and parameters may not."""
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
"""`{parameter_id}` in an explanation or caution: the parameter's value in the chosen profile."""


def fill_parameters(text: str, params: dict[str, int | float]) -> str:
    """Patient text with each `{parameter_id}` replaced by its value, so a stated threshold is the one applied."""
    return PLACEHOLDER.sub(lambda m: f"{params[m.group(1)]:g}", text)


class RuleFile(Strict):
    layer: Layer
    description: str = ""
    rules: list[dict[str, Any]]
    requirements: list[Requirement] = Field(
        default=[], description="prerequisite layer only: what each option needs before it can be a candidate"
    )


def finite_number(value: object) -> int | float:
    """A threshold as written: an int or float, never a boolean, text, NaN or an infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number", "expected a number")
    if not math.isfinite(value):
        raise PydanticCustomError("number", "expected a finite number (NaN and infinities cannot be thresholds)")
    return value


Threshold = Annotated[int | float, PlainValidator(finite_number)]


class Parameter(Strict):
    """A named threshold, with its value in each profile and where it comes from."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["rfa_block_relief_percent"])
    description: str
    unit: str
    default: Threshold = Field(examples=[3])
    profiles: dict[str, Threshold] = {}
    sources: list[str] = Field(min_length=1)
    criteria: list[str] = []
    confidence: Literal["confirmed", "unconfirmed"] = "confirmed"
    note: str = ""

    def value(self, profile: str) -> int | float:
        return self.profiles.get(profile, self.default)


class ParameterFile(Strict):
    parameters: list[Parameter]


class Profile(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$", examples=["us-medicare"])
    name: str
    description: str
    sources: list[str] = []


class ProfileFile(Strict):
    default: str
    profiles: list[Profile] = Field(min_length=1)


class Rulebook(BaseModel):
    """All rules (every status), parameters and profiles, with the content hash of the data."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    rules: list[Rule]
    parameters: dict[str, Parameter]
    profiles: dict[str, Profile]
    default_profile: str
    derived_facts: dict[str, str]
    version: str
    invariants: list[Invariant] = Field(description="the safety invariants of rules/invariants.yaml")
    requirements: dict[str, Requirement] = Field(
        description="procedure -> its prerequisites, from the prerequisite layer's `requirements`"
    )

    def active_rules(self, profile: str) -> list[Rule]:
        return [r for r in self.rules if r.active and (not r.profiles or profile in r.profiles)]

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id or rule_id in r.aliases:
                return r
        raise UsageError(f"no rule with id `{rule_id}`; see `pain-sdm rules list`")

    def derived_read(self, rules: list[Rule]) -> list[str]:
        """Derived facts the rules read, directly or down the chains that derive them, in reading order."""
        seen: dict[str, None] = {}
        todo = [a.fact for r in rules for a in r.when.atoms() if a.fact in self.derived_facts]
        while todo:
            fact = todo.pop(0)
            if fact is None or fact in seen:
                continue
            seen[fact] = None
            deriving = self.rule(self.derived_facts[fact])
            todo += [a.fact for a in deriving.when.atoms() if a.fact in self.derived_facts]
        return list(seen)

    def invariant(self, invariant_id: str) -> Invariant | None:
        return next((i for i in self.invariants if i.id == invariant_id), None)

    def check_profile(self, profile: str | None) -> str:
        chosen = profile or self.default_profile
        if chosen not in self.profiles:
            raise UsageError(f"unknown profile `{chosen}`; choose one of: {', '.join(self.profiles)}")
        return chosen


def content_hash(roots: dict[str, Path]) -> str:
    """A short, stable hash over every YAML file's relative name and bytes: the rulebook version."""
    digest = hashlib.sha256()
    for kind, root in sorted(roots.items()):
        for path in sorted(root.rglob("*.yaml")):
            digest.update(f"{kind}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(read_bounded(path, RulebookError))  # never a FIFO, device or folder, never unbounded
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def _check_atom(
    atom: Condition,
    where: tuple[str, str],
    questionnaire: Questionnaire,
    derived: dict[str, str],
    parameters: dict[str, Parameter],
    problems: list[Problem],
    field: str = "when",
) -> None:
    file, entry = where
    for message, code in atom_problems(atom, questionnaire.questions, derived, parameters):
        problems.append(Problem(file, entry, f"{field}: {atom.fact}", message, code))


def load_rulebook(rules_dir: Path, knowledge: Knowledge, questionnaire: Questionnaire, knowledge_dir: Path) -> Rulebook:
    """Load every rule file, parameter and profile, and check every reference."""
    problems: list[Problem] = []
    profile_path, param_path = rules_dir / "profiles.yaml", rules_dir / "parameters.yaml"
    profile_file = load_file(ProfileFile, profile_path, RulebookError, kind="profile")
    profiles = {p.id: p for p in profile_file.profiles}
    if profile_file.default not in profiles:
        problems.append(
            Problem(
                str(profile_path),
                "",
                "default",
                f"`{profile_file.default}` is not a listed profile",
                "unknown-reference",
            )
        )
    parameters: dict[str, Parameter] = {}
    for param in load_file(ParameterFile, param_path, RulebookError, kind="parameter").parameters:
        entry = f"parameter {param.id}"
        if param.id in parameters:
            problems.append(Problem(str(param_path), entry, "id", "this parameter id is used twice", "duplicate-id"))
        parameters[param.id] = param
        for name in param.profiles:
            if name not in profiles:
                problems.append(
                    Problem(str(param_path), entry, "profiles", f"unknown profile `{name}`", "unknown-reference")
                )
        _check_refs(param.sources, param.criteria, knowledge, str(param_path), entry, problems)

    rules: list[Rule] = []
    file_of: dict[str, str] = {}
    not_rules = ("profiles.yaml", "parameters.yaml", "accepted-findings.yaml", invariant_model.FILE_NAME)
    rule_files = sorted(p for p in rules_dir.glob("*.yaml") if p.name not in not_rules)
    requirements: list[tuple[str, Requirement, RuleFile]] = []
    for path in rule_files:
        rule_file = load_file(RuleFile, path, RulebookError)
        requirements += [(str(path), r, rule_file) for r in rule_file.requirements]
        if rule_file.requirements and rule_file.layer != "prerequisite":
            problems.append(Problem(str(path), "", "requirements", "requirements belong in the prerequisite layer"))
        for index, raw in enumerate(rule_file.rules):
            label = f"rule {raw.get('id', f'#{index + 1}')}"
            try:
                rule = validate(Rule, {**raw, "layer": rule_file.layer}, str(path), RulebookError, kind="rule")
            except RulebookError as exc:
                problems.extend(Problem(p.file, p.entry or label, p.field, p.message, p.code) for p in exc.problems)
                continue
            rules.append(rule)
            file_of.setdefault(rule.id, str(path))
    if problems:
        raise RulebookError(problems)
    derived: dict[str, str] = {}
    seen: dict[str, Rule] = {}
    for rule in rules:
        file, entry = file_of.get(rule.id, str(rules_dir)), f"rule {rule.id}"
        if rule.id in seen:
            problems.append(Problem(file, entry, "id", "this rule id is used twice", "duplicate-id"))
        seen[rule.id] = rule
        if rule.then.derive is not None and rule.status != "retired":
            if rule.then.derive in derived:
                problems.append(
                    Problem(
                        file,
                        entry,
                        "then.derive",
                        f"`{rule.then.derive}` is already derived by {derived[rule.then.derive]}; "
                        "define each derived fact in one rule (use `any` for alternatives)",
                        "duplicate-id",
                    )
                )
            if rule.layer != "derived":
                problems.append(Problem(file, entry, "then.derive", "derived facts belong in a `layer: derived` file"))
            derived[rule.then.derive] = rule.id
        if rule.then.derive is None and rule.layer == "derived":
            problems.append(Problem(file, entry, "then", "rules in a derived-layer file must `derive` a fact"))
        if rule.then.derive in questionnaire.questions:
            problems.append(Problem(file, entry, "then.derive", "a derived fact cannot reuse a question id"))
        for name in rule.profiles:
            if name not in profiles:
                problems.append(
                    Problem(
                        file,
                        entry,
                        "profiles",
                        f"unknown profile `{name}`; profiles are {list(profiles)}",
                        "unknown-reference",
                    )
                )
        if rule.active and not rule.sources:
            problems.append(
                Problem(file, entry, "sources", "an active rule needs at least one source id", "missing-source")
            )
        _check_refs(rule.sources, rule.criteria, knowledge, file, entry, problems)
        for field_name, text in (("explanation", rule.explanation), ("then.caution", rule.then.caution or "")):
            for name in PLACEHOLDER.findall(text):
                if name not in parameters:
                    problems.append(
                        Problem(file, entry, field_name, f"`{{{name}}}` names no parameter; define it in {PARAMETERS}")
                    )
    for rule in rules:
        file, entry = file_of.get(rule.id, str(rules_dir)), f"rule {rule.id}"
        for atom in rule.when.atoms():
            _check_atom(atom, (file, entry), questionnaire, derived, parameters, problems)
    problems += engine_key_problems(questionnaire, str(knowledge_dir / "questionnaire.yaml"))
    _check_parameter_ranges(rules, questionnaire, parameters, list(profiles), str(param_path), problems)
    _check_cycles(rules, derived, file_of, problems)
    checked = _Checker(questionnaire, derived, parameters, knowledge, problems)
    required = checked.requirements(requirements)
    invariants = checked.invariants(rules_dir / invariant_model.FILE_NAME, required)
    for dispute in knowledge.disagreements.values():
        if dispute.when is not None:
            where = str(knowledge_dir / "disagreements.yaml")
            checked.condition(dispute.when, where, f"disagreement {dispute.id}", "when")
    if problems:
        raise RulebookError(problems)
    version = content_hash({"rules": rules_dir, "knowledge": knowledge_dir})
    return Rulebook(
        rules=rules,
        parameters=parameters,
        profiles=profiles,
        default_profile=profile_file.default,
        derived_facts=derived,
        version=version,
        invariants=invariants,
        requirements=required,
    )


class _Checker:
    """Checks the conditions of requirements, invariants and disputes as rule atoms are checked, over answers only."""

    def __init__(
        self,
        questionnaire: Questionnaire,
        derived: dict[str, str],
        parameters: dict[str, Parameter],
        knowledge: Knowledge,
        problems: list[Problem],
    ) -> None:
        self.questionnaire, self.derived, self.parameters = questionnaire, derived, parameters
        self.knowledge, self.problems = knowledge, problems

    def condition(self, condition: Condition, file: str, entry: str, field: str) -> None:
        for atom in condition.atoms():
            if atom.fact in self.derived:
                message = (
                    "reads a derived fact; invariants, requirements and disputes read answers only, so each is exact"
                )
                self.problems.append(Problem(file, entry, f"{field}: {atom.fact}", message))
                continue
            _check_atom(atom, (file, entry), self.questionnaire, {}, self.parameters, self.problems, field)

    def requirements(self, found: list[tuple[str, Requirement, RuleFile]]) -> dict[str, Requirement]:
        """Each procedure's requirement, checked: its atoms, and that this file's rules name its steps."""
        out: dict[str, Requirement] = {}
        for file, req, rule_file in found:
            entry = f"requirement {req.procedure}"
            if req.procedure in out:
                self.problems.append(
                    Problem(file, entry, "procedure", "this procedure has a requirement already", "duplicate-id")
                )
            out[req.procedure] = req
            self.condition(req.met, file, entry, "met")
            named: set[str] = {
                str(step.get("id"))
                for raw in rule_file.rules
                if req.procedure in raw.get("then", {}).get("procedures", [])
                for step in raw.get("then", {}).get("steps", [])
                if isinstance(step, dict)
            }
            for step in req.steps:
                if step not in named:
                    message = (
                        f"no rule of this file names step `{step}` for {req.procedure}; steps named: {sorted(named)}"
                    )
                    self.problems.append(Problem(file, entry, "steps", message, "unknown-reference"))
            _check_refs([], req.criteria, self.knowledge, file, entry, self.problems)
        return out

    def invariants(self, path: Path, required: dict[str, Requirement]) -> list[Invariant]:
        """The safety invariants of rules/invariants.yaml, each condition checked as a rule's."""
        if not path.is_file():
            message = "the safety invariants file is missing; `rules verify` proves what it lists"
            self.problems.append(Problem(str(path), "", "", message))
            return []
        loaded = load_file(InvariantFile, path, RulebookError, kind="invariant").invariants
        seen: set[str] = set()
        for inv in loaded:
            file, entry = str(path), f"invariant {inv.id}"
            if inv.id in seen:
                self.problems.append(Problem(file, entry, "id", "this invariant id is used twice", "duplicate-id"))
            seen.add(inv.id)
            if inv.when is not None:
                self.condition(inv.when, file, entry, "when")
            if inv.prerequisites == "unmet":
                for pid in inv.selected(self.knowledge):
                    if pid not in required:
                        message = (
                            f"{pid} has no requirement; add one under `requirements:` in the prerequisite "
                            "layer's file (rules/30-prerequisites.yaml)"
                        )
                        self.problems.append(Problem(file, entry, "procedures", message, "unknown-reference"))
            if not inv.selected(self.knowledge):
                self.problems.append(Problem(file, entry, "procedures", "selects no procedure"))
            _check_refs([], inv.criteria, self.knowledge, file, entry, self.problems)
        return loaded


def _check_refs(
    sources: list[str], criteria: list[str], knowledge: Knowledge, file: str, entry: str, problems: list[Problem]
) -> None:
    for src in sources:
        if src == SEED_SOURCE:
            problems.append(
                Problem(
                    file,
                    entry,
                    "sources",
                    f"`{SEED_SOURCE}` is the text the knowledge base starts from, not a publication a reviewer can "
                    "check a rule against: cite the primary publication instead (knowledge/sources/guidelines.yaml)",
                    "unknown-reference",
                )
            )
        elif src not in knowledge.sources:
            problems.append(
                Problem(
                    file,
                    entry,
                    "sources",
                    f"unknown source `{src}`; add it under knowledge/sources/",
                    "unknown-reference",
                )
            )
    for cid in criteria:
        if cid not in knowledge.criteria:
            problems.append(
                Problem(
                    file,
                    entry,
                    "criteria",
                    f"unknown criterion `{cid}`; see knowledge/criteria.yaml",
                    "unknown-reference",
                )
            )


def _check_parameter_ranges(
    rules: list[Rule],
    questionnaire: Questionnaire,
    parameters: dict[str, Parameter],
    profiles: list[str],
    file: str,
    problems: list[Problem],
) -> None:
    """Each parameter's value, in every profile a rule reads it in, lies in the range of the answer it is compared with.

    A literal value is checked the same way (`atom_problems`); a value outside the range could
    never be met or always is, and one the engine cannot read never reaches it.
    """
    found: set[tuple[str, str]] = set()
    for rule in rules:
        for atom in rule.when.atoms():
            question = questionnaire.questions.get(atom.fact or "")
            param = parameters.get(atom.param or "")
            if question is None or param is None or question.min is None or question.max is None:
                continue
            for profile in rule.profiles or profiles:
                value = param.value(profile)
                field = f"profiles.{profile}" if profile in param.profiles else "default"
                if question.min <= value <= question.max or (param.id, field) in found:
                    continue
                found.add((param.id, field))
                message = (
                    f"{value} is outside the range {question.min}-{question.max} {question.unit} of "
                    f"`{atom.fact}`, which rule {rule.id} compares it with; give a value from "
                    f"{question.min} to {question.max}"
                )
                problems.append(Problem(file, f"parameter {param.id}", field, message, "schema"))


class DerivedCycle(ValueError):
    """Derived facts that depend on each other in a cycle: `trail` names the rules, the first again at the end."""

    def __init__(self, trail: list[str]) -> None:
        super().__init__(" -> ".join(trail))
        self.trail = trail


def derived_depth(rules: list[Rule], derived: dict[str, str]) -> dict[str, int]:
    """Stratum of each rule: 1 + the deepest derived fact it reads (0 for answers only).

    A depth-first walk with its own stack, never Python's: a chain of any length is measured,
    and a cycle raises `DerivedCycle` naming its rules.
    """
    reads = {r.id: [derived[a.fact] for a in r.when.atoms() if a.fact in derived] for r in rules}
    depth: dict[str, int] = {}
    for root in reads:
        if root in depth:
            continue
        path, on_path, pending = [root], {root}, [iter(reads[root])]
        while pending:
            child = next(pending[-1], None)
            if child is None:
                done = path.pop()
                on_path.discard(done)
                pending.pop()
                depth[done] = 1 + max((depth[c] for c in reads[done]), default=-1)
            elif child in on_path:
                raise DerivedCycle([*path[path.index(child) :], child])
            elif child not in depth:
                path.append(child)
                on_path.add(child)
                pending.append(iter(reads[child]))
    return depth


def _check_cycles(rules: list[Rule], derived: dict[str, str], file_of: dict[str, str], problems: list[Problem]) -> None:
    live = [r for r in rules if r.status != "retired"]
    try:
        derived_depth(live, derived)
    except DerivedCycle as exc:
        first, trail = exc.trail[0], exc.trail
        shown = trail if len(trail) <= 12 else [*trail[:5], "...", *trail[-5:]]
        problems.append(
            Problem(
                file_of.get(first, ""),
                f"rule {first}",
                "when",
                f"derived facts depend on each other in a cycle of {len(trail) - 1} rules: {' -> '.join(shown)}",
                "derived-cycle",
            )
        )
