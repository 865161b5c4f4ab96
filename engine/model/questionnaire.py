"""The questionnaire definition: the one source for prompts, answer validation and docs.

knowledge/questionnaire.yaml lists sections of questions. From it come the interview
prompts, the strict `Answers` model (and its JSON Schema), and the typed fact catalogue
that the rule loader checks every rule against.
"""

import math
from collections.abc import Collection, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.errors import KnowledgeError, Problem
from engine.model.conditions import UNARY_OPS, Condition
from engine.model.knowledge import Strict, Term
from engine.model.loading import load_file

UNKNOWN = "unknown"
QuestionType = Literal["single", "multiple", "number", "yes_no", "text"]
YES_NO = ("yes", "no")


class Option(Strict):
    value: str = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["axial"])
    label: str


class Question(Strict):
    """One question: its id is the answer's field name everywhere."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["pain_duration_months"])
    type: QuestionType
    prompt: str
    short: str = Field(
        default="",
        description="the question in a few words, for the answers printed on the summary (its prompt where empty)",
    )
    help: str = ""
    options: list[Option] = []
    options_from: Literal["conditions", "treatments"] | None = None
    unit: str = ""
    min: int | float | None = None
    max: int | float | None = None
    integer: bool = False
    allow_unknown: bool = True
    max_length: int = 2000
    ask_if: Condition | None = None
    section: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.type in ("single", "multiple") and not (self.options or self.options_from):
            raise ValueError(f"a {self.type}-choice question needs `options` or `options_from`")
        if self.type == "number" and (self.min is None or self.max is None or not self.unit):
            raise ValueError("a number question needs `min`, `max` and `unit`")
        return self

    @property
    def values(self) -> tuple[str, ...]:
        if self.type == "yes_no":
            return YES_NO
        return tuple(o.value for o in self.options)

    def label_of(self, value: str) -> str:
        if value == UNKNOWN:
            return "not sure"
        if self.type == "yes_no":
            return value
        return next((o.label for o in self.options if o.value == value), value)

    def describe(self, value: Any) -> str:
        """An answer in words, e.g. '4 months' or 'sciatica, disc herniation'."""
        if value == UNKNOWN or value is None:
            return "not sure"
        if self.type == "multiple":
            return ", ".join(self.label_of(v) for v in value) or "none"
        if self.type == "number":
            number = int(value) if float(value).is_integer() else value
            return f"{number} {self.unit}".strip()
        if self.type == "text":
            return str(value)
        return self.label_of(str(value))


class Section(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    intro: str = ""
    questions: list[Question] = []
    treatment_history: bool = Field(
        default=False, description="expand into tried / weeks / outcome questions per treatment in the vocabulary"
    )


class QuestionnaireFile(Strict):
    sections: list[Section]


OUTCOMES = [
    Option(value="helped", label="It helped a lot"),
    Option(value="partly_helped", label="It helped a little"),
    Option(value="did_not_help", label="It did not help"),
    Option(value="not_tolerated", label="I could not keep going with it (side effects or other problems)"),
    Option(value="ongoing_partly_helped", label="Still going, and it helps a little"),
    Option(value="ongoing", label="Still going, too early to tell"),
]


def _in_sentence(label: str) -> str:
    """A label inside a sentence: its first letter lower case, acronyms kept ('... medicines (NSAIDs)')."""
    return label[:1].lower() + label[1:]


def _treatment_questions(term: Term, section: str) -> list[Question]:
    tried = f"{term.id}_tried"
    name = _in_sentence(term.label)
    was_tried = Condition(fact=tried, op="==", value="yes")
    weeks = Question(
        id=f"{term.id}_weeks",
        type="number",
        prompt=f"For how many weeks in all did you have {name}?",
        short=f"{term.label}, weeks in all:",
        unit="weeks",
        min=0,
        max=2080,
        ask_if=was_tried,
        section=section,
    )
    return [
        Question(
            id=tried,
            type="yes_no",
            prompt=f"Have you tried {name} for this pain?",
            short=f"{term.label} tried:",
            help=term.plain,
            section=section,
        ),
        *([weeks] if term.ask_weeks else []),
        Question(
            id=f"{term.id}_outcome",
            type="single",
            prompt=f"How did {name} work for you?",
            short=f"How {name} worked:",
            options=OUTCOMES,
            ask_if=was_tried,
            section=section,
        ),
    ]


class Questionnaire(BaseModel):
    """The expanded, validated questionnaire, in asking order."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    sections: list[Section]
    questions: dict[str, Question]

    def in_section(self, section_id: str) -> list[Question]:
        return [q for q in self.questions.values() if q.section == section_id]

    @cached_property
    def answers_model(self) -> type[BaseModel]:
        return build_answers_model(self)


