"""Answers as a FHIR QuestionnaireResponse and back: exact round trip, strict import, every command reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, run_cli
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from test_golden import CASES

from engine.errors import AnswersError
from engine.evaluation.aid import DecisionAid
from engine.fhir.response import build_response, given_answers

SCIATICA = EXAMPLES[[p.stem for p in EXAMPLES].index("sciatica")]


def response_of(aid: DecisionAid, answers: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    model = aid.parse_answers(answers)
    data: dict[str, Any] = json.loads(
        build_response(aid.questionnaire, model, aid.rulebook.version, **kwargs).model_dump_json(exclude_none=True)
    )
    return data


def items(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["linkId"]: i for group in response["item"] for i in group["item"]}


ANSWER_SETS = [(p.stem, yaml.safe_load(p.read_text())) for p in EXAMPLES] + [(c.id, c.answers) for c in CASES]


@pytest.mark.parametrize(("name", "answers"), ANSWER_SETS, ids=[n for n, _ in ANSWER_SETS])
def test_answers_to_response_to_answers_is_exact_for_every_example_and_golden_case(
    aid: DecisionAid, name: str, answers: dict[str, Any]
) -> None:
    model = aid.parse_answers(answers, name)
    response = response_of(aid, answers)
    QuestionnaireResponse.model_validate(response)
    back = aid.parse_answers(json.loads(json.dumps(response)), name)
    assert given_answers(back) == given_answers(model)
    assert {k: (v, type(v)) for k, v in back} == {k: (v, type(v)) for k, v in model}, "same values, same types"


def test_not_sure_is_the_data_absent_reason_on_choices_and_numbers(aid: DecisionAid) -> None:
    found = items(response_of(aid, {"pain_region": "unknown", "mbb_count": "unknown", "red_flags": "unknown"}))
    dar = {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "asked-unknown"}
    assert {k: found["pain_region"]["answer"][0]["valueCoding"][k] for k in dar} == dar
    assert {k: found["red_flags"]["answer"][0]["valueCoding"][k] for k in dar} == dar
    (number,) = found["mbb_count"]["answer"]
    assert "valueInteger" not in number
    assert number["_valueInteger"]["extension"][0] == {
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "asked-unknown",
    }


def test_none_of_these_is_its_own_exclusive_answer(aid: DecisionAid) -> None:
    response = response_of(aid, {"red_flags": []})
    assert [a["valueCoding"]["code"] for a in items(response)["red_flags"]["answer"]] == ["none"]
    assert aid.parse_answers(response).red_flags == []  # type: ignore[attr-defined]


def test_the_patient_is_a_label_never_a_name(aid: DecisionAid) -> None:
    assert "subject" not in response_of(aid, {})
    subject = response_of(aid, {}, patient_label="Clinic ref 42")["subject"]
    assert subject == {
        "type": "Patient",
        "identifier": {"system": "https://pain-sdm.invalid/fhir/patient-label", "value": "Clinic ref 42"},
    }


def test_an_answer_to_a_question_the_skip_condition_hides_is_not_written(aid: DecisionAid) -> None:
    with pytest.raises(AnswersError, match="item esi_count_12m.*asked only when `spinal_injections_tried` is yes"):
        response_of(aid, {"spinal_injections_tried": "no", "esi_count_12m": 0})


def bad(response: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "response.json"
    path.write_text(json.dumps(response))
    done = run_cli("evaluate", str(path))
    return done.returncode, done.stderr


def with_item(response: dict[str, Any], section: int, item: dict[str, Any]) -> dict[str, Any]:
    response["item"][section]["item"].append(item)
    return response


def test_import_refuses_unknown_linkids_wrong_types_and_hidden_answers_naming_each_item(
    aid: DecisionAid, tmp_path: Path
) -> None:
    response = response_of(aid, yaml.safe_load(SCIATICA.read_text()))
    with_item(response, 0, {"linkId": "pain_score", "answer": [{"valueInteger": 3}]})
    items(response)["pain_region"]["answer"] = [{"valueString": "low_back"}]
    items(response)["pain_intensity"]["answer"] = [{"valueDecimal": 6.5}]
    with_item(response, 3, {"linkId": "esi_last_relief_months", "answer": [{"valueDecimal": 3}]})
    code, err = bad(response, tmp_path)
    assert code == 2
    assert "item pain_score, field `linkId`: no question of pain-sdm's questionnaire has this linkId" in err
    assert "item pain_region, field `answer`: expected valueCoding; got valueString" in err
    assert "item pain_intensity, field `answer`: expected valueInteger; got valueDecimal" in err
    assert "item esi_last_relief_months, field `answer`: answers a question the questionnaire hides here" in err
    assert "Traceback" not in err


OWN = "https://pain-sdm.invalid/fhir/CodeSystem/"
NOT_SURE = {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "asked-unknown"}
REFUSED = [
    ("pain_region", [{"valueCoding": {"system": "x", "code": "knee"}}], "is not an answer here"),
    ("pain_region", [{"valueCoding": {"system": OWN + "pain_region", "code": "neck"}}] * 2, "has 2 answers; this"),
    ("age_years", [{"valueInteger": 130}], "age_years"),
    ("age_years", [{}], "an answer without a value"),
    ("red_flags", [{"valueCoding": NOT_SURE}, {"valueCoding": {"system": OWN + "red_flags", "code": "new_weakness"}}],
     "answers on their own"),
]  # fmt: skip


@pytest.mark.parametrize(("link", "answer", "message"), REFUSED)
def test_import_refuses_codes_counts_and_values_the_question_does_not_take(
    aid: DecisionAid, link: str, answer: list[dict[str, Any]], message: str
) -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": link, "answer": answer}],
    }
    with pytest.raises(AnswersError, match=message):
        aid.parse_answers(response, "r.json")


def test_import_refuses_another_questionnaire_a_withdrawn_response_and_other_resources(aid: DecisionAid) -> None:
    other = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://x/Questionnaire/phq9",
    }
    with pytest.raises(AnswersError, match="answers the questionnaire http://x/Questionnaire/phq9, not pain-sdm's"):
        aid.parse_answers(other)
    with pytest.raises(AnswersError, match="status entered-in-error cannot be used"):
        aid.parse_answers({"resourceType": "QuestionnaireResponse", "status": "entered-in-error"})
    with pytest.raises(AnswersError, match="a FHIR Patient is not answers"):
        aid.parse_answers({"resourceType": "Patient"})
    with pytest.raises(AnswersError, match="not valid FHIR"):
        aid.parse_answers({"resourceType": "QuestionnaireResponse"})


def test_fhir_response_then_evaluate_and_summary_give_what_the_answers_file_gives(tmp_path: Path) -> None:
    out = tmp_path / "sciatica.fhir.json"
    done = run_cli("fhir", "response", str(SCIATICA), "-o", str(out))
    assert done.returncode == 0, done.stderr
    QuestionnaireResponse.model_validate_json(out.read_text())
    direct = json.loads(run_cli("evaluate", str(SCIATICA), "--format", "json").stdout)
    via_fhir = json.loads(run_cli("evaluate", str(out), "--format", "json").stdout)
    assert via_fhir == direct
    summary = tmp_path / "summary.md"
    done = run_cli("summary", str(out), "-o", str(summary), "--format", "md")
    assert done.returncode == 0, done.stderr
    assert "Your pain treatment options" in summary.read_text()


def test_batch_reads_questionnaire_responses_one_per_line(aid: DecisionAid, tmp_path: Path) -> None:
    good = response_of(aid, yaml.safe_load(SCIATICA.read_text()))
    wrong = with_item(response_of(aid, {}) | {"item": [{"linkId": "section-about", "item": []}]}, 0, {"linkId": "x"})
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(good) + "\n" + json.dumps(wrong) + "\n")
    out = tmp_path / "out.jsonl"
    done = run_cli("evaluate", "--batch", str(source), "-o", str(out))
    assert done.returncode == 1
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["result"]["options"]["epidural_steroid_injection"]["status"] == "candidate"
    assert second["error"]["problems"] == [
        {"field": "linkId", "message": "no question of pain-sdm's questionnaire has this linkId"}
    ]
    assert "line 2, item x" in done.stderr


def test_a_saved_session_becomes_the_same_response_as_its_answers(tmp_path: Path) -> None:
    from engine.interview.session import Session, save_session

    answers = yaml.safe_load(SCIATICA.read_text())
    session_file = tmp_path / "session.json"
    save_session(Session(answers=answers, complete=True), session_file)
    outputs = []
    for source in (SCIATICA, session_file):
        out = tmp_path / f"{source.stem}.fhir.json"
        done = run_cli("fhir", "response", str(source), "-o", str(out))
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(out.read_text()))
    assert outputs[0]["item"] == outputs[1]["item"]
