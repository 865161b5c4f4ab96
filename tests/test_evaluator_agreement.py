"""The independent evaluator (which `why-not` and `rules verify` stand on) agrees with durable_rules.

Agreement means: the same rules hold, and the same derived facts are shown false, for the same
patient (the set of `Firing.key`). It is checked on every golden case and on generated patients
across the profiles (800 by default; 13,600 in the `slow` run CI makes), drawn around the
rules' thresholds so that most rules fire somewhere.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from conftest import threshold_answers

from engine.audit.golden import load_cases
from engine.evaluation.aid import DecisionAid
from engine.evaluation.evaluator import Evaluator, SharedTests
from engine.model.facts import flatten

SEED = 20261124


def firing_keys(aid: DecisionAid, answers: dict[str, Any], profile: str) -> tuple[set[Any], set[Any]]:
    durable = {f.key for f in aid.engine(profile).run(flatten(answers, aid.questionnaire))}
    independent = {f.key for f in aid.evaluator(profile).firings(answers)}
    return durable, independent


def test_agrees_on_every_golden_case(aid: DecisionAid) -> None:
    cases = load_cases()
    for case in cases:
        answers = aid.parse_answers(case.answers, case.id).model_dump()
        profile = aid.rulebook.check_profile(case.profile)
        durable, independent = firing_keys(aid, answers, profile)
        assert durable == independent, (case.id, sorted(durable ^ independent))


@pytest.mark.parametrize(
    "per_profile", [pytest.param(200, id="800"), pytest.param(3400, id="13600", marks=pytest.mark.slow)]
)
def test_agrees_on_generated_patients(aid: DecisionAid, per_profile: int) -> None:
    rng = random.Random(SEED)
    fired: set[str] = set()
    checked = 0
    for profile in aid.rulebook.profiles:
        evaluator = aid.evaluator(profile)
        engine = aid.engine(profile)
        for _ in range(per_profile):
            answers = aid.parse_answers(threshold_answers(aid, rng)).model_dump()
            durable = {f.key for f in engine.run(flatten(answers, aid.questionnaire))}
            independent = {f.key for f in evaluator.firings(answers)}
            assert durable == independent, (profile, sorted(durable ^ independent), answers)
            fired.update(rule_id for rule_id, holds in durable if holds)
            checked += 1
    assert checked == per_profile * len(aid.rulebook.profiles)
    active = {r.id for r in aid.rulebook.rules if r.active}
    share = len(fired & active) / len(active)
    assert share >= 0.8, f"only {share:.0%} of active rules fired; never: {sorted(active - fired)}"


def test_firing_keys_are_the_keys_of_the_firings_in_order(aid: DecisionAid) -> None:
    """`Evaluator.firing_keys` (what `rules verify` holds the engines to) is `firings` without the facts read."""
    rng = random.Random(SEED + 1)
    answer_sets = [aid.parse_answers(case.answers, case.id).model_dump() for case in load_cases()]
    answer_sets += [aid.parse_answers(threshold_answers(aid, rng)).model_dump() for _ in range(200)]
    derived_false = 0
    for profile in aid.rulebook.profiles:
        evaluator = aid.evaluator(profile)
        for answers in answer_sets:
            keys = [f.key for f in evaluator.firings(answers)]
            assert evaluator.firing_keys(answers) == keys, (profile, answers)
            derived_false += sum(not holds for _, holds in keys)
    assert derived_false, "no derived fact was shown false: the keys of a false derived fact went untested"


def test_evaluators_sharing_their_rules_tests_evaluate_as_those_that_do_not(aid: DecisionAid) -> None:
    """`SharedTests`: a rule's test compiled for one profile serves another only where the parameters it
    reads have the same values there; every profile's truths are those of its own evaluator."""
    shared = SharedTests()
    rng = random.Random(SEED + 2)
    answer_sets = [aid.parse_answers(threshold_answers(aid, rng)).model_dump() for _ in range(100)]
    tests: dict[str, dict[str, Any]] = {}
    for profile in aid.rulebook.profiles:
        sharing, alone = Evaluator(aid.rulebook, profile, shared), Evaluator(aid.rulebook, profile)
        for answers in answer_sets:
            assert sharing.truths(answers) == alone.truths(answers), profile
            assert sharing.firing_keys(answers) == alone.firing_keys(answers), profile
        tests[profile] = {rule.id: test for rule, test in zip(sharing.rules, sharing._tests, strict=True)}
    first, other = "consensus", "us-commercial"
    differs = {p for p, v in aid.rulebook.parameters.items() if v.value(first) != v.value(other)}
    both = tests[first].keys() & tests[other].keys()
    apart = {rid for rid in both if {a.param for a in aid.rulebook.rule(rid).when.atoms()} & differs}
    assert apart and all(tests[first][rid] is not tests[other][rid] for rid in apart)
    assert len(both - apart) > 100 and all(tests[first][rid] is tests[other][rid] for rid in both - apart)
    rule = aid.rulebook.rules[0]
    params = Evaluator(aid.rulebook, first).params
    assert shared.get(rule, params) is not None and shared.get(rule.model_copy(), params) is None
