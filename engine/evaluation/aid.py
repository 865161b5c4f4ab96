"""The decision aid: loads knowledge, questionnaire and rulebook once, and evaluates patients.

This is the library's front door. The CLI, the interview, the summary and the batch
runner all call it; none of them touches durable_rules or the rule files directly.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine import memory
from engine.errors import AnswersError, Problem
from engine.evaluation.compiler import CompiledRuleset, compile_joint, compile_rulebook, profile_parameters
from engine.evaluation.engines import PerThread, RuleEngine, chosen_engine, engine_label, make_engine
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.inference import Patient, PatientEncoder
from engine.evaluation.result import (
    FALLBACK_ID,
    Outcomes,
    ProfileDifference,
    Result,
    ResultBuilder,
    summary,
    updated,
)
from engine.model import parse_cache, snapshot
from engine.model.knowledge import Knowledge, load_knowledge
from engine.model.loading import read_data, validate
from engine.model.migration import migrate
from engine.model.questionnaire import Questionnaire, load_questionnaire
from engine.model.rulebook import Rulebook, content_hash, load_rulebook
from engine.model.values import Value, load_values
from engine.paths import data_dir


class DecisionAid:
    """Knowledge, questionnaire and rulebook, with one rule engine per profile and thread (built on first use).

    One `DecisionAid` may be used from several threads at once: each thread evaluates on its own
    engines (see `engine.evaluation.engines`), and everything else it holds is read-only.
    """

    def __init__(
        self,
        knowledge: Knowledge,
        questionnaire: Questionnaire,
        rulebook: Rulebook,
        values: dict[str, Value],
        engine: str | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.questionnaire = questionnaire
        self.rulebook = rulebook
        self.values = values
        self.engine_choice = chosen_engine(engine)
        self.engine_name = engine_label(self.engine_choice)
        """The engine every result of this aid names: durable_rules where it loads (see engines.py)."""
        self._compiled: dict[str, CompiledRuleset] = {}
        self._engines = PerThread(lambda p: make_engine(self.engine_choice, self.compiled(p), self.questionnaire))
        self._joint: CompiledRuleset | None = None
        self._joint_engines = PerThread(lambda _: make_engine(self.engine_choice, self.joint(), self.questionnaire))
        self._builders: dict[str, ResultBuilder] = {}
        self._evaluators: dict[str, Evaluator] = {}
        self._lock = threading.Lock()  # threads that ask at once compile a profile once
        self._encoder: PatientEncoder | None = None
        self._behind: dict[str, frozenset[str]] = {}  # each rule's `_parameters_behind`, worked out on first use

    @classmethod
    def load(
        cls, rules_dir: Path | None = None, knowledge_dir: Path | None = None, engine: str | None = None
    ) -> DecisionAid:
        """Load and validate every data file; raises a `DataFileError` naming each problem.

        `engine` is auto, durable_rules or python (default: `PAIN_SDM_ENGINE`, else auto).
        """
        try:
            kdir = data_dir("knowledge", knowledge_dir)
            rdir = data_dir("rules", rules_dir)
            folders = {"rules": rdir, "knowledge": kdir}
            version = content_hash(folders)
            key = snapshot.snapshot_key(version, folders)
            with memory.building():
                kept = snapshot.read_snapshot(version, key)
                if kept is not None:
                    knowledge, questionnaire, rulebook, values = kept
                else:
                    with parse_cache.using(version):
                        knowledge = load_knowledge(kdir)
                        questionnaire = load_questionnaire(
                            kdir / "questionnaire.yaml", knowledge.conditions, knowledge.treatments
                        )
                        rulebook = load_rulebook(rdir, knowledge, questionnaire, kdir)
                        values = load_values(kdir / "values.yaml", questionnaire)
                    snapshot.write_snapshot(version, key, (knowledge, questionnaire, rulebook, values))
        finally:
            memory.start_up_done()
        return cls(knowledge, questionnaire, rulebook, values, engine)

    @property
    def answers_model(self) -> type[BaseModel]:
        return self.questionnaire.answers_model

    def parse_answers(self, data: Any, name: str = "answers", notes: list[str] | None = None) -> BaseModel:
        """Validate raw answers (or a FHIR QuestionnaireResponse) strictly; each problem is listed by its field path.

        Answers in an older answers schema are migrated first (engine.model.migration); what was
        mapped is appended to `notes` when given.
        """
        if not isinstance(data, dict):
            raise AnswersError(f"{name}: expected a mapping of question ids to answers, got {type(data).__name__}")
        if "resourceType" not in data:
            migration = migrate(data, name)
            if notes is not None:
                notes.extend(migration.notes)
            data = migration.answers
        else:  # FHIR: a QuestionnaireResponse, mapped strictly (engine/fhir/response.py)
            # It answers today's Questionnaire (generated from today's questionnaire.yaml), so the
            # answers it maps to are in today's answers schema: nothing in them needs migrating.
            from engine.fhir.response import answers_from_response

            data = answers_from_response(self.questionnaire, data, name)
        return validate(self.answers_model, data, name, AnswersError, entry_key="\0")

    def unwrap_answers(self, data: Any, name: str) -> Any:
        """The answers of a file that wraps them in `answers:` (a saved session, a record), else the file itself.

        A question id beside the `answers:` mapping would be dropped without a word (a red flag
        among them), so such a file is refused, naming those answers.
        """
        if not (isinstance(data, dict) and isinstance(data.get("answers"), dict)):
            return data
        stray = [key for key in data if key in self.questionnaire.questions]
        if stray:
            raise AnswersError(
                Problem(
                    name,
                    "",
                    ", ".join(stray),
                    "answers are given both at the top level and under `answers:`; the top-level ones "
                    f"({', '.join(stray)}) would be ignored. Put every answer under `answers:`, or none",
                )
            )
        return data["answers"]

    def read_answers(self, path: Path, notes: list[str] | None = None) -> BaseModel:
        return self.parse_answers(self.unwrap_answers(read_data(path, AnswersError), str(path)), str(path), notes)

    def compiled(self, profile: str) -> CompiledRuleset:
        if profile not in self._compiled:
            with self._lock:
                if profile not in self._compiled:
                    with memory.building():
                        self._compiled[profile] = compile_rulebook(self.rulebook, profile, self.questionnaire)
        return self._compiled[profile]

    def joint(self) -> CompiledRuleset:
        """Every profile's rules in one ruleset (see `compile_joint`): one run serves a comparison of profiles."""
        if self._joint is None:
            with self._lock:
                if self._joint is None:
                    with memory.building():
                        self._joint = compile_joint(self.rulebook, self.questionnaire)
        return self._joint

    def joint_engine(self) -> RuleEngine:
        """The calling thread's engine for the joint ruleset (made on its first use in this thread)."""
        return self._joint_engines.get("joint")

    def engine(self, profile: str) -> RuleEngine:
        """The calling thread's engine for `profile` (made on its first use in this thread)."""
        return self._engines.get(profile)

    def builder(self, profile: str) -> ResultBuilder:
        if profile not in self._builders:
            params = profile_parameters(self.rulebook, profile)  # no need to compile the profile for them
            with self._lock:
                self._builders.setdefault(profile, ResultBuilder(self.rulebook, self.knowledge, profile, params))
        return self._builders[profile]

    def evaluator(self, profile: str | None = None) -> Evaluator:
        """The profile's independent evaluator, compiled on first use (its compiled code is pure: threads share it)."""
        chosen = self.rulebook.check_profile(profile)
        if chosen not in self._evaluators:
            with self._lock:
                if chosen not in self._evaluators:
                    self._evaluators[chosen] = Evaluator(self.rulebook, chosen)
        return self._evaluators[chosen]

    def evaluate(self, answers: BaseModel, profile: str | None = None, compare_profiles: bool = True) -> Result:
        """Evaluate one patient on the chosen engine; optionally note where other profiles differ.

        With the comparison, one run of the joint ruleset gives every profile's firings (the chosen
        profile's are those its own ruleset fires); other profiles are compared at the level of
        firings (statuses and the rules behind them): no result is built for them.
        """
        chosen = self.rulebook.check_profile(profile)
        patient = self.patient(answers)
        if not compare_profiles:
            return self.builder(chosen).build(self.engine(chosen).run_patient(patient), self.engine_name, patient.fact)
        joint = self.joint_engine().run_profiles(patient)
        builder = self.builder(chosen)
        result = builder.build(joint[chosen], self.engine_name, patient.fact)
        differences: list[ProfileDifference] = []
        for other in self.rulebook.profiles:
            if other == chosen:
                continue
            theirs = builder.changed_outcomes(result.options, *joint.differing(chosen, other))
            if theirs:  # where the same rules set the statuses, no option can differ (most patients, most profiles)
                mine = {
                    o.procedure: (o.status, frozenset(f.rule_id for f in o.reasons))
                    for o in result.options
                    if o.procedure in theirs
                }
                differences.extend(self._differences(mine, theirs, chosen, other))
        if not differences:
            return updated(result, profile_differences=differences, disagreements=result.disagreements)
        # A dispute also matters to this patient when another profile would change the status of an
        # option it is about (and a rule that held in some profile encodes one of its criteria).
        cited = set().union(*(self.builder(p).outcomes(joint[p])[1] for p in self.rulebook.profiles))
        also = set(builder.disputes({d.procedure for d in differences}, cited, patient.fact))
        disputes = [d for d in self.knowledge.disagreements if d in result.disagreements or d in also]
        return updated(result, profile_differences=differences, disagreements=disputes)

    def patient(self, answers: BaseModel) -> Patient:
        """The patient's fact for the rule engine, written once (it serves every profile)."""
        if self._encoder is None:
            self._encoder = PatientEncoder(self.questionnaire)
        return self._encoder.encode(answers.__dict__)  # the fields as they are, read only (no copy)

    def summarize(
        self, answers: BaseModel, profile: str | None = None, compare_profiles: bool = False
    ) -> dict[str, Any]:
        """`result.summary(self.evaluate(answers, profile, compare_profiles))`; without the comparison several
        times faster (no evidence record is built)."""
        if compare_profiles:
            return summary(self.evaluate(answers, profile))
        chosen = self.rulebook.check_profile(profile)
        patient = self.patient(answers)
        return self.builder(chosen).summarize(self.engine(chosen).run_patient(patient), self.engine_name, patient.fact)

    def _parameters_behind(self, rule_ids: set[str]) -> set[str]:
        """Parameters read by these rules, directly or through the derived facts they read."""
        behind: set[str] = set()
        for rule_id in rule_ids:
            found = self._behind.get(rule_id)
            if found is None:
                rulebook = self.rulebook
                rules = [rulebook.rule(rule_id)] if rule_id != FALLBACK_ID else []
                rules += [rulebook.rule(rulebook.derived_facts[fact]) for fact in rulebook.derived_read(rules)]
                found = self._behind[rule_id] = frozenset(a.param for r in rules for a in r.when.atoms() if a.param)
            behind |= found
        return behind

    def _differences(self, mine: Outcomes, theirs: Outcomes, profile: str, other: str) -> list[ProfileDifference]:
        out = []
        for pid, (status, ids_a) in mine.items():
            other_status, ids_b = theirs[pid]
            if status == other_status:
                continue
            params: dict[str, dict[str, int | float]] = {}
            for param_id in sorted(self._parameters_behind(set(ids_a | ids_b))):
                p = self.rulebook.parameters[param_id]
                if p.value(profile) != p.value(other):
                    params[param_id] = {profile: p.value(profile), other: p.value(other)}
            out.append(
                ProfileDifference(
                    procedure=pid,
                    profile=other,
                    status=other_status,
                    this_status=status,
                    rules=sorted(ids_a ^ ids_b),
                    parameters=params,
                )
            )
        return out