OPS_BY_TYPE: dict[str, frozenset[str]] = {
    "number": frozenset({"==", "!=", "<", "<=", ">", ">=", "is_unknown", "is_known"}),
    "single": frozenset({"==", "!=", "in", "not_in", "is_unknown", "is_known"}),
    "yes_no": frozenset({"==", "!=", "in", "not_in", "is_unknown", "is_known"}),
    "multiple": frozenset({"contains", "not_contains", "contains_any", "contains_none", "is_unknown", "is_known"}),
    "derived": frozenset({"is_true", "is_false", "is_unknown", "is_known"}),
}
"""The operators that fit each kind of fact (a question's type, or a derived fact)."""


def atom_problems(
    atom: Condition,
    questions: Mapping[str, Question],
    derived: Collection[str],
    parameters: Collection[str] | None,
) -> list[tuple[str, str]]:
    """What is wrong with one atom, as (message, finding code): the check for rule atoms and skip conditions alike.

    The fact must be a question (or a derived fact), the operator must fit its type, a value
    must be one the question allows, a parameter must exist (`parameters` None: none may be used).
    """
    fact, op = atom.fact, atom.op
    assert fact is not None and op is not None
    question = questions.get(fact)
    if question is None and fact not in derived:
        where = "a question id in knowledge/questionnaire.yaml" + (" nor a derived fact of any rule" if derived else "")
        return [(f"unknown fact: not {where}", "unknown-reference")]
    kind = "derived" if question is None else question.type
    if kind == "text":
        return [("free-text answers cannot be used in conditions", "schema")]
    if op not in OPS_BY_TYPE[kind]:
        return [(f"operator `{op}` does not fit a {kind} fact; use one of {sorted(OPS_BY_TYPE[kind])}", "schema")]
    if op in UNARY_OPS:
        return []
    if atom.param is not None:
        if parameters is None:
            return [(f"parameters such as `{atom.param}` cannot be used here; write the value", "schema")]
        if atom.param not in parameters:
            return [(f"unknown parameter `{atom.param}`; define it in rules/parameters.yaml", "unknown-reference")]
        if kind != "number":
            return [("parameters are numbers; compare them only with number facts", "schema")]
        return []
    value = atom.value
    assert question is not None
    if kind == "number":
        if not isinstance(value, int | float):
            return [(f"expected a number in {question.unit}, such as `3`; got {value!r}", "schema")]
        if not math.isfinite(value):
            return [(f"expected a finite number in {question.unit}, such as `3`; got {value!r}", "schema")]
        if question.min is not None and question.max is not None and not question.min <= value <= question.max:
            return [
                (f"{value} is outside the question's range {question.min}-{question.max} {question.unit}", "schema")
            ]
        return []
    wants_list = op in ("in", "not_in", "contains_any", "contains_none")
    if wants_list != isinstance(value, list):
        return [(f"`{op}` needs {'a list of choices' if wants_list else 'one choice'}; got {value!r}", "schema")]
    return [
        (f"`{v}` is not a choice of this question; choices are {list(question.values)}", "schema")
        for v in (value if isinstance(value, list) else [value])
        if v not in question.values
    ]


