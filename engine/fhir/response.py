"""Answers to and from a FHIR R4 `QuestionnaireResponse`, strictly, by the mapping in `questionnaire`.

The import is the one place a QuestionnaireResponse becomes answers: `DecisionAid.parse_answers`
calls `answers_from_response` for any input that names a FHIR `resourceType`, so `evaluate`,
`summary`, `--batch` and the CDS Hooks service read it alike. It refuses, naming the item:
an unknown linkId or one given twice, an answer of the wrong type or with a code the question
does not list, several answers to a single-answer question, nested answers, and an answer to a
question its skip condition hides. The values are then checked by the answers model as any
answers file is (ranges, whole numbers), with the same messages.

The export writes the answers given (an omitted answer stays omitted; "unknown" is written as
"Not sure"), in the Questionnaire's section groups, so answers -> response -> answers is exact.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswer,
)
from fhir.resources.R4B.reference import Reference
from pydantic import BaseModel, ValidationError

from engine.errors import AnswersError, Problem
from engine.fhir.questionnaire import (
    CANONICAL,
    DAR_EXTENSION,
    DAR_SYSTEM,
    NONE_CODE,
    NOT_SURE_CODE,
    QUESTIONNAIRE_URL,
    SPECIAL_SYSTEM,
    choice_coding,
    none_coding,
    not_sure_coding,
    number_value,
    section_link,
)
from engine.model.conditions import OP_WORDS, Condition
from engine.model.questionnaire import UNKNOWN, Question, Questionnaire

if TYPE_CHECKING:
    from engine.evaluation.aid import DecisionAid

PATIENT_LABEL_SYSTEM = f"{CANONICAL}/patient-label"
"""The identifier system of a patient label: a clinic's own reference, never a name."""
VALUE_FIELDS = ("valueCoding", "valueInteger", "valueDecimal", "valueString", "valueBoolean", "valueDate")
READABLE_STATUSES = ("completed", "amended", "in-progress")


def patient_reference(label: str | None) -> Reference | None:
    """The patient as a label (identifier only): pain-sdm never needs or writes a name."""
    if not label:
        return None
    return Reference(type="Patient", identifier=Identifier(system=PATIENT_LABEL_SYSTEM, value=label))


def _not_sure_answer(question: Question) -> QuestionnaireResponseItemAnswer:
    if question.type in ("single", "multiple", "yes_no"):
        return QuestionnaireResponseItemAnswer(valueCoding=choice_coding_or_special(question, UNKNOWN))
    field = next(iter(number_value(question, 0)))
    dar = {"extension": [Extension(url=DAR_EXTENSION, valueCode=NOT_SURE_CODE)]}
    return QuestionnaireResponseItemAnswer(**{f"{field}__ext": dar})


def choice_coding_or_special(question: Question, value: str) -> Coding:
    """The coding of a choice answer, "not sure" and "none of these" included."""
    if value == UNKNOWN:
        return not_sure_coding()
    if value == NONE_CODE and question.type == "multiple":
        return none_coding()
    return choice_coding(question, value)


def _answers(question: Question, value: Any) -> list[QuestionnaireResponseItemAnswer]:
    if value == UNKNOWN:
        return [_not_sure_answer(question)]
    if question.type == "multiple":
        if not value:
            return [QuestionnaireResponseItemAnswer(valueCoding=choice_coding_or_special(question, NONE_CODE))]
        return [QuestionnaireResponseItemAnswer(valueCoding=choice_coding(question, v)) for v in value]
    if question.type == "number":
        field, number = next(iter(number_value(question, value).items()))
        if isinstance(number, float):
            number = Decimal(repr(number))  # the shortest text that reads back as the same float
        return [QuestionnaireResponseItemAnswer(**{field: number})]
    if question.type == "text":
        return [QuestionnaireResponseItemAnswer(valueString=value)]
    return [QuestionnaireResponseItemAnswer(valueCoding=choice_coding(question, value))]


def given_answers(answers: BaseModel) -> dict[str, Any]:
    """The answers that were given (explicit "unknown" included), in the model's field order."""
    given = answers.model_fields_set
    return {k: v for k, v in answers if k in given and v != ""}  # FHIR has no empty string: "" is no answer


