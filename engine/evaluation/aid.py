"""The decision aid: loads knowledge, questionnaire and rulebook once, and evaluates patients.

This is the library's front door. The CLI, the interview, the summary and the batch
runner all call it; none of them touches durable_rules or the rule files directly.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.errors import AnswersError
from engine.evaluation.compiler import CompiledRuleset, compile_rulebook
from engine.evaluation.engines import PerThread
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.firing import Firing
from engine.evaluation.inference import DurableEngine
from engine.evaluation.result import FALLBACK_ID, ProfileDifference, Result, ResultBuilder, bears_on, criteria_held
from engine.model.facts import flatten
from engine.model.knowledge import Knowledge, load_knowledge
from engine.model.loading import read_data, validate
from engine.model.questionnaire import Questionnaire, load_questionnaire
from engine.model.rulebook import Rulebook, load_rulebook
from engine.model.values import Value, load_values
from engine.paths import data_dir


class DecisionAid:
    """Knowledge, questionnaire and rulebook, with one rule engine per profile and thread (built on first use).

    One `DecisionAid` may be used from several threads at once: each thread evaluates on its own
    engines (see `engine.evaluation.engines`), and everything else it holds is read-only.
    """

    def __init__(
        self, knowledge: Knowledge, questionnaire: Questionnaire, rulebook: Rulebook, values: dict[str, Value]
    ) -> None:
        self.knowledge = knowledge
        self.questionnaire = questionnaire
        self.rulebook = rulebook
        self.values = values
        self._compiled: dict[str, CompiledRuleset] = {}
        self._engines = PerThread(lambda profile: DurableEngine(self.compiled(profile), self.questionnaire))
        self._builders: dict[str, ResultBuilder] = {}
        self._lock = threading.Lock()  # threads that ask at once compile a profile once

    @classmethod
    def load(cls, rules_dir: Path | None = None, knowledge_dir: Path | None = None) -> DecisionAid:
        """Load and validate every data file; raises a `DataFileError` naming each problem."""
        kdir = data_dir("knowledge", knowledge_dir)
        rdir = data_dir("rules", rules_dir)
        knowledge = load_knowledge(kdir)
        questionnaire = load_questionnaire(kdir / "questionnaire.yaml", knowledge.conditions, knowledge.treatments)
        rulebook = load_rulebook(rdir, knowledge, questionnaire, kdir)
        values = load_values(kdir / "values.yaml", questionnaire)
        return cls(knowledge, questionnaire, rulebook, values)

    @property
    def answers_model(self) -> type[BaseModel]:
        return self.questionnaire.answers_model

    def parse_answers(self, data: Any, name: str = "answers") -> BaseModel:
        """Validate raw answers strictly; every problem is listed by its field path."""
        if not isinstance(data, dict):
            raise AnswersError(f"{name}: expected a mapping of question ids to answers, got {type(data).__name__}")
        return validate(self.answers_model, data, name, AnswersError, entry_key="\0")

    def read_answers(self, path: Path) -> BaseModel:
        data = read_data(path, AnswersError)
        if isinstance(data, dict) and isinstance(data.get("answers"), dict):
            data = data["answers"]  # a saved session or record wraps the answers
        return self.parse_answers(data, str(path))

    def compiled(self, profile: str) -> CompiledRuleset:
        if profile not in self._compiled:
            with self._lock:
                if profile not in self._compiled:
                    self._compiled[profile] = compile_rulebook(self.rulebook, profile, self.questionnaire)
        return self._compiled[profile]

    def engine(self, profile: str) -> DurableEngine:
        """The calling thread's engine for `profile` (made on its first use in this thread)."""
        return self._engines.get(profile)

    def builder(self, profile: str) -> ResultBuilder:
        if profile not in self._builders:
            params = self.compiled(profile).parameters
            with self._lock:
                self._builders.setdefault(profile, ResultBuilder(self.rulebook, self.knowledge, profile, params))
        return self._builders[profile]

    def evaluator(self, profile: str | None = None) -> Evaluator:
        return Evaluator(self.rulebook, self.rulebook.check_profile(profile))

    def evaluate(self, answers: BaseModel, profile: str | None = None, compare_profiles: bool = True) -> Result:
        """Evaluate one patient on durable_rules; optionally note where other profiles differ."""
        chosen = self.rulebook.check_profile(profile)
        result = self._evaluate_one(answers, chosen)
        if not compare_profiles:
            return result
        differences = []
        cited = criteria_held(result.trace)
        for other in self.rulebook.profiles:
            if other == chosen:
                continue
            theirs = self._evaluate_one(answers, other)
            differences.extend(self._differences(result, theirs, chosen, other))
            cited |= criteria_held(theirs.trace)
        # A dispute also matters to this patient when another profile would change the status of an
        # option it is about (and a rule that held in some profile encodes one of its criteria).
        changed = {d.procedure for d in differences}
        disputes = [
            d.id
            for d in self.knowledge.disagreements.values()
            if d.id in result.disagreements or bears_on(d, changed, cited)
        ]
        return result.model_copy(update={"profile_differences": differences, "disagreements": disputes})

    def summarize(self, answers: BaseModel, profile: str | None = None) -> dict[str, Any]:
        """`result.summary(self.evaluate(answers, profile, compare_profiles=False))`, several times faster."""
        chosen = self.rulebook.check_profile(profile)
        return self.builder(chosen).summarize(self._firings(answers, chosen))

    def _evaluate_one(self, answers: BaseModel, profile: str) -> Result:
        return self.builder(profile).build(self._firings(answers, profile))

    def _firings(self, answers: BaseModel, profile: str) -> list[Firing]:
        values = dict(answers)  # the fields as they are: flatten only reads them (model_dump would copy)
        return self.engine(profile).run(flatten(values, self.questionnaire))

    def _parameters_behind(self, rule_ids: set[str]) -> set[str]:
        """Parameters read by these rules, directly or through the derived facts they read."""
        rulebook = self.rulebook
        rules = [rulebook.rule(rid) for rid in rule_ids if rid != FALLBACK_ID]
        rules += [rulebook.rule(rulebook.derived_facts[fact]) for fact in rulebook.derived_read(rules)]
        return {a.param for r in rules for a in r.when.atoms() if a.param}

    def _differences(self, mine: Result, theirs: Result, profile: str, other: str) -> list[ProfileDifference]:
        out = []
        for a, b in zip(mine.options, theirs.options, strict=True):
            if a.status == b.status:
                continue
            ids_a = {f.rule_id for f in a.reasons}
            ids_b = {f.rule_id for f in b.reasons}
            rules = sorted(ids_a ^ ids_b)
            params: dict[str, dict[str, int | float]] = {}
            for pid in sorted(self._parameters_behind(ids_a | ids_b)):
                p = self.rulebook.parameters[pid]
                if p.value(profile) != p.value(other):
                    params[pid] = {profile: p.value(profile), other: p.value(other)}
            out.append(
                ProfileDifference(
                    procedure=a.procedure,
                    profile=other,
                    status=b.status,
                    this_status=a.status,
                    rules=rules,
                    parameters=params,
                )
            )
        return out
