"""What keeps pain-sdm fast, held without timing anything (timings are bench/run.py's job)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, answers_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.evaluation.aid import DecisionAid
from engine.evaluation.compiler import profile_parameters
from engine.evaluation.firing import Firing
from engine.evaluation.inference import DurableEngine
from engine.evaluation.kept import RECORDS_KEPT, values_key
from engine.evaluation.result import (
    Finding,
    OptionResult,
    Result,
    ResultBuilder,
    criteria_held,
    with_facts,
)
from engine.model.loading import _NoAliasLoader, parse_text

HEAVY = (
    "durable",
    "durable_rules_engine",
    "pydantic",
    "yaml",
    "questionary",
    "weasyprint",
    "jinja2",
    "sqlite3",
    "rich",  # rich's markdown and syntax machinery (markdown_it, pygments) came with it
    "markdown_it",
    "pygments",
)
DATA_FILES = sorted([*(ROOT / "rules").rglob("*.yaml"), *(ROOT / "knowledge").rglob("*.yaml")])


@pytest.mark.parametrize("path", DATA_FILES, ids=[p.name for p in DATA_FILES])
def test_libyaml_reads_every_data_file_as_the_python_loader_does(path: Path) -> None:
    assert hasattr(yaml, "CSafeLoader"), "PyYAML was built without libyaml (its wheels have it)"
    text = path.read_text(encoding="utf-8")
    assert parse_text(text, str(path)) == yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['pain-sdm', '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'cli.py')!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    loaded = set(done.stderr.split())
    assert "Usage" in done.stdout
    assert not loaded.intersection(HEAVY), f"`pain-sdm --help` imports {sorted(loaded.intersection(HEAVY))}"


def test_a_finding_made_the_fast_way_is_the_one_pydantic_would_copy(aid: DecisionAid) -> None:
    """`with_facts` stands in for `model_copy(update={"facts": ...})`: equal, same fields set, same JSON."""
    answers = aid.read_answers(ROOT / "examples" / "sciatica.yaml")
    result = aid.evaluate(answers, compare_profiles=False)
    assert result.trace
    for found in result.trace:
        template = found.model_copy(update={"facts": {}})
        fast, slow = with_facts(template, dict(found.facts)), template.model_copy(update={"facts": dict(found.facts)})
        assert fast == slow == found
        assert fast.model_fields_set == slow.model_fields_set
        assert fast.model_dump_json(exclude_unset=True) == slow.model_dump_json(exclude_unset=True)
        assert fast.facts is not template.facts


def test_a_result_built_the_fast_way_is_the_one_pydantic_would_validate(aid: DecisionAid) -> None:
    """`ResultBuilder.build` makes its options and result without validating them again: equal to the validated
    models, with the same fields in the same order, the same fields set and the same JSON."""
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        fast = aid.evaluate(aid.read_answers(path), compare_profiles=False)
        options = [OptionResult(**{k: getattr(o, k) for k in o.model_fields_set}) for o in fast.options]
        given = {k: getattr(fast, k) for k in fast.model_fields_set if k != "options"}
        slow = Result(**given, options=options)
        assert slow == fast
        for a, b in [(slow, fast), *zip(slow.options, fast.options, strict=True)]:
            assert list(a.__dict__) == list(b.__dict__)
            assert a.model_fields_set == b.model_fields_set
            assert a.__pydantic_extra__ == b.__pydantic_extra__ and a.__pydantic_private__ == b.__pydantic_private__
        assert slow.model_dump_json(exclude_unset=True) == fast.model_dump_json(exclude_unset=True)


def test_other_profiles_compared_at_the_level_of_firings_match_their_full_results(aid: DecisionAid) -> None:
    """`ResultBuilder.outcomes` gives each procedure the status and status-setting rules that `build` gives,
    and the criteria held that the full trace holds."""
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        answers = aid.read_answers(path)
        for profile in aid.rulebook.profiles:
            patient = aid.patient(answers)
            firings = aid.engine(profile).run_patient(patient)
            full = aid.builder(profile).build(firings, aid.engine_name, patient.fact)
            expected = {o.procedure: (o.status, frozenset(f.rule_id for f in o.reasons)) for o in full.options}
            assert aid.builder(profile).outcomes(firings) == (expected, criteria_held(full.trace))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_profile_comparison_is_what_each_profiles_own_full_result_says(
    aid: DecisionAid, data: st.DataObject
) -> None:
    """`evaluate` compares profiles on one joint run, and skips a profile whose status-setting firings are
    the chosen one's: its differences are still exactly where each profile's own result (its own ruleset,
    run and built in full) gives an option another status, naming the rules that set the two apart."""
    answers = aid.parse_answers(data.draw(answers_strategy(aid)))
    chosen = data.draw(st.sampled_from(sorted(aid.rulebook.profiles)))
    compared = aid.evaluate(answers, chosen)
    own = {p: aid.evaluate(answers, p, compare_profiles=False) for p in aid.rulebook.profiles}
    assert compared.model_copy(update={"profile_differences": [], "disagreements": []}) == own[chosen].model_copy(
        update={"disagreements": []}
    )
    expected = set()
    for other, theirs in own.items():
        for mine, that in zip(own[chosen].options, theirs.options, strict=True):
            if other != chosen and mine.status != that.status:
                rules = {f.rule_id for f in mine.reasons} ^ {f.rule_id for f in that.reasons}
                expected.add((mine.procedure, other, that.status, mine.status, tuple(sorted(rules))))
    found = {(d.procedure, d.profile, d.status, d.this_status, tuple(d.rules)) for d in compared.profile_differences}
    assert found == expected
    assert set(own[chosen].disagreements) <= set(compared.disagreements)
    if not compared.profile_differences:
        assert compared.disagreements == own[chosen].disagreements


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_findings_kept_for_reuse_give_the_result_a_fresh_builder_gives(aid: DecisionAid, data: st.DataObject) -> None:
    """A builder keeps the findings it made (by rule and facts) and shares them with later patients: each result
    is the one a builder that never saw another patient makes, to the JSON text."""
    answers = aid.parse_answers(data.draw(answers_strategy(aid)))
    profile = data.draw(st.sampled_from(sorted(aid.rulebook.profiles)))
    patient = aid.patient(answers)
    firings = aid.engine(profile).run_patient(patient)
    warm = aid.builder(profile).build(firings, aid.engine_name, patient.fact)
    fresh = ResultBuilder(aid.rulebook, aid.knowledge, profile, profile_parameters(aid.rulebook, profile))
    cold = fresh.build(firings, aid.engine_name, patient.fact)
    assert warm == cold and warm.to_json_text() == cold.to_json_text()
    assert [f.model_fields_set for f in warm.trace] == [f.model_fields_set for f in cold.trace]


def test_a_kept_finding_is_shared_only_for_the_same_facts_of_the_same_types(aid: DecisionAid) -> None:
    """2 and 2.0 (and True and 1) are equal as keys but are different facts; a value that cannot be a key
    is made each time."""
    rule = next(r for r in aid.rulebook.rules if r.then.kind == "status")
    builder = ResultBuilder(aid.rulebook, aid.knowledge, "consensus", profile_parameters(aid.rulebook, "consensus"))

    def finding_of(facts: dict[str, Any]) -> Finding:
        ((_, found),) = builder._placed([Firing(rule.id, True, 0, facts)], True)
        return found

    two, two_again, two_float = finding_of({"x": 2}), finding_of({"x": 2}), finding_of({"x": 2.0})
    assert two is two_again, "the same facts: one shared record"
    assert two is not two_float and type(two_float.facts["x"]) is float
    assert finding_of({"x": True}).facts == {"x": True} and finding_of({"x": 1}) is not finding_of({"x": True})
    assert finding_of({"x": ["a", "b"]}) is finding_of({"x": ["a", "b"]}) is not finding_of({"x": ["b", "a"]})
    odd = {"x": {"nested": 1}}
    assert finding_of(odd) is not finding_of(odd) and finding_of(odd).facts == odd
    for _ in range(RECORDS_KEPT + 1):  # past the limit it starts again: kept findings stay bounded
        finding_of({"x": _})
    assert len(builder._findings) <= RECORDS_KEPT


def test_values_are_one_key_only_when_they_are_the_same_values_of_the_same_types() -> None:
    assert values_key([2, "a", True]) == values_key([2, "a", True])
    assert values_key([2]) != values_key([2.0]) and values_key([True]) != values_key([1])
    assert values_key([["a", "b"]]) != values_key([["b", "a"]]) and values_key([["a"]]) != values_key([("a",)])
    with pytest.raises(TypeError):
        hash(values_key([{"nested": 1}]))


def test_the_engine_fires_the_same_firing_records_for_the_same_answers(aid: DecisionAid) -> None:
    """The adapter keeps each branch's firings by the answers it read: a patient whose answers a rule read
    before gets the very firing made then; another answer, another firing; and every firing equals the one
    an engine that never saw another patient fires."""
    answers = aid.read_answers(ROOT / "examples" / "sciatica.yaml")
    engine = DurableEngine(aid.compiled("consensus"), aid.questionnaire)
    first, again = (engine.run_patient(aid.patient(answers)) for _ in range(2))
    assert first == again and all(a is b for a, b in zip(first, again, strict=True))
    worse = answers.model_copy(update={"pain_intensity": 9})
    changed = engine.run_patient(aid.patient(worse))
    reads_it = [f for f in changed if "pain_intensity" in f.facts]
    assert reads_it and all(f.facts["pain_intensity"] == 9 for f in reads_it)
    assert not any(f is g for f in reads_it for g in first), "other answers: other firings"
    assert any(f is g for f in changed for g in first), "the rules that did not read it: the same firings"
    fresh = DurableEngine(aid.compiled("consensus"), aid.questionnaire)
    assert fresh.run_patient(aid.patient(worse)) == changed


def test_a_joint_run_gives_each_profile_its_firings_and_what_sets_two_apart(aid: DecisionAid) -> None:
    """Each profile's firings are those of the variants it runs, in firing order; `differing` gives the
    firings one profile has and the other has not, so each profile's are the shared ones and its own."""
    ruleset = aid.joint()
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        joint = aid.joint_engine().run_profiles(aid.patient(aid.read_answers(path)))
        assert set(joint) == set(aid.rulebook.profiles) and len(joint) == len(aid.rulebook.profiles)
        for p, firings in joint.items():
            assert firings == [
                f for f, v in zip(joint.firings, joint.variants, strict=True) if v in ruleset.profiles[p]
            ]
            for other in aid.rulebook.profiles:
                mine, theirs = joint.differing(p, other)
                shared = [f for f in firings if f not in mine]
                assert [f for f in joint[other] if f not in theirs] == shared
                assert not set(map(id, mine)) & set(map(id, joint[other]))
                assert not set(map(id, theirs)) & set(map(id, firings))
        with pytest.raises(KeyError):
            joint["no-such-profile"]