def build_response(
    questionnaire: Questionnaire,
    answers: BaseModel,
    rulebook_version: str,
    *,
    patient_label: str | None = None,
    authored: dt.datetime | None = None,
) -> QuestionnaireResponse:
    """The given answers as a completed QuestionnaireResponse to pain-sdm's Questionnaire."""
    values = given_answers(answers)
    hidden = hidden_answers(questionnaire, values)
    if hidden:
        raise AnswersError([_hidden_problem("answers", q) for q in hidden])
    groups = []
    for section in questionnaire.sections:
        items = [
            QuestionnaireResponseItem(linkId=q.id, text=q.prompt, answer=_answers(q, values[q.id]))
            for q in questionnaire.in_section(section.id)
            if q.id in values
        ]
        if items:
            groups.append(QuestionnaireResponseItem(linkId=section_link(section.id), text=section.title, item=items))
    return QuestionnaireResponse(
        questionnaire=f"{QUESTIONNAIRE_URL}|{rulebook_version}",
        status="completed",
        subject=patient_reference(patient_label),
        authored=authored or dt.datetime.now(dt.UTC).replace(microsecond=0),
        item=groups or None,
    )


# --- reading a response ---------------------------------------------------------------------------


def _is_asked(question: Question, answers: dict[str, Any]) -> bool:
    from engine.interview.walkthrough import is_asked  # the interview's own three-valued test

    return is_asked(question, answers)


def hidden_answers(questionnaire: Questionnaire, answers: dict[str, Any]) -> list[Question]:
    """Questions answered although their skip condition hides them for these answers."""
    return [q for q in questionnaire.questions.values() if q.id in answers and not _is_asked(q, answers)]


def _condition_words(condition: Condition) -> str:
    """A skip condition in a reviewer's words, e.g. '`esi_count_12m` is at least 1'."""
    if condition.fact is not None:
        assert condition.op is not None
        operand = "" if condition.value is None else f" {condition.value}"
        return f"`{condition.fact}` {OP_WORDS[condition.op]}{operand}"
    if condition.not_ is not None:
        return f"not ({_condition_words(condition.not_)})"
    parts = condition.all if condition.all is not None else condition.any or []
    joiner = " and " if condition.all is not None else " or "
    return "(" + joiner.join(_condition_words(c) for c in parts) + ")"


def _hidden_problem(name: str, question: Question) -> Problem:
    assert question.ask_if is not None
    return Problem(
        name,
        f"item {question.id}",
        "answer",
        f"answers a question the questionnaire hides here: it is asked only when {_condition_words(question.ask_if)}",
    )


class _Reader:
    """Walks a QuestionnaireResponse's items, collecting answers and every problem found."""

    def __init__(self, questionnaire: Questionnaire, name: str) -> None:
        self.questions = questionnaire.questions
        self.groups = {section_link(s.id) for s in questionnaire.sections}
        self.name = name
        self.answers: dict[str, Any] = {}
        self.problems: list[Problem] = []

    def problem(self, link_id: str, field: str, message: str) -> None:
        self.problems.append(Problem(self.name, f"item {link_id}", field, message))

    def walk(self, items: list[QuestionnaireResponseItem], seen: set[str]) -> None:
        for item in items:
            link = item.linkId or ""  # required by FHIR, so fhir.resources has checked it is there
            if link in seen:
                self.problem(link, "linkId", "this linkId is given twice; give each item once")
                continue
            seen.add(link)
            if link in self.groups:
                if item.answer:
                    self.problem(link, "answer", "a section group holds items, not answers")
                self.walk(item.item or [], seen)
            elif link in self.questions:
                if item.item:
                    self.problem(link, "item", "a question holds answers, not items")
                self.read(self.questions[link], item.answer or [])
            else:
                self.problem(link, "linkId", "no question of pain-sdm's questionnaire has this linkId")

    def read(self, question: Question, answers: list[QuestionnaireResponseItemAnswer]) -> None:
        if not answers:
            return  # an item with no answer: not answered
        if any(a.item for a in answers):
            self.problem(question.id, "answer.item", "answers hold no nested items in this questionnaire")
            return
        if question.type != "multiple" and len(answers) > 1:
            self.problem(question.id, "answer", f"has {len(answers)} answers; this question takes one")
            return
        try:
            values = [self.value(question, a) for a in answers]
        except ValueError as exc:
            self.problem(question.id, "answer", str(exc))
            return
        if question.type != "multiple":
            self.answers[question.id] = values[0]
            return
        special = [v for v in values if v in (UNKNOWN, NONE_CODE)]
        if special and len(values) > 1:
            self.problem(question.id, "answer", "'not sure' and 'none of these' are answers on their own")
        elif special:
            self.answers[question.id] = UNKNOWN if special[0] == UNKNOWN else []
        else:
            self.answers[question.id] = values

    def value(self, question: Question, answer: QuestionnaireResponseItemAnswer) -> Any:
        present = [f for f in VALUE_FIELDS if getattr(answer, f, None) is not None]
        wanted = _value_field(question)
        if not present:
            if question.type == "number" and _not_sure_extension(answer, wanted):
                return UNKNOWN
            raise ValueError(f"an answer without a value; expected {wanted}")
        if present != [wanted]:
            raise ValueError(f"expected {wanted}; got {', '.join(present)}")
        raw = getattr(answer, wanted)
        if wanted == "valueCoding":
            return _choice_value(question, raw.system, raw.code)
        if wanted == "valueDecimal":
            number = Decimal(raw)
            as_int = int(number)
            return as_int if number == as_int and number.as_tuple().exponent == 0 else float(number)
        return raw


