"""`pain-sdm evaluate` and `pain-sdm schema`, through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli

from engine.evaluation.aid import DecisionAid
from engine.model.knowledge import PROCEDURE_IDS
from engine.presentation.report import STATUS_LABELS


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_evaluates_in_json(example: Path) -> None:
    done = run_cli("evaluate", str(example), "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["schema"] == "pain-sdm/result/1"
    assert [o["procedure"] for o in result["options"]] == list(PROCEDURE_IDS)
    conservative = result["options"][0]
    assert conservative["status"] == "candidate"
    for option in result["options"]:
        assert option["reasons"], option["procedure"]
        for reason in option["reasons"]:
            assert reason["rule_id"] and "rule_version" in reason and "facts" in reason


@pytest.mark.parametrize("fmt", ["text", "markdown"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_evaluates_in_text_and_markdown(example: Path, fmt: str) -> None:
    done = run_cli("evaluate", str(example), "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert "discussion aid" in done.stdout
    assert "Continuing current care" in done.stdout
    assert any(label in done.stdout or label.upper() in done.stdout for label in STATUS_LABELS.values())


def test_profiles_change_the_result_and_say_so() -> None:
    example = str(ROOT / "examples/facet-back-pain.yaml")
    medicare = json.loads(run_cli("evaluate", example, "-f", "json", "--profile", "us-medicare").stdout)
    consensus = json.loads(run_cli("evaluate", example, "-f", "json", "--profile", "consensus").stdout)
    rfa = {r["profile"]: r for r in (medicare, consensus)}
    status = {
        p: next(o for o in r["options"] if o["procedure"] == "radiofrequency_ablation")["status"]
        for p, r in rfa.items()
    }
    assert status == {"us-medicare": "not_indicated", "consensus": "candidate"}
    diff = next(d for d in medicare["profile_differences"] if d["procedure"] == "radiofrequency_ablation")
    assert diff["profile"] in ("consensus", "uk-nice") and diff["status"] == "candidate"
    assert diff["parameters"]["mbb_positive_percent"]["us-medicare"] == 80


def test_unknown_profile_is_a_usage_error() -> None:
    done = run_cli("evaluate", str(EXAMPLES[0]), "--profile", "mars")
    assert done.returncode == 2
    assert "unknown profile `mars`" in done.stderr


def test_bad_answers_list_every_problem_by_field_and_write_nothing(tmp_path: Path) -> None:
    answers = tmp_path / "bad.yaml"
    answers.write_text(
        "pain_duration_months: '3'\npain_intensity: 11\npregnant: yes\nshoe_size: 9\nconditions: [sciatica, flu]\n"
    )
    out = tmp_path / "out.json"
    done = run_cli("evaluate", str(answers), "-o", str(out))
    assert done.returncode == 2
    for field in ("pain_duration_months", "pain_intensity", "pregnant", "shoe_size", "conditions"):
        assert f"field `{field}`" in done.stderr
    assert "5 problems" in done.stderr
    assert "expected a number from 3 to 1200 (months)" in done.stderr
    assert "where 'flu' is not one of the choices" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [answers]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        (b"- just\n- a list\n", "expected a mapping"),
        (b"a: [1, 2\n", "not valid YAML"),
        (b'{"pain_intensity": 5,}', "not valid JSON"),
        (b"a: &x [1]\nb: *x\n", "aliases"),
        (b"\xff\xfe\xfa", "not UTF-8"),
    ],
    ids=["empty", "binary", "list", "yaml_syntax", "json_syntax", "alias", "not_utf8"],
)
def test_unreadable_answer_files_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_bytes(content)
    done = run_cli("evaluate", str(answers))
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_missing_answers_file_exits_2(tmp_path: Path) -> None:
    done = run_cli("evaluate", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "nope.yaml" in done.stderr


def test_output_file_is_not_overwritten_without_force(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    out.write_text("keep me")
    done = run_cli("evaluate", str(EXAMPLES[0]), "-f", "json", "-o", str(out))
    assert done.returncode != 0 and "--force" in done.stderr
    assert out.read_text() == "keep me"
    done = run_cli("evaluate", str(EXAMPLES[0]), "-f", "json", "-o", str(out), "--force")
    assert done.returncode == 0
    assert json.loads(out.read_text())["schema"] == "pain-sdm/result/1"


def test_schema_answers_is_generated_from_the_questionnaire(aid) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("schema", "answers")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert set(schema["properties"]) == set(aid.questionnaire.questions) | {"answers_version"}
    assert schema["additionalProperties"] is False
    duration = json.dumps(schema["properties"]["pain_duration_months"])
    assert "1200" in duration and "unknown" in duration
    assert schema["properties"]["answers_version"]["maximum"] == 2


def test_schema_result_describes_the_json_output() -> None:
    done = run_cli("schema", "result")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert {"options", "rulebook_version", "urgent_assessment", "trace"} <= set(schema["properties"])


def test_answers_accept_json_and_a_wrapped_session(tmp_path: Path) -> None:
    answers = yaml.safe_load(EXAMPLES[0].read_text())
    (tmp_path / "a.json").write_text(json.dumps(answers))
    (tmp_path / "s.json").write_text(json.dumps({"answers": answers}))
    first = json.loads(run_cli("evaluate", str(tmp_path / "a.json"), "-f", "json").stdout)
    second = json.loads(run_cli("evaluate", str(tmp_path / "s.json"), "-f", "json").stdout)
    assert first["options"] == second["options"]


@pytest.mark.parametrize(
    ("example", "profile", "shown", "not_shown"),
    [
        # NICE advises against epidurals for claudication: closed here, open elsewhere, so the dispute shows.
        ("stenosis-claudication.yaml", "uk-nice", ["esi-neurogenic-claudication"], ["pump-survival"]),
        ("stenosis-claudication.yaml", "consensus", ["esi-neurogenic-claudication"], ["pump-survival"]),
        # Sciatica without claudication: the claudication dispute is not about them (issue 12 section 3), and
        # past every profile's wait for an epidural, neither is the dispute about that wait.
        (
            "sciatica.yaml",
            "consensus",
            ["spine-injections-at-all"],
            ["esi-neurogenic-claudication", "esi-conservative-wait"],
        ),
        ("sciatica.yaml", "us-commercial", [], ["esi-neurogenic-claudication", "esi-conservative-wait"]),
        ("failed-back-surgery.yaml", "consensus", [], ["esi-neurogenic-claudication", "esi-conservative-wait"]),
        # A facet patient: the block thresholds matter; epidural and pump disputes do not.
        ("facet-back-pain.yaml", "consensus", ["mbb-before-rfa"], ["esi-neurogenic-claudication", "pump-survival"]),
        ("cancer-pain.yaml", "consensus", ["pump-survival"], ["mbb-before-rfa", "spine-injections-at-all"]),
        # Every procedure deferred and no profile differs: no dispute is about this patient's choice now.
        ("red-flags.yaml", "consensus", [], ["spine-injections-at-all", "anticoagulant-holds"]),
    ],
)
def test_only_disputes_that_bear_on_the_patients_options_are_shown(
    aid: DecisionAid, example: str, profile: str, shown: list[str], not_shown: list[str]
) -> None:
    result = aid.evaluate(aid.read_answers(ROOT / "examples" / example), profile)
    for dispute in shown:
        assert dispute in result.disagreements
    for dispute in not_shown:
        assert dispute not in result.disagreements


def test_a_dispute_whose_condition_the_answers_rule_out_under_every_profile_is_left_out(aid: DecisionAid) -> None:
    """The wait dispute's `when` is read under each profile's parameters, three-valued: 3 weeks of care is past
    us-commercial's 2-week wait but short of the others' 4, so it shows even there; 10 weeks is past them all;
    an unanswered question (how many epidurals this year) may bear on the patient, so it shows."""
    answers = yaml.safe_load((ROOT / "examples" / "sciatica.yaml").read_text())
    short = answers | {"physical_therapy_weeks": 3, "nsaids_weeks": 3}
    assert "esi-conservative-wait" in aid.evaluate(aid.parse_answers(short), "us-commercial").disagreements
    assert "esi-conservative-wait" not in aid.evaluate(aid.parse_answers(answers), "us-commercial").disagreements
    unsure = answers | {"spinal_injections_tried": "yes"}  # the count of this year's epidurals not given
    assert "esi-conservative-wait" in aid.evaluate(aid.parse_answers(unsure), "consensus").disagreements
    assert aid.summarize(aid.parse_answers(short), "us-commercial")["disagreements"] == (
        aid.evaluate(aid.parse_answers(short), "us-commercial", compare_profiles=False).disagreements
    )