def load_questionnaire(path: Path, conditions: dict[str, Term], treatments: dict[str, Term]) -> Questionnaire:
    """Load questionnaire.yaml, expand vocabulary options and treatment history, check ids and skip rules."""
    raw = load_file(QuestionnaireFile, path, KnowledgeError, kind="question")
    problems: list[Problem] = []
    questions: dict[str, Question] = {}
    vocab = {"conditions": conditions, "treatments": treatments}
    for section in raw.sections:
        expanded = list(section.questions)
        if section.treatment_history:
            expanded += [q for t in treatments.values() for q in _treatment_questions(t, section.id)]
        for q in expanded:
            update: dict[str, Any] = {"section": section.id}
            if q.options_from:
                update["options"] = [Option(value=t.id, label=t.label) for t in vocab[q.options_from].values()]
            q = q.model_copy(update=update)
            if q.id in questions:
                problems.append(Problem(str(path), f"question {q.id}", "id", "this question id is used twice"))
            questions[q.id] = q
    for q in questions.values():
        if q.ask_if is None:
            continue
        order = list(questions)
        for atom in q.ask_if.atoms():
            field = f"ask_if: {atom.fact}"
            if atom.fact in questions and order.index(atom.fact) > order.index(q.id):
                problems.append(Problem(str(path), f"question {q.id}", field, "refers to a question asked later"))
                continue
            for message, code in atom_problems(atom, questions, (), None):
                problems.append(Problem(str(path), f"question {q.id}", field, message, code))
    if problems:
        raise KnowledgeError(problems)
    sections = [s.model_copy(update={"questions": []}) for s in raw.sections]
    return Questionnaire(sections=sections, questions=questions)


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expected(q: Question) -> str:
    """What a valid answer to `q` looks like, in words, for error messages."""
    unknown = ", or 'unknown'" if q.allow_unknown else ""
    if q.type == "number":
        kind = "a whole number" if q.integer else "a number"
        return f"{kind} from {q.min:g} to {q.max:g} ({q.unit}){unknown}"
    if q.type == "yes_no":
        return "'yes', 'no' or 'unknown' (quote them in YAML: a bare yes is read as true)"
    if q.type == "text":
        return f"text of at most {q.max_length} characters"
    choices = ", ".join(q.values)
    if q.type == "multiple":
        return f"a list of choices from: {choices} (an empty list [] means none){unknown}"
    return f"one of: {choices}{unknown}"


def _checked(q: Question) -> WrapValidator:
    """Replace pydantic's union-by-union errors with one message that says what is expected."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            checked = handler(value)
        except ValidationError as exc:
            got = short_repr(value) + ("" if isinstance(value, dict | list) else f" ({type(value).__name__})")
            if q.type == "multiple" and isinstance(value, list):
                strays = [v for v in value if not isinstance(v, str) or v not in q.values]
                if strays and len(strays) < len(value):
                    got += f", where {', '.join(short_repr(v, 30) for v in strays)} is not one of the choices"
            raise PydanticCustomError(
                "answer", "expected {expected}; got {got}", {"expected": expected(q), "got": got}
            ) from exc
        if isinstance(checked, list) and len(set(checked)) != len(checked):
            raise PydanticCustomError("answer", "lists the same choice twice; give each choice once")
        return checked

    return WrapValidator(check)


def _field_type(q: Question) -> tuple[Any, Any]:
    """The strict pydantic type and default for one question."""
    unknown = Literal["unknown"]
    if q.type == "text":
        return (Annotated[str, Field(max_length=q.max_length), _checked(q)], Field(default="", description=q.prompt))
    if q.type == "number":
        number_type: Any = int if q.integer else int | float
        constrained: Any = Annotated[number_type, Field(ge=q.min, le=q.max, allow_inf_nan=False)]
        base: Any = constrained | unknown
        description = f"{q.prompt} ({q.unit})"
    else:
        choices: Any = Literal[tuple(q.values)]
        base = (list[choices] if q.type == "multiple" else choices) | unknown
        description = q.prompt
    return (Annotated[base, _checked(q)], Field(default=UNKNOWN, description=description))


class AnswersBase(BaseModel):
    """Strict answers: no coercion, unknown keys rejected, missing answers are 'unknown'."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def build_answers_model(questionnaire: Questionnaire) -> type[BaseModel]:
    fields = {q.id: _field_type(q) for q in questionnaire.questions.values()}
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "Answers", __base__=AnswersBase, __doc__=AnswersBase.__doc__, **fields
    )
    return model
