"""Issue 13 §2: the rule engine's limits are found by `rules verify`, and raised by the compiler.

durable_rules walks its alpha network with a fixed stack of 64 pending tests (error 303) and
limits how deep rules chain (error 108). The rulebooks here are generated: every option rule
copied with new ids and thresholds (four times today's option rules), and chains of derived facts.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, threshold_answers

from engine.audit.engine_check import dense, engine_findings
from engine.audit.verify import verify
from engine.evaluation import compiler
from engine.evaluation.aid import DecisionAid
from engine.evaluation.firing import Firing
from engine.evaluation.inference import DurableEngine
from engine.evaluation.python_engine import PythonEngine
from engine.model.facts import flatten

REVIEWED = dt.date(2026, 11, 24)


class _Dumper(yaml.SafeDumper):
    """Writes every value out in full: the loader refuses YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def multiply_option_rules(aid: DecisionAid, rules_dir: Path, copies: int) -> int:
    """Add `copies` copies of every option rule, each with a new id and shifted number thresholds."""
    path = rules_dir / "20-options.yaml"
    data = yaml.safe_load(path.read_text())
    questions = aid.questionnaire.questions
    params = aid.rulebook.parameters

    def shift(node: dict[str, Any], k: int) -> None:
        question = questions.get(node.get("fact", ""))
        if question is not None and question.type == "number" and node["op"] in ("<", "<=", ">", ">=", "==", "!="):
            base = params[node.pop("param")].default if "param" in node else node["value"]
            step = k if question.integer else k * 0.25
            assert question.max is not None and isinstance(base, int | float)
            node["value"] = min(question.max, base + step)
        for child in [*(node.get("all") or []), *(node.get("any") or []), *([node["not"]] if "not" in node else [])]:
            shift(child, k)

    originals = list(data["rules"])
    for k in range(1, copies + 1):
        for rule in originals:
            new = copy.deepcopy(rule)
            new["id"] = f"{rule['id']}-C{k}"
            new.pop("aliases", None)
            shift(new["when"], k)
            data["rules"].append(new)
    path.write_text(dump(data))
    return len(originals)


def derived_chain(rules_dir: Path, depth: int) -> None:
    """A chain of `depth` derived facts, each read by the next, the last read by a caution rule."""

    def rule(rid: str, when: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rid,
            "title": "a link of a long chain",
            "version": 1,
            "status": "active",
            "purpose": "tests how deep derived facts can chain",
            "explanation": "A test rule.",
            "when": when,
            "then": then,
            "sources": ["nice-ng59"],
            "last_reviewed": REVIEWED,
        }

    links = [
        rule(
            f"CHN-D{i}",
            {"fact": "pain_intensity", "op": ">=", "value": 3}
            if i == 0
            else {"fact": f"chain_{i - 1}", "op": "is_true"},
            {"derive": f"chain_{i}"},
        )
        for i in range(depth)
    ]
    end = rule(
        "CHN-END",
        {"fact": f"chain_{depth - 1}", "op": "is_true"},
        {"caution": "the end of a long chain", "procedures": ["nerve_block"]},
    )
    (rules_dir / "15-chain.yaml").write_text(dump({"layer": "derived", "rules": links}))
    (rules_dir / "25-chain-end.yaml").write_text(dump({"layer": "option", "rules": [end]}))


def agreement(aid: DecisionAid, patients: int, seed: int = 13) -> int:
    """Run examples and generated patients on durable_rules, the Python engine and the independent evaluator.

    durable_rules and the evaluator fire the same rules; the Python engine fires exactly what durable does,
    and so does the joint ruleset of every profile (on one answer set in eight, each profile in turn).
    """
    rng = random.Random(seed)
    checked = 0
    joint = DurableEngine(aid.joint(), aid.questionnaire), PythonEngine(aid.joint(), aid.questionnaire)
    for profile in aid.rulebook.profiles:
        engine, evaluator = DurableEngine(aid.compiled(profile), aid.questionnaire), aid.evaluator(profile)
        python = PythonEngine(aid.compiled(profile), aid.questionnaire)
        sets = [aid.read_answers(e) for e in EXAMPLES]
        sets += [aid.parse_answers(threshold_answers(aid, rng)) for _ in range(patients)]
        for number, model in enumerate(sets):
            answers = model.model_dump()
            fact = flatten(answers, aid.questionnaire)
            durable = engine.run(fact)
            assert {f.key for f in durable} == {f.key for f in evaluator.firings(answers)}, (profile, answers)
            assert python.run(fact) == durable, (profile, answers)
            if number % 8 == list(aid.rulebook.profiles).index(profile):
                patient = aid.patient(model)  # every profile's engine in one joint run: its own firings
                assert joint[0].run_profiles(patient)[profile] == durable, (profile, answers)
                assert joint[1].run_profiles(patient)[profile] == durable, (profile, answers)
            checked += 1
    return checked


def test_four_times_the_option_rules_run_and_agree_with_the_evaluator(
    aid: DecisionAid, data: tuple[Path, Path]
) -> None:
    rules, knowledge = data
    originals = multiply_option_rules(aid, rules, copies=3)
    big = DecisionAid.load(rules, knowledge)
    assert sum(1 for r in big.rulebook.rules if r.layer == "option") == 4 * originals
    assert agreement(big, patients=150) > 450


