"""The questionnaire as a FHIR R4 Questionnaire: generated from the one definition, loaded back whole.

The skip conditions are checked by meaning, not by shape: an enableWhen evaluator written here
from the FHIR specification (independent of engine/fhir) applies the exported Questionnaire to
exported responses, and must agree with the interview's own skip logic on every question.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import answers_strategy, run_cli
from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import KnowledgeError
from engine.evaluation.aid import DecisionAid
from engine.fhir.questionnaire import build_questionnaire, enable_when
from engine.fhir.response import build_response
from engine.interview.walkthrough import is_asked, prune
from engine.model.conditions import Condition
from engine.model.questionnaire import Option, Question

DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        out.append(item)
        out += walk(item.get("item", []))
    return out


@pytest.fixture(scope="module")
def exported(aid: DecisionAid, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Questionnaire as `pain-sdm fhir questionnaire -o FILE` writes it."""
    out = tmp_path_factory.mktemp("fhir") / "questionnaire.json"
    done = run_cli("fhir", "questionnaire", "-o", str(out))
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def questions_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["linkId"]: i for i in walk(data["item"]) if i["type"] not in ("group", "display")}


def test_the_export_loads_back_with_fhir_resources_and_carries_the_rulebook_version(
    aid: DecisionAid, exported: dict[str, Any]
) -> None:
    loaded = FhirQuestionnaire.model_validate(exported)
    assert loaded.version == aid.rulebook.version
    assert loaded.status == "active"
    assert loaded.url and loaded.url.startswith("https://")


def test_every_question_is_one_item_with_its_linkid_type_text_and_required(
    aid: DecisionAid, exported: dict[str, Any]
) -> None:
    items = questions_of(exported)
    assert list(items) == list(aid.questionnaire.questions), "every question once, in asking order"
    kinds = {"single": "choice", "multiple": "choice", "yes_no": "choice"}
    for qid, q in aid.questionnaire.questions.items():
        item = items[qid]
        assert item["text"] == q.prompt
        if q.type == "text":
            assert item["type"] in ("string", "text") and item["maxLength"] == q.max_length
        elif q.type == "number":
            assert item["type"] == ("integer" if q.integer else "decimal")
        else:
            assert item["type"] == kinds[q.type]
        assert item["required"] is False, "a missing answer is an unknown answer: nothing is required"
        assert item.get("repeats", False) is (q.type == "multiple")


def test_every_option_is_an_answer_option_with_value_and_label_plus_not_sure(
    aid: DecisionAid, exported: dict[str, Any]
) -> None:
    items = questions_of(exported)
    for qid, q in aid.questionnaire.questions.items():
        if q.type in ("number", "text"):
            assert "answerOption" not in items[qid]
            continue
        codings = [o["valueCoding"] for o in items[qid]["answerOption"]]
        if q.type == "yes_no":
            assert [(c["code"], c["display"]) for c in codings[:2]] == [("Y", "Yes"), ("N", "No")]
        else:
            assert [(c["code"], c["display"]) for c in codings[: len(q.options)]] == [
                (o.value, o.label) for o in q.options
            ]
        assert codings[-1] == {"system": DAR, "code": "asked-unknown", "display": "Not sure"}
        if q.type == "multiple":
            exclusive = [o for o in items[qid]["answerOption"] if o.get("extension")]
            assert [o["valueCoding"]["code"] for o in exclusive] == ["none", "asked-unknown"]


def test_numbers_carry_min_max_and_ucum_unit_extensions(aid: DecisionAid, exported: dict[str, Any]) -> None:
    items = questions_of(exported)
    for qid, q in aid.questionnaire.questions.items():
        if q.type != "number":
            continue
        ext = {e["url"].rsplit("/", 1)[1]: e for e in items[qid]["extension"]}
        field = "valueInteger" if q.integer else "valueDecimal"
        assert ext["minValue"][field] == q.min and ext["maxValue"][field] == q.max
        unit = ext["questionnaire-unit"]["valueCoding"]
        assert unit["system"] == "http://unitsofmeasure.org" and unit["display"] == q.unit
    by_unit = {q.unit: questions_of(exported)[q.id] for q in aid.questionnaire.questions.values() if q.unit}
    assert by_unit["months"]["extension"][2]["valueCoding"]["code"] == "mo"
    assert by_unit["% relief"]["extension"][2]["valueCoding"]["code"] == "%"


