"""Patient facts: the validated answers, seen as the rules see them.

Answers hold "unknown" explicitly. For the independent evaluator an unknown answer
is `None`. For durable_rules, answers are flattened so that an unknown number or
multiple-choice answer is simply absent (durable never matches an absent field),
and each multiple-choice option becomes its own true/false field.
"""

from __future__ import annotations

from typing import Any

from engine.errors import Problem
from engine.model.migration import VERSION_KEY
from engine.model.questionnaire import UNKNOWN, Questionnaire

PATIENT = "patient"
DERIVED = "derived"
SEP = "__"

RESERVED_KEYS = {
    "t": "the rule engine's key for a fact's kind",
    "id": "the rule engine's key for a fact's id",
    "sid": "durable_rules' key for the session id",
    "answers": "the key of an answers file's `answers:` mapping",
    VERSION_KEY: "the key of an answers file's schema version",
}
"""Keys that pain-sdm or durable_rules use themselves: no question may be read under one of them."""


def engine_key_problems(questionnaire: Questionnaire, file: str) -> list[Problem]:
    """Questions whose keys in the patient fact would be a reserved key, or another question's key.

    A multiple-choice question `q` with option `o` is read under `q__o`, so a question named
    `pain__axial` and the option `axial` of `pain` would be one key: the engine would read one
    answer for both, and it and the independent evaluator would silently disagree.
    """
    problems: list[Problem] = []
    owner: dict[str, str] = {}
    for qid, question in questionnaire.questions.items():
        if question.type == "multiple":
            keys = [(f"{qid}{SEP}{o}", f"option `{o}` of question {qid}") for o in question.values]
        else:
            keys = [(qid, f"question {qid}")]
        for key, what in keys:
            if key in RESERVED_KEYS:
                message = f"`{key}` is {RESERVED_KEYS[key]}; give the question another id"
                problems.append(Problem(file, f"question {qid}", "id", message, "engine-key"))
            elif key in owner:
                message = (
                    f"the rule engine reads {what} under the key `{key}`, the key of {owner[key]}; "
                    "rename one of them so no key stands for two answers"
                )
                problems.append(Problem(file, f"question {qid}", "id", message, "engine-key"))
            owner.setdefault(key, what)
    return problems


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
