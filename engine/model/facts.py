"""Patient facts: the validated answers, seen as the rules see them.

Answers hold "unknown" explicitly. For the independent evaluator an unknown answer
is `None`. For durable_rules, answers are flattened so that an unknown number or
multiple-choice answer is simply absent (durable never matches an absent field),
and each multiple-choice option becomes its own true/false field.
"""

from __future__ import annotations

from typing import Any

from engine.model.questionnaire import UNKNOWN, Questionnaire

PATIENT = "patient"
DERIVED = "derived"
SEP = "__"


def known(value: Any) -> Any:
    """The answer for the evaluator: None when unknown."""
    return None if value == UNKNOWN else value


def flatten(answers: dict[str, Any], questionnaire: Questionnaire) -> dict[str, Any]:
    """The single patient fact asserted into durable_rules."""
    fact: dict[str, Any] = {"t": PATIENT, "id": PATIENT}
    for qid, question in questionnaire.questions.items():
        value = answers.get(qid, UNKNOWN)
        if question.type == "text":
            continue
        if question.type == "multiple":
            if value != UNKNOWN:
                for option in question.values:
                    fact[f"{qid}{SEP}{option}"] = option in value
        elif question.type == "number":
            if value != UNKNOWN:
                fact[qid] = value
        else:
            fact[qid] = value
    return fact


def unflatten(fact: dict[str, Any], fact_id: str, questionnaire: Questionnaire) -> Any:
    """Read one answer back out of a matched durable fact (for the trace)."""
    question = questionnaire.questions[fact_id]
    if question.type == "multiple":
        keys = [f"{fact_id}{SEP}{o}" for o in question.values]
        if not any(k in fact for k in keys):
            return UNKNOWN
        return [o for o, k in zip(question.values, keys, strict=True) if fact.get(k)]
    return fact.get(fact_id, UNKNOWN)