@pytest.mark.parametrize("depth", [100, 200])
def test_a_deep_chain_of_derived_facts_runs(data: tuple[Path, Path], depth: int) -> None:
    """100 deep ran before; 200 deep failed with error 108 before the compiler's layout."""
    rules, knowledge = data
    derived_chain(rules, depth)
    deep = DecisionAid.load(rules, knowledge)
    answers = deep.parse_answers({"pain_intensity": 5})
    fact = flatten(answers.model_dump(), deep.questionnaire)
    durable = DurableEngine(deep.compiled("consensus"), deep.questionnaire).run(fact)
    assert {f"CHN-D{depth - 1}", "CHN-END"} <= {f.rule_id for f in durable}
    assert PythonEngine(deep.compiled("consensus"), deep.questionnaire).run(fact) == durable


def test_verify_reports_a_chain_the_engine_cannot_register_as_an_error(
    data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the compiler's layout (as before it), a 200-deep chain cannot be registered (error 108)."""
    monkeypatch.setattr(compiler, "SPREAD_FROM", 10**9)
    rules, knowledge = data
    derived_chain(rules, 200)
    report = verify(rules, knowledge, REVIEWED, profile="consensus")
    failures = [f for f in report.findings if f.name == "engine-failure"]
    assert failures and failures[0].severity == "error"
    assert "error 108" in failures[0].message and "200 deep" in failures[0].message and "CHN-END" in failures[0].message


def four_times_without_the_layout(
    aid: DecisionAid, data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """Four times the option rules, compiled without the alpha-network layout (as before it): the stack overflows."""
    monkeypatch.setattr(compiler, "SPREAD_FROM", 10**9)
    rules, _ = data
    multiply_option_rules(aid, rules, copies=3)
    return data


def test_the_engine_check_finds_the_alpha_stack_limit_on_the_examples_naming_the_rules(
    aid: DecisionAid, data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine check alone (what `rules verify` runs last; the whole command: the slow test below)."""
    rules, knowledge = four_times_without_the_layout(aid, data, monkeypatch)
    big = DecisionAid.load(rules, knowledge)
    examples = [big.unwrap_answers(yaml.safe_load(p.read_text()), p.name) for p in EXAMPLES]
    sets = [*examples, *dense(examples, big.questionnaire)]
    findings = engine_findings(big.rulebook, big.questionnaire, {"consensus": big.evaluator("consensus")}, {}, sets)
    failures = [f for f in findings if f.name == "engine-failure" and "fails on" in f.message]
    assert failures and all(f.severity == "error" for f in failures), [f.message for f in findings]
    assert "MAX_STACK_SIZE 64" in failures[0].message and "error 303" in failures[0].message
    assert "-C3" in failures[0].message and failures[0].example in sets


@pytest.mark.slow
def test_verify_reports_the_alpha_stack_limit_naming_the_rules(
    aid: DecisionAid, data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the compiler's layout (as before it), four times the option rules overflow the stack."""
    rules, knowledge = four_times_without_the_layout(aid, data, monkeypatch)
    report = verify(rules, knowledge, REVIEWED, profile="consensus")
    failures = [f for f in report.findings if f.name == "engine-failure"]
    assert failures, [f.name for f in report.findings if f.severity == "error"]
    assert "MAX_STACK_SIZE 64" in failures[0].message and "error 303" in failures[0].message
    assert "-C3" in failures[0].message  # the rules involved are named
    assert failures[0].example is not None


def test_the_shipped_rulebook_runs_on_the_engine_in_verify() -> None:
    report = verify(profile="consensus")
    assert not [f for f in report.findings if f.name == "engine-failure"]
    assert any("run on durable_rules" in line for line in report.enumerated)


def _drop_last(firings: list[Firing]) -> list[Firing]:
    return firings[:-1]


@pytest.mark.parametrize("ruleset", ["a profile's own", "every profile at once"])
def test_the_engine_check_reports_an_engine_that_disagrees_with_the_evaluator(
    aid: DecisionAid, monkeypatch: pytest.MonkeyPatch, ruleset: str
) -> None:
    """Each profile's ruleset runs the answer sets its search found; the joint ruleset (what `evaluate`
    runs to compare profiles) runs the shared ones, each profile's firings held to its own evaluator."""
    profile = "uk-nice"
    (path,) = [p for p in EXAMPLES if p.name == "sciatica.yaml"]
    sciatica = aid.unwrap_answers(yaml.safe_load(path.read_text()), path.name)
    if ruleset == "every profile at once":
        real = compiler.CompiledRuleset.by_profile

        def lose_one(self: compiler.CompiledRuleset, firings: list[Firing], variants: list[int]) -> Any:
            mine = real(self, firings, variants)
            return {**mine, profile: _drop_last(mine[profile])}

        monkeypatch.setattr(compiler.CompiledRuleset, "by_profile", lose_one)
        own, shared = {}, [sciatica]
    else:
        run_patient = DurableEngine.run_patient
        monkeypatch.setattr(DurableEngine, "run_patient", lambda self, p: _drop_last(run_patient(self, p)))
        own, shared = {profile: [sciatica]}, []
    evaluators = {p: aid.evaluator(p) for p in aid.rulebook.profiles}
    findings = engine_findings(aid.rulebook, aid.questionnaire, evaluators, own, shared)
    wrong = [f for f in findings if f.name == "engine-failure"]
    assert wrong and {f.subject for f in wrong} == {profile}, [f.message for f in findings]
    assert all(f.severity == "error" and f.example == sciatica for f in wrong)
    durable = [f for f in wrong if f.message.startswith("durable_rules")]
    assert durable and "disagree" in durable[0].message
    assert ("joint ruleset" in durable[0].message) == (ruleset == "every profile at once")