def test_help_text_is_a_help_display_item(aid: DecisionAid, exported: dict[str, Any]) -> None:
    items = questions_of(exported)
    for qid, q in aid.questionnaire.questions.items():
        helps = [i for i in items[qid].get("item", []) if i["type"] == "display"]
        if not q.help:
            assert not helps
            continue
        (shown,) = helps
        assert shown["text"] == q.help
        assert shown["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "help"


def test_every_skip_condition_is_an_enable_when(aid: DecisionAid, exported: dict[str, Any]) -> None:
    items = questions_of(exported)
    for qid, q in aid.questionnaire.questions.items():
        conditions = items[qid].get("enableWhen", [])
        assert bool(conditions) == (q.ask_if is not None), qid
        assert ("enableBehavior" in items[qid]) == (len(conditions) > 1), qid
        for when in conditions:
            assert when["question"] in items and list(items).index(when["question"]) < list(items).index(qid)


def test_a_condition_list_reads_as_any_of_its_values(aid: DecisionAid, exported: dict[str, Any]) -> None:
    claudication = questions_of(exported)["neurogenic_claudication"]
    assert claudication["enableBehavior"] == "any"
    assert [(w["question"], w["operator"], w["answerCoding"]["code"]) for w in claudication["enableWhen"]] == [
        ("pain_region", "=", "low_back"),
        ("pain_region", "=", "mid_back"),
        ("pain_pattern", "=", "claudication"),
    ]
    relief = questions_of(exported)["esi_last_relief_percent"]["enableWhen"]
    assert relief == [{"question": "esi_count_12m", "operator": ">=", "answerInteger": 1}]


def fhir_answers(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {i["linkId"]: i["answer"] for i in walk(response.get("item", [])) if "answer" in i}


def answer_matches(answer: dict[str, Any], when: dict[str, Any]) -> bool:
    """One enableWhen against one answer, as the FHIR R4 specification defines the operators."""
    key = next(k for k in when if k.startswith("answer"))
    wanted = when[key]
    value = answer.get("value" + key[len("answer") :])
    if value is None:
        return False  # an answer without a value (data-absent-reason) matches nothing
    if key == "answerCoding":
        return bool((value["system"], value["code"]) == (wanted["system"], wanted["code"]))
    a, b = Decimal(str(value)), Decimal(str(wanted))
    return {"=": a == b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[when["operator"]]


def enabled(item: dict[str, Any], answers: dict[str, list[dict[str, Any]]]) -> bool:
    conditions = item.get("enableWhen")
    if not conditions:
        return True
    truths = []
    for when in conditions:
        given = answers.get(when["question"], [])
        if when["operator"] == "exists":  # "whether an answer exists" equals answerBoolean
            truths.append(bool(given) == when["answerBoolean"])
        elif when["operator"] == "!=":  # "no answer has a value equal to" the enableWhen answer
            truths.append(not any(answer_matches(a, when | {"operator": "="}) for a in given))
        else:  # "at least one answer has a value" that compares so
            truths.append(any(answer_matches(a, when) for a in given))
    return all(truths) if item.get("enableBehavior", "all") == "all" else any(truths)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_exported_enable_when_agrees_with_the_interview_on_every_question(
    aid: DecisionAid, exported: dict[str, Any], data: st.DataObject
) -> None:
    answers = prune(aid.questionnaire, data.draw(answers_strategy(aid)))
    model = aid.parse_answers(answers)
    response = json.loads(build_response(aid.questionnaire, model, aid.rulebook.version).model_dump_json())
    given = fhir_answers(response)
    for qid, item in questions_of(exported).items():
        question = aid.questionnaire.questions[qid]
        assert enabled(item, given) is is_asked(question, answers), (qid, answers)


def test_every_example_s_asked_questions_are_enabled_in_fhir(aid: DecisionAid, exported: dict[str, Any]) -> None:
    import yaml

    for path in sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.yaml")):
        answers = yaml.safe_load(path.read_text())
        response = json.loads(
            build_response(aid.questionnaire, aid.parse_answers(answers), aid.rulebook.version).model_dump_json()
        )
        given = fhir_answers(response)
        for qid, item in questions_of(exported).items():
            assert enabled(item, given) is is_asked(aid.questionnaire.questions[qid], answers), (path.name, qid)


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ({"fact": "n", "op": "is_unknown"}, "is_unknown` on a number"),
        ({"any": [{"all": [{"fact": "a", "op": "==", "value": "yes"}, {"fact": "b", "op": "==", "value": "yes"}]},
                  {"fact": "b", "op": "==", "value": "no"}]}, "`any` whose parts are `all`"),
    ],
)  # fmt: skip
def test_a_skip_condition_flat_enable_when_cannot_say_is_refused_naming_the_question(
    condition: dict[str, Any], words: str
) -> None:
    a = Question(id="a", type="yes_no", prompt="A?")
    b = Question(id="b", type="yes_no", prompt="B?")
    pain_region = Question(id="pain_region", type="single", prompt="Where?", options=[Option(value="neck", label="N")])
    asked = Question(id="c", type="yes_no", prompt="C?", ask_if=Condition.model_validate(condition))
    n = Question(id="n", type="number", prompt="N?", unit="times", min=0, max=9)
    questions = {"a": a, "b": b, "n": n, "pain_region": pain_region, "c": asked}
    from engine.model.questionnaire import Questionnaire, Section

    questionnaire = Questionnaire(
        sections=[Section(id="s", title="S")],
        questions={k: q.model_copy(update={"section": "s"}) for k, q in questions.items()},
    )
    with pytest.raises(KnowledgeError) as caught:
        build_questionnaire(questionnaire, "v1")
    assert "question c" in str(caught.value) and words in str(caught.value)


def test_not_equal_on_a_choice_is_any_other_choice(aid: DecisionAid) -> None:
    a = Question(id="a", type="yes_no", prompt="A?")
    asked = Question(id="c", type="yes_no", prompt="C?", ask_if=Condition(fact="a", op="!=", value="yes"))
    when = enable_when(asked, {"a": a, "c": asked})
    assert when is not None and when.behavior is None
    assert [(w.operator, w.answerCoding.code) for w in when.conditions if w.answerCoding] == [("=", "N")]


SMALL: dict[str, dict[str, Any]] = {
    "a": {"id": "a", "type": "yes_no", "prompt": "A?"},
    "m": {"id": "m", "type": "multiple", "prompt": "M?",
          "options": [{"value": "x", "label": "X"}, {"value": "y", "label": "Y"}]},
    "n": {"id": "n", "type": "number", "prompt": "N?", "unit": "times", "min": 0, "max": 9, "integer": True},
}  # fmt: skip
CONDITIONS = [
    {"fact": "m", "op": "not_contains", "value": "x"},
    {"fact": "m", "op": "contains_none", "value": ["x", "y"]},
    {"fact": "m", "op": "contains_any", "value": ["x", "y"]},
    {"fact": "m", "op": "is_known"},
    {"fact": "m", "op": "is_unknown"},
    {"fact": "a", "op": "!=", "value": "yes"},
    {"not": {"fact": "a", "op": "==", "value": "no"}},
    {"all": [{"fact": "a", "op": "==", "value": "yes"}, {"fact": "m", "op": "not_contains", "value": "y"}]},
    {"any": [{"fact": "a", "op": "in", "value": ["yes", "no"]}, {"fact": "n", "op": ">=", "value": 2}]},
    {"all": [{"fact": "n", "op": "<", "value": 3}, {"fact": "a", "op": "is_known"}]},
]


@pytest.mark.parametrize("condition", CONDITIONS, ids=[json.dumps(c) for c in CONDITIONS])
def test_every_operator_fhir_can_say_agrees_with_the_interview_on_every_answer(condition: dict[str, Any]) -> None:
    """Every answer to the questions read (left out, not sure, none, each choice) enables exactly when asked."""
    from itertools import product

    from engine.model.questionnaire import Questionnaire, Section

    raw = SMALL | {"c": {"id": "c", "type": "yes_no", "prompt": "C?", "ask_if": condition}}
    questions = {k: Question.model_validate(v | {"section": "s"}) for k, v in raw.items()}
    questionnaire = Questionnaire(sections=[Section(id="s", title="S")], questions=questions)
    items = questions_of(json.loads(build_questionnaire(questionnaire, "v1").model_dump_json(exclude_none=True)))
    missing = object()
    choices = {"a": [missing, "unknown", "yes", "no"], "m": [missing, "unknown", [], ["x"], ["y"], ["x", "y"]]}
    choices["n"] = [missing, "unknown", 0, 2, 5]
    model = questionnaire.answers_model
    for combo in product(*choices.values()):
        answers = {k: v for k, v in zip(choices, combo, strict=True) if v is not missing}
        response = json.loads(build_response(questionnaire, model(**answers), "v1").model_dump_json())
        assert enabled(items["c"], fhir_answers(response)) is is_asked(questions["c"], answers), answers