def _value_field(question: Question) -> str:
    if question.type == "number":
        return next(iter(number_value(question, 0)))
    return "valueString" if question.type == "text" else "valueCoding"


def _not_sure_extension(answer: QuestionnaireResponseItemAnswer, field: str) -> bool:
    ext = getattr(answer, f"{field}__ext", None)
    found = ext.extension if ext is not None and ext.extension else []
    return any(e.url == DAR_EXTENSION for e in found)


def _choice_value(question: Question, system: str | None, code: str | None) -> str:
    if system == DAR_SYSTEM and code == NOT_SURE_CODE and question.allow_unknown:
        return UNKNOWN
    if system == SPECIAL_SYSTEM and code == NONE_CODE and question.type == "multiple":
        return NONE_CODE
    for value in question.values:
        coding = choice_coding(question, value)
        if coding.system == system and coding.code == code:
            return value
    codes = ", ".join(str(choice_coding(question, v).code) for v in question.values)
    system_of_values = choice_coding(question, question.values[0]).system if question.values else ""
    raise ValueError(f"the code {system}|{code} is not an answer here; expected a code of {system_of_values}: {codes}")


def answers_from_response(questionnaire: Questionnaire, data: dict[str, Any], name: str) -> dict[str, Any]:
    """A QuestionnaireResponse (parsed JSON) as an answers mapping; AnswersError names each bad item."""
    kind = data.get("resourceType")
    if kind != "QuestionnaireResponse":
        raise AnswersError(
            Problem(name, "", "resourceType", f"a FHIR {kind} is not answers; give a QuestionnaireResponse")
        )
    try:
        response = QuestionnaireResponse.model_validate(data)
    except ValidationError as exc:
        raise AnswersError(
            [
                Problem(name, "", ".".join(str(p) for p in err["loc"]), f"not valid FHIR: {err['msg']}")
                for err in exc.errors()
            ]
        ) from None
    if response.status not in READABLE_STATUSES:
        raise AnswersError(Problem(name, "", "status", f"a response with status {response.status} cannot be used"))
    target = (response.questionnaire or QUESTIONNAIRE_URL).split("|")[0]
    if target != QUESTIONNAIRE_URL:
        raise AnswersError(
            Problem(
                name,
                "",
                "questionnaire",
                f"answers the questionnaire {target}, not pain-sdm's ({QUESTIONNAIRE_URL}); map it first",
            )
        )
    reader = _Reader(questionnaire, name)
    reader.walk(response.item or [], set())
    reader.problems += [_hidden_problem(name, q) for q in hidden_answers(questionnaire, reader.answers)]
    if reader.problems:
        raise AnswersError(reader.problems)
    return reader.answers


def response_json(aid: DecisionAid, answers: BaseModel, *, patient_label: str | None = None) -> str:
    """`build_response` as indented JSON; the label is `patient_label`, else the answers' own."""
    label = patient_label or getattr(answers, "patient_label", "") or None
    response = build_response(aid.questionnaire, answers, aid.rulebook.version, patient_label=label)
    return response.model_dump_json(indent=2, exclude_none=True) + "\n"
