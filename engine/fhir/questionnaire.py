"""The questionnaire as a FHIR R4 `Questionnaire`, generated from knowledge/questionnaire.yaml.

Nothing here is written by hand per question: every item comes from the one questionnaire
definition, so a new question, option or skip condition appears in the export by itself.

Mapping (the codes and URLs below are the contract with an EHR; `response` reads them back):

- A section is a `group` item (linkId `section-<id>`), its intro a `display` item.
- single choice -> `choice`; multiple choice -> `choice` with `repeats`; yes/no -> `choice` with
  the HL7 v2-0136 codes Y and N (a radio list can show "Not sure"; a checkbox cannot);
  a number -> `integer` or `decimal` with the core `minValue`, `maxValue` and
  `questionnaire-unit` (UCUM) extensions; text -> `string` (or `text` when it may be long)
  with `maxLength`.
- An option's code is its value, in a code system per question (`CodeSystem/<question id>`),
  since the same value (`none`, `not_done`) means different things in different questions.
- "Not sure" is the answer option coded `asked-unknown` from the HL7 data-absent-reason code
  system on every choice question; on a number question (which cannot list options) it is an
  answer whose value is absent and carries the `data-absent-reason` extension. "None of these"
  on a multiple-choice question is the option `none` of `CodeSystem/answer`, with "Not sure"
  marked `optionExclusive`.
- Help text is a `display` child item with the `questionnaire-itemControl` code `help`.
- No question is `required`: a missing answer is an unknown answer, which every rule handles.
- A skip condition (`ask_if`) becomes `enableWhen` (with `enableBehavior` when there are
  several). A condition FHIR's flat enableWhen cannot say with the same three-valued meaning
  (e.g. `is_unknown`, or `any` of `all`s) is refused, naming the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.questionnaire import (
    Questionnaire as FhirQuestionnaire,
)
from fhir.resources.R4B.questionnaire import (
    QuestionnaireItem,
    QuestionnaireItemAnswerOption,
    QuestionnaireItemEnableWhen,
)

from engine.errors import KnowledgeError, Problem
from engine.model.conditions import NEGATED, Condition, dnf
from engine.model.questionnaire import UNKNOWN, Question, Questionnaire

CANONICAL = "https://pain-sdm.invalid/fhir"
"""The base of pain-sdm's canonical URLs (`.invalid`: names, not addresses to fetch)."""
QUESTIONNAIRE_URL = f"{CANONICAL}/Questionnaire/pain-sdm"
DAR_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DAR_EXTENSION = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
NOT_SURE_CODE = "asked-unknown"
YES_NO_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0136"
YES_NO_CODES = {"yes": ("Y", "Yes"), "no": ("N", "No")}
SPECIAL_SYSTEM = f"{CANONICAL}/CodeSystem/answer"
NONE_CODE = "none"
UCUM = "http://unitsofmeasure.org"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
LONG_TEXT = 255
"""Text questions longer than this are FHIR `text` (a text box) rather than `string` (one line)."""

UCUM_UNITS = {
    "years": "a",
    "months": "mo",
    "weeks": "wk",
    "days": "d",
    "% relief": "%",
    "%": "%",
    "out of 10": "{score}",
}
"""Our unit words as UCUM; any other unit is a UCUM annotation such as `{injections}`."""


def option_system(question_id: str) -> str:
    return f"{CANONICAL}/CodeSystem/{question_id}"


def section_link(section_id: str) -> str:
    return f"section-{section_id}"


def help_link(question_id: str) -> str:
    return f"{question_id}-help"


def not_sure_coding() -> Coding:
    return Coding(system=DAR_SYSTEM, code=NOT_SURE_CODE, display="Not sure")


def none_coding() -> Coding:
    return Coding(system=SPECIAL_SYSTEM, code=NONE_CODE, display="None of these")


def item_type(question: Question) -> str:
    if question.type == "number":
        return "integer" if question.integer else "decimal"
    if question.type == "text":
        return "text" if question.max_length > LONG_TEXT else "string"
    return "choice"


def choice_coding(question: Question, value: str) -> Coding:
    """The coding of one of a choice question's own values (not "not sure" or "none")."""
    if question.type == "yes_no":
        code, display = YES_NO_CODES[value]
        return Coding(system=YES_NO_SYSTEM, code=code, display=display)
    return Coding(system=option_system(question.id), code=value, display=question.label_of(value))


