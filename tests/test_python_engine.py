"""Issue 19 §1: the Python engine gives what durable_rules gives, so every supported Python gets the same results.

durable_rules 2.0.28 cannot load on Python 3.13 or later; there the Python engine runs the same
compiled ruleset. On a Python where both run, they are held equal firing for firing: the same
rules, in the same order, from the same branch, with the same facts; and so the same results.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ROOT, threshold_answers

from engine.audit.golden import load_cases
from engine.errors import EngineError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.compiler import Parts, compile_rulebook, joint_ruleset
from engine.evaluation.engines import DURABLE, ENGINE_VARIABLE, PYTHON, chosen_engine, durable_version
from engine.evaluation.inference import DurableEngine
from engine.evaluation.python_engine import PythonEngine, compile_test, condition_source
from engine.model.facts import flatten

BLOCK_DURABLE = textwrap.dedent(
    """
    # As on Python 3.13+: durable_rules' modules cannot be imported.
    import sys

    class _NoDurable:
        def find_spec(self, name, path=None, target=None):
            if name == "durable" or name.startswith("durable.") or name == "durable_rules_engine":
                raise ImportError("durable_rules cannot load here (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoDurable())
    """
)


@pytest.fixture(scope="module")
def python_aid() -> DecisionAid:
    return DecisionAid.load(engine=PYTHON)


def test_durable_rules_is_the_engine_wherever_it_loads(aid: DecisionAid) -> None:
    """The suite runs on durable_rules here (a Python before 3.13), so the tests test durable."""
    assert sys.version_info < (3, 13) and ENGINE_VARIABLE not in os.environ
    assert durable_version() == "2.0.28"
    assert aid.engine_choice == DURABLE and aid.engine_name == "durable_rules 2.0.28"
    assert chosen_engine("auto") == DURABLE


def test_the_engines_fire_alike_on_every_golden_case(aid: DecisionAid) -> None:
    engines = {
        p: (DurableEngine(aid.compiled(p), aid.questionnaire), PythonEngine(aid.compiled(p), aid.questionnaire))
        for p in aid.rulebook.profiles
    }
    for case in load_cases():
        patient = aid.patient(aid.parse_answers(case.answers, case.id))
        durable, python = engines[aid.rulebook.check_profile(case.profile)]
        assert python.run_patient(patient) == durable.run_patient(patient), case.id


@pytest.mark.parametrize("step", [pytest.param(4, id="a quarter"), pytest.param(1, id="all", marks=pytest.mark.slow)])
def test_the_joint_ruleset_fires_each_profiles_own_firings(aid: DecisionAid, step: int) -> None:
    """One run of every profile at once (what a comparison of profiles runs) gives, for each profile,
    exactly the firings of its own ruleset: the same rules, in the same order, with the same facts."""
    durable_joint = DurableEngine(aid.joint(), aid.questionnaire)
    python_joint = PythonEngine(aid.joint(), aid.questionnaire)
    answer_sets = [aid.read_answers(path) for path in EXAMPLES]
    answer_sets += [aid.parse_answers(case.answers, case.id) for case in load_cases()[::step]]
    shared = {name for name in aid.joint().definition if "~" not in name}
    assert len(shared) > len(aid.joint().definition) / 2, "most rules are written once for every profile"
    for number, answers in enumerate(answer_sets):
        patient = aid.patient(answers)
        expected = {p: aid.engine(p).run_patient(patient) for p in aid.rulebook.profiles}
        assert durable_joint.run_profiles(patient) == expected, number
        if number < len(EXAMPLES):
            assert python_joint.run_profiles(patient) == expected, number


def test_rulesets_made_from_the_profiles_compiled_once_are_those_compiled_each_alone(aid: DecisionAid) -> None:
    """`rules verify` compiles each profile once (`Parts`) for its own ruleset and the joint one: the same rulesets,
    laying out a profile's own (`_spread`) leaving what the joint one reads as it was."""
    rulebook, questionnaire = aid.rulebook, aid.questionnaire
    parts: Parts = {}
    own = {p: compile_rulebook(rulebook, p, questionnaire, parts) for p in rulebook.profiles}
    assert set(parts) == set(rulebook.profiles)
    assert joint_ruleset(rulebook, questionnaire, parts) == joint_ruleset(rulebook, questionnaire)
    assert all(own[p] == compile_rulebook(rulebook, p, questionnaire) for p in rulebook.profiles)


@pytest.mark.parametrize(
    "per_profile", [pytest.param(200, id="800"), pytest.param(5000, id="20000", marks=pytest.mark.slow)]
)
def test_the_engines_fire_alike_on_generated_patients(aid: DecisionAid, per_profile: int) -> None:
    """Around every threshold, in every profile: equal lists of firings (order, branch and facts included)."""
    rng = random.Random(20261203)
    fired: set[str] = set()
    for profile in aid.rulebook.profiles:
        durable = DurableEngine(aid.compiled(profile), aid.questionnaire)
        python = PythonEngine(aid.compiled(profile), aid.questionnaire)
        for _ in range(per_profile):
            patient = aid.patient(aid.parse_answers(threshold_answers(aid, rng)))
            expected = durable.run_patient(patient)
            assert python.run_patient(patient) == expected, profile
            fired.update(f.rule_id for f in expected if f.holds)
    active = {r.id for r in aid.rulebook.rules if r.active}
    assert len(fired & active) / len(active) >= 0.8, sorted(active - fired)


def test_every_example_gets_the_same_result_on_both_engines(aid: DecisionAid, python_aid: DecisionAid) -> None:
    """Statuses, reasons, cautions, trace order, profile differences: all equal; only `engine` differs."""
    for path in EXAMPLES:
        on_durable = aid.evaluate(aid.read_answers(path)).to_json()
        on_python = python_aid.evaluate(python_aid.read_answers(path)).to_json()
        assert on_durable.pop("engine") == "durable_rules 2.0.28"
        assert on_python.pop("engine").startswith("pain-sdm Python engine (Python ")
        assert on_python == on_durable, path.name


@pytest.mark.parametrize(
    ("conditions", "asks"), [(None, True), ("unknown", True), (["crps"], False), (["other"], False)]
)
def test_a_derived_fact_left_unknown_is_read_as_unknown_by_both_engines(
    aid: DecisionAid, conditions: Any, asks: bool
) -> None:
    """NB-ASK reads `nerve_block_indication is_unknown`: it holds while the conditions are unanswered or
    not sure, and not once they settle the fact (true or false), on durable, the Python engine and the evaluator."""
    answers = {} if conditions is None else {"conditions": conditions}
    parsed = aid.parse_answers(answers).model_dump()
    profile = aid.rulebook.default_profile
    compiled = aid.compiled(profile)
    fact = flatten(parsed, aid.questionnaire)
    fired = [
        {f.rule_id for f in DurableEngine(compiled, aid.questionnaire).run(fact)},
        {f.rule_id for f in PythonEngine(compiled, aid.questionnaire).run(fact)},
        {f.rule_id for f in aid.evaluator(profile).firings(parsed)},
    ]
    assert [("NB-ASK" in ids) for ids in fired] == [asks] * 3
    assert fired[0] == fired[1] == fired[2]
    assert any("nerve_block_indication" in mark.facts for mark in compiled.marks)


def test_the_python_engine_refuses_an_operator_the_compiler_never_writes() -> None:
    with pytest.raises(EngineError, match=r"does not know the operator \$regex"):
        compile_test({"$regex": {"pain_region": "neck.*"}})


def test_a_rule_files_text_is_never_read_as_code() -> None:
    """Names and operands are written as Python literals: a quote in either stays data."""
    sneaky = "x') or __import__('os').system('true') or ('"
    test = compile_test({sneaky: sneaky})
    assert test({sneaky: sneaky}) and not test({"x": "x"})
    assert repr(sneaky) in condition_source({"$neq": {"q": sneaky}})


def test_the_python_engine_compares_like_durable() -> None:
    """A missing answer fails every comparison; numbers compare with numbers, strings with strings."""
    at_least_5 = compile_test({"$gte": {"pain_intensity": 5}})
    assert at_least_5({"pain_intensity": 5}) and at_least_5({"pain_intensity": 7.5})
    assert not at_least_5({}) and not at_least_5({"pain_intensity": "7"}) and not at_least_5({"pain_intensity": 4})
    not_unknown = compile_test({"$neq": {"pregnant": "unknown"}})
    assert not_unknown({"pregnant": "no"}) and not not_unknown({"pregnant": "unknown"}) and not not_unknown({})
    ticked = compile_test({"red_flags~fever": True})
    assert ticked({"red_flags~fever": True}) and not ticked({"red_flags~fever": False}) and not ticked({"x": 1})
    assert not compile_test({"n": 1})({"n": True}), "durable never takes true for 1"


def test_a_test_decided_by_an_earlier_one_of_its_conjunction_is_folded_away() -> None:
    """After `t == "patient"`, the bucket tests on `t` (always true for a patient) are not written; a test
    that contradicts an earlier one makes the conjunction false; other tests are kept, and the meaning stays."""
    buckets = {"$and": [{"t": "patient"}, {"$neq": {"t": "~0.0"}}, {"$neq": {"t": "~1.3"}}, {"$gte": {"x": 5}}]}
    source = condition_source(buckets)
    assert "~0.0" not in source and "~1.3" not in source and "'x'" in source
    test = compile_test(buckets)
    assert test({"t": "patient", "x": 5}) and not test({"t": "patient", "x": 4}) and not test({"t": "~0.0", "x": 5})
    assert condition_source({"$and": [{"t": "patient"}, {"t": "other"}, {"x": 1}]}) == "False"
    assert condition_source({"$and": [{"t": "patient"}, {"$lt": {"t": 3}}]}) == "False", "a string is no number"
    either = {"$or": [{"t": "patient"}, {"$neq": {"t": "~0.0"}}]}
    assert "~0.0" in condition_source(either), "an alternative is reached where the one before fails"
    assert compile_test(either)({"t": "x"}) and not compile_test(either)({"t": "~0.0"})


def test_an_unknown_engine_setting_is_refused_naming_the_choices() -> None:
    with pytest.raises(UsageError, match="PAIN_SDM_ENGINE='jess' is not an engine; choose one of auto, durable_rules"):
        chosen_engine("jess")


def _without_durable(tmp_path: Path) -> dict[str, str]:
    """An environment in which durable_rules cannot be imported, as on Python 3.13+."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_DURABLE)
    env = {k: v for k, v in os.environ.items() if k != ENGINE_VARIABLE}
    return env | {"PYTHONPATH": str(site)}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "cli.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_where_durable_cannot_load_evaluate_runs_on_the_python_engine_and_says_so(tmp_path: Path) -> None:
    env = _without_durable(tmp_path)
    done = _cli(env, "evaluate", "examples/sciatica.yaml", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["engine"].startswith("pain-sdm Python engine")
    text = _cli(env, "evaluate", "examples/sciatica.yaml")
    assert text.returncode == 0 and "Engine: pain-sdm Python engine (Python " in text.stdout


def test_where_durable_cannot_load_asking_for_it_is_an_error_not_a_switch(tmp_path: Path) -> None:
    env = _without_durable(tmp_path) | {ENGINE_VARIABLE: DURABLE}
    done = _cli(env, "evaluate", "examples/sciatica.yaml")
    assert done.returncode == 2 and done.stdout == ""
    assert "durable_rules does not load on Python" in done.stderr and "set it to auto or python" in done.stderr


def test_where_durable_cannot_load_verify_runs_the_python_engine_and_says_only_that(tmp_path: Path) -> None:
    done = _cli(_without_durable(tmp_path), "rules", "verify", "--profile", "consensus")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pain-sdm Python engine" in done.stdout and "only: durable_rules does not load on Python" in done.stdout


def test_verify_runs_both_engines_here_and_holds_them_equal() -> None:
    done = _cli(dict(os.environ), "rules", "verify", "--profile", "consensus")
    assert done.returncode == 0, done.stdout
    assert "durable_rules 2.0.28 (the engine `evaluate` uses) and pain-sdm Python engine" in done.stdout
