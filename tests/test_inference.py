"""The durable_rules adapter: the same firings as the independent evaluator, and safe to run for ever.

The adapter creates each ruleset in durable's native engine, as `durable.engine.Host` would, and
drives its native handle (see engine/evaluation/inference.py); these tests
hold it to what was measured about durable_rules: one session serves every patient as a fresh
one would (at most 1,024 may live), deleting a session in which no action ran crashes the
process, an action's error must surface, and an engine belongs to one thread.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import yaml
from conftest import ROOT, answers_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.compiler import CompiledRuleset
from engine.evaluation.inference import DurableEngine, PatientEncoder, _number_text, to_json
from engine.model.facts import flatten, unflatten
from engine.model.questionnaire import UNKNOWN

SESSION_LIMIT = 1024


def patient(aid: DecisionAid, answers: dict[str, Any]) -> dict[str, Any]:
    return flatten(aid.parse_answers(answers).model_dump(), aid.questionnaire)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_durable_fires_what_the_independent_evaluator_fires(aid: DecisionAid, data: st.DataObject) -> None:
    answers = aid.parse_answers(data.draw(answers_strategy(aid))).model_dump()
    profile = data.draw(st.sampled_from(sorted(aid.rulebook.profiles)))
    durable = aid.engine(profile).run(flatten(answers, aid.questionnaire))
    independent = aid.evaluator(profile).firings(answers)
    assert {f.key for f in durable} == {f.key for f in independent}
    derived = {f.rule_id: f.holds for f in independent if f.rule_id in aid.rulebook.derived_facts.values()}
    for firing in durable:  # a rule that read a derived fact shows the value it read ("unknown" if left unknown)
        for fact, value in firing.facts.items():
            if fact in aid.rulebook.derived_facts:
                decided = derived.get(aid.rulebook.derived_facts[fact], UNKNOWN)
                assert decided == value and type(decided) is type(value), (firing.rule_id, fact, value)


@pytest.mark.parametrize("tiny", [1e-05, 5e-324, 2e-07])
def test_a_number_python_writes_with_a_bare_exponent_is_read_correctly(aid: DecisionAid, tiny: float) -> None:
    """durable misread `1e-05` (no decimal point): no rule fired and deleting the session crashed."""
    decimals = [q for q in aid.questionnaire.questions.values() if q.type == "number" and not q.integer]
    assert decimals, "the questionnaire has no question that takes a decimal number"
    for question in decimals:
        answers = aid.parse_answers({question.id: tiny}).model_dump()
        profile = aid.rulebook.default_profile
        durable = aid.engine(profile).run(flatten(answers, aid.questionnaire))
        assert {f.key for f in durable} == {f.key for f in aid.evaluator(profile).firings(answers)}


def test_more_patients_than_durable_keeps_sessions_for(aid: DecisionAid) -> None:
    engine = aid.engine(aid.rulebook.default_profile)
    fact = patient(aid, {"pain_duration_months": 6, "red_flags": []})
    first = engine.run(fact)
    for _ in range(SESSION_LIMIT + 100):
        assert engine.run(fact) == first


def test_one_session_serves_every_patient_as_a_fresh_session_would(aid: DecisionAid) -> None:
    """After every example patient has been through the aid's engines (one session each, which other tests
    use too), a patient fires there what it fires in a fresh engine's first session, on one profile's ruleset
    and on the joint one; between patients the session is empty."""
    patients = [aid.patient(aid.read_answers(path)) for path in sorted((ROOT / "examples").glob("*.yaml"))]
    single, joint = aid.engine(aid.rulebook.default_profile), aid.joint_engine()
    assert isinstance(single, DurableEngine) and isinstance(joint, DurableEngine)
    for one in patients:
        single.run_patient(one), joint.run_profiles(one)
    # a fresh engine costs a rule network's registration: one for each ruleset
    assert single.run_patient(patients[0]) == DurableEngine(
        aid.compiled(aid.rulebook.default_profile), aid.questionnaire
    ).run_patient(patients[0])
    assert joint.run_profiles(patients[1]) == DurableEngine(aid.joint(), aid.questionnaire).run_profiles(patients[1])
    assert single.held_facts() == joint.held_facts() == []


def test_a_patient_for_whom_no_rule_fires_does_not_crash_the_engine(aid: DecisionAid) -> None:
    compiled = aid.compiled(aid.rulebook.default_profile)
    empty = CompiledRuleset(
        name="no-rules", definition={}, branches={}, parameters={}, last_priority=compiled.last_priority
    )
    engine = DurableEngine(empty, aid.questionnaire)
    for _ in range(3):
        assert engine.run(patient(aid, {})) == []


def test_an_action_that_fails_raises_engine_error_and_the_engine_goes_on(
    aid: DecisionAid, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = aid.engine(aid.rulebook.default_profile)
    fact = patient(aid, {"pain_duration_months": 6, "pain_region": "low_back", "red_flags": []})
    expected = engine.run(fact)

    def broken(*args: Any) -> Any:
        raise ValueError("broken on purpose")

    monkeypatch.setattr("engine.evaluation.inference.unflatten", broken)
    with pytest.raises(EngineError, match="broken on purpose"):
        engine.run(fact)
    monkeypatch.undo()
    assert engine.run(fact) == expected


def test_an_engine_refuses_a_second_thread(aid: DecisionAid) -> None:
    engine = aid.engine(aid.rulebook.default_profile)
    errors: list[BaseException] = []

    def use() -> None:
        try:
            engine.run(patient(aid, {}))
        except EngineError as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "second thread" in str(errors[0])


def test_each_engine_has_its_own_native_ruleset_and_starts_no_timer_thread(aid: DecisionAid) -> None:
    threads = threading.active_count()
    first = DurableEngine(aid.compiled("consensus"), aid.questionnaire)
    second = DurableEngine(aid.compiled("consensus"), aid.questionnaire)
    assert first._handle != second._handle, "a native ruleset per engine, though both have the same name"
    answers = aid.unwrap_answers(yaml.safe_load((ROOT / "examples" / "sciatica.yaml").read_text()), "sciatica")
    assert first.run(patient(aid, answers)) == second.run(patient(aid, answers)) != []
    assert first.run(patient(aid, {})) == second.run(patient(aid, {}))
    assert threading.active_count() == threads, "no polling timer thread is ever started"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_patient_fact_written_once_is_the_flattened_fact(aid: DecisionAid, data: st.DataObject) -> None:
    """`PatientEncoder` writes the same fact as `to_json(flatten(...))`, and reads answers back as `unflatten`."""
    answers = aid.parse_answers(data.draw(answers_strategy(aid))).model_dump()
    flat = flatten(answers, aid.questionnaire)
    written = PatientEncoder(aid.questionnaire).encode(answers)
    assert json.loads("{" + written.text + "}") == json.loads(to_json(flat))
    assert "e-" not in to_json(flat) or "e-" in written.text
    for qid in aid.questionnaire.questions:
        if aid.questionnaire.questions[qid].type != "text":
            assert written.fact(qid) == unflatten(flat, qid, aid.questionnaire)


@pytest.mark.parametrize("value", [1e-05, 5e-324, 2.5e-07, 1e16, 0.1, 3])
def test_numbers_are_written_as_to_json_writes_them(value: float) -> None:
    assert _number_text(value) == to_json([value])[1:-1]