def ucum_coding(unit: str) -> Coding:
    code = UCUM_UNITS.get(unit) or "{" + "_".join(unit.split()) + "}"
    return Coding(system=UCUM, code=code, display=unit)


def number_value(question: Question, value: int | float) -> dict[str, Any]:
    """`{"valueInteger": 4}` or `{"valueDecimal": 2.5}`: the value[x] field for this number question."""
    if question.integer:
        return {"valueInteger": int(value)}
    return {"valueDecimal": value}


def _answer_options(question: Question) -> list[QuestionnaireItemAnswerOption]:
    options = [QuestionnaireItemAnswerOption(valueCoding=choice_coding(question, v)) for v in question.values]
    exclusive = [Extension(url=OPTION_EXCLUSIVE, valueBoolean=True)] if question.type == "multiple" else None
    if question.type == "multiple":
        options.append(QuestionnaireItemAnswerOption(valueCoding=none_coding(), extension=exclusive))
    if question.allow_unknown:
        options.append(QuestionnaireItemAnswerOption(valueCoding=not_sure_coding(), extension=exclusive))
    return options


def _extensions(question: Question) -> list[Extension] | None:
    if question.type != "number":
        return None
    assert question.min is not None and question.max is not None  # the Question model requires them
    low, high = (number_value(question, v) for v in (question.min, question.max))
    return [
        Extension(url=MIN_VALUE, **low),
        Extension(url=MAX_VALUE, **high),
        Extension(url=UNIT, valueCoding=ucum_coding(question.unit)),
    ]


def _help_item(question: Question) -> QuestionnaireItem:
    control = CodeableConcept(coding=[Coding(system=ITEM_CONTROL_SYSTEM, code="help", display="Help-Button")])
    return QuestionnaireItem(
        linkId=help_link(question.id),
        type="display",
        text=question.help,
        extension=[Extension(url=ITEM_CONTROL, valueCodeableConcept=control)],
    )


@dataclass(frozen=True)
class EnableWhen:
    """A skip condition as FHIR says it: enableWhen entries and how they combine (None for one)."""

    conditions: list[QuestionnaireItemEnableWhen]
    behavior: str | None


class Unsayable(Exception):
    """A skip condition that flat enableWhen cannot express with the same meaning."""


def _when(question: Question, op: str, value: Any) -> QuestionnaireItemEnableWhen:
    """One enableWhen on `question` (the one read by the condition)."""
    if op == "exists":
        return QuestionnaireItemEnableWhen(question=question.id, operator=op, answerBoolean=value)
    if question.type == "number":
        answer = {k.replace("value", "answer"): v for k, v in number_value(question, value).items()}
    elif question.type == "text":
        answer = {"answerString": value}
    elif value == UNKNOWN:
        answer = {"answerCoding": not_sure_coding()}
    else:
        answer = {"answerCoding": choice_coding(question, value)}
    return QuestionnaireItemEnableWhen(question=question.id, operator=op, **answer)


@dataclass(frozen=True)
class Literal_:
    """One literal of a skip condition as enableWhen entries that must hold `all` together or `any` of."""

    whens: list[QuestionnaireItemEnableWhen]
    behavior: str


def _literal(atom: Condition, negated: bool, questions: dict[str, Question]) -> Literal_:
    """One literal of a skip condition as enableWhen, with the same three-valued meaning.

    An unknown ("not sure") or missing answer leaves a literal unknown, and the question is not
    asked; so no translation may be true then. FHIR defines `=` (and `>`...) as "at least one
    answer matches" and `!=` as "no answer equals", which is true of no answer at all: hence the
    `exists` and "is not Not sure" entries beside a `!=`.
    """
    assert atom.fact is not None and atom.op is not None
    read = questions[atom.fact]
    op = NEGATED[atom.op] if negated else atom.op
    value = atom.value
    values = value if isinstance(value, list) else [value]
    if read.type in ("single", "yes_no") and op in ("==", "!=", "in", "not_in"):
        chosen = [v for v in read.values if (v in values) == (op in ("==", "in"))]
        return Literal_([_when(read, "=", v) for v in chosen], "any")  # "is not X" is "is one of the others"
    if read.type == "number" and op in ("==", "<", "<=", ">", ">="):
        return Literal_([_when(read, "=" if op == "==" else op, value)], "any")
    if read.type == "multiple" and op in ("contains", "contains_any"):
        return Literal_([_when(read, "=", v) for v in values], "any")  # `=` on a repeating item: any answer equals
    choice = read.type in ("single", "multiple", "yes_no")
    answered = [_when(read, "exists", True), _when(read, "!=", UNKNOWN)] if choice else []
    if read.type == "multiple" and op in ("not_contains", "contains_none"):
        return Literal_(answered + [_when(read, "!=", v) for v in values], "all")
    if choice and op == "is_known":
        return Literal_(answered, "all")
    if choice and op == "is_unknown":
        return Literal_([_when(read, "exists", False), _when(read, "=", UNKNOWN)], "any")
    if read.type == "text" and op == "==":
        return Literal_([_when(read, "=", value)], "any")
    raise Unsayable(f"`{atom.fact} {op}` on a {read.type} question")


