"""What matters to the patient: how each option fits their stated values.

knowledge/values.yaml says, for each value question, how each option fits (good, mixed
or poor) and why. The interview and the summary show this beside each option; a value
the patient called important that fits poorly with the option they lean to is raised
as a point to discuss, never as a verdict.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import KnowledgeError, Problem
from engine.model.knowledge import PROCEDURE_IDS, ProcedureId, Strict
from engine.model.loading import load_file
from engine.model.questionnaire import Questionnaire

Fit = Literal["good", "mixed", "poor"]
IMPORTANCE_RANK = {"not_important": 0, "somewhat_important": 1, "very_important": 2}


class OptionFit(Strict):
    fit: Fit
    note: str


class Value(Strict):
    question: str = Field(pattern=r"^value_[a-z_]+$", examples=["value_avoid_implants"])
    label: str
    fits: dict[ProcedureId, OptionFit]


class ValuesFile(Strict):
    values: list[Value]


class ValueNote(BaseModel):
    """How one option fits one value the patient stated."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    question: str
    label: str
    importance: str
    fit: Fit
    note: str


def load_values(path: Path, questionnaire: Questionnaire) -> dict[str, Value]:
    """Load values.yaml; every value question and every option must be covered."""
    values = {v.question: v for v in load_file(ValuesFile, path, KnowledgeError, entry_key="question").values}
    problems = []
    for qid, value in values.items():
        if qid not in questionnaire.questions:
            problems.append(Problem(str(path), f"value {qid}", "question", "not a question in questionnaire.yaml"))
        missing = [p for p in PROCEDURE_IDS if p not in value.fits]
        if missing:
            problems.append(Problem(str(path), f"value {qid}", "fits", f"missing options: {', '.join(missing)}"))
    for qid in questionnaire.questions:
        if qid.startswith("value_") and qid not in values:
            problems.append(Problem(str(path), "", "values", f"the value question `{qid}` has no entry"))
    if problems:
        raise KnowledgeError(problems)
    return values


def option_fit(values: dict[str, Value], answers: dict[str, Any], procedure: str) -> list[ValueNote]:
    """How `procedure` fits each value the patient rated somewhat or very important, most important first."""
    notes = []
    for qid, value in values.items():
        importance = answers.get(qid, "unknown")
        if IMPORTANCE_RANK.get(importance, 0) == 0:
            continue
        fit = value.fits[procedure]  # type: ignore[index]
        notes.append(ValueNote(question=qid, label=value.label, importance=importance, fit=fit.fit, note=fit.note))
    return sorted(notes, key=lambda n: -IMPORTANCE_RANK[n.importance])


def conflicts(values: dict[str, Value], answers: dict[str, Any], procedure: str) -> list[ValueNote]:
    """Important values that fit poorly with the option the patient leans to: points to discuss."""
    return [n for n in option_fit(values, answers, procedure) if n.fit == "poor"]