def test_another_profiles_changed_outcomes_are_its_full_outcomes_and_the_rest_are_the_results(
    aid: DecisionAid,
) -> None:
    """`changed_outcomes` resolves only the procedures on which the two profiles' own firings set a status
    differently; there it gives what `outcomes` gives, and everywhere else the result's own outcome holds."""
    resolved = 0
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        patient = aid.patient(aid.read_answers(path))
        joint = aid.joint_engine().run_profiles(patient)
        for chosen in aid.rulebook.profiles:
            builder = aid.builder(chosen)
            result = builder.build(joint[chosen], aid.engine_name, patient.fact)
            mine, _ = builder.outcomes(joint[chosen])
            for other in aid.rulebook.profiles:
                full, _ = aid.builder(other).outcomes(joint[other])
                changed = builder.changed_outcomes(result.options, *joint.differing(chosen, other))
                assert {pid: full[pid] for pid in changed} == changed
                assert all(full[pid] == mine[pid] for pid in full if pid not in changed), (path.name, other)
                resolved += len(changed)
    assert resolved, "some example has profiles whose own firings set statuses apart"


def test_a_firing_seen_before_comes_to_the_finding_made_for_it(aid: DecisionAid) -> None:
    """The builder finds a firing it saw before by itself, and an equal firing by its facts: one finding."""
    rule = next(r for r in aid.rulebook.rules if r.then.kind == "status")
    builder = ResultBuilder(aid.rulebook, aid.knowledge, "consensus", profile_parameters(aid.rulebook, "consensus"))
    firing = Firing(rule.id, True, 0, {"x": 2})
    ((_, found),) = builder._placed([firing], True)
    ((_, again),) = builder._placed([firing], True)
    ((_, equal),) = builder._placed([Firing(rule.id, True, 0, {"x": 2})], True)
    assert found is again is equal and found.facts == {"x": 2}
    ((_, other),) = builder._placed([Firing(rule.id, True, 0, {"x": 2.0})], True)
    assert other is not found and type(other.facts["x"]) is float


def test_the_same_findings_come_to_the_same_shared_option_records(aid: DecisionAid) -> None:
    """An option resolved from the same findings (shared records, see above) is kept and shared too."""
    answers = aid.read_answers(ROOT / "examples" / "sciatica.yaml")
    first, again = (aid.evaluate(answers, compare_profiles=False) for _ in range(2))
    assert all(a is b for a, b in zip(first.options, again.options, strict=True))
    assert first.to_json_text() == again.to_json_text()
    facet = aid.evaluate(aid.read_answers(ROOT / "examples" / "facet-back-pain.yaml"), compare_profiles=False)
    assert facet.statuses() != first.statuses(), "other findings: other options"
    fresh = ResultBuilder(aid.rulebook, aid.knowledge, "consensus", profile_parameters(aid.rulebook, "consensus"))
    patient = aid.patient(answers)
    rebuilt = fresh.build(aid.engine("consensus").run_patient(patient), aid.engine_name, patient.fact)
    assert rebuilt.options == first.options and rebuilt.options[0] is not first.options[0]