def enable_when(question: Question, questions: dict[str, Question]) -> EnableWhen | None:
    """The question's skip condition as enableWhen, or None when it is always asked.

    FHIR's enableWhen is one flat list, all or any: a condition in disjunctive normal form fits
    when it is one conjunction (whose literals hold `all` together, or is one `any` literal), or a
    disjunction of literals that each hold as `any`.
    """
    if question.ask_if is None:
        return None
    conjunctions = [[_literal(atom, negated, questions) for atom, negated in c] for c in dnf(question.ask_if)]

    def single(literal: Literal_) -> bool:
        return len(literal.whens) == 1

    if len(conjunctions) == 1:
        literals = conjunctions[0]
        if all(single(lit) or lit.behavior == "all" for lit in literals):
            flat = [when for lit in literals for when in lit.whens]
            return EnableWhen(flat, "all" if len(flat) > 1 else None)
        if len(literals) == 1:
            return EnableWhen(literals[0].whens, "any")
        raise Unsayable("an `all` whose parts are themselves `any` of several answers")
    if all(len(c) == 1 and (single(c[0]) or c[0].behavior == "any") for c in conjunctions):
        return EnableWhen([when for c in conjunctions for when in c[0].whens], "any")
    raise Unsayable("an `any` whose parts are `all` of several conditions")


def _question_item(question: Question, questions: dict[str, Question]) -> QuestionnaireItem:
    try:
        when = enable_when(question, questions)
    except Unsayable as exc:
        raise KnowledgeError(
            Problem(
                "questionnaire.yaml",
                f"question {question.id}",
                "ask_if",
                f"cannot be written as FHIR enableWhen with the same meaning ({exc}); simplify the condition",
            )
        ) from None
    return QuestionnaireItem(
        linkId=question.id,
        text=question.prompt,
        type=item_type(question),
        required=False,
        repeats=True if question.type == "multiple" else None,
        answerOption=_answer_options(question) if question.type != "number" and question.type != "text" else None,
        maxLength=question.max_length if question.type == "text" else None,
        extension=_extensions(question),
        enableWhen=when.conditions if when else None,
        enableBehavior=when.behavior if when else None,
        item=[_help_item(question)] if question.help else None,
    )


def build_questionnaire(questionnaire: Questionnaire, rulebook_version: str) -> FhirQuestionnaire:
    """The whole questionnaire as one FHIR Questionnaire; its version is the rulebook version."""
    questions = questionnaire.questions
    groups = []
    for section in questionnaire.sections:
        children = [_question_item(q, questions) for q in questionnaire.in_section(section.id)]
        if section.intro:
            intro = QuestionnaireItem(linkId=f"{section_link(section.id)}-intro", type="display", text=section.intro)
            children.insert(0, intro)
        if children:
            groups.append(
                QuestionnaireItem(linkId=section_link(section.id), type="group", text=section.title, item=children)
            )
    return FhirQuestionnaire(
        id="pain-sdm",
        url=QUESTIONNAIRE_URL,
        version=rulebook_version,
        name="PainSdmQuestionnaire",
        title="Interventional pain management: shared decision-making questionnaire",
        status="active",
        publisher="pain-sdm",
        description=(
            "The questions pain-sdm asks before a discussion of interventional pain treatments. "
            "Generated from the pain-sdm questionnaire definition; the version is the rulebook version."
        ),
        subjectType=["Patient"],
        item=groups,
    )


def questionnaire_json(questionnaire: Questionnaire, rulebook_version: str) -> str:
    return build_questionnaire(questionnaire, rulebook_version).model_dump_json(indent=2, exclude_none=True) + "\n"
