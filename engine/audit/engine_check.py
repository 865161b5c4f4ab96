"""`rules verify` runs the compiled rulebook on the rule engines: a rulebook that verifies also runs.

It runs on every engine that loads here: durable_rules (the engine `evaluate` uses wherever it
loads) and the Python engine (used where durable_rules cannot load). Each is held to the
independent evaluator, and the Python engine to durable_rules firing for firing (order and facts).

The logic checks stand on the independent evaluator, which has no limits; durable_rules has some
(see the README, "Engine limits"): a fixed stack of 64 pending alpha-network tests (error 303,
`MAX_STACK_SIZE` in events.c) and a limit on how rules chain in its beta network (error 108,
`ERR_RULE_BETA_LIMIT_EXCEEDED`). So every profile's compiled ruleset is registered on the engine
and run on the example patients and the answer sets the exhaustive search evaluated; every
failure is an error finding that names the limit and the rules involved, and every answer set on
which the engine and the evaluator disagree is one too.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from engine.audit.acceptances import FindingName
from engine.errors import EngineError
from engine.evaluation.compiler import CompiledRuleset, Parts, compile_joint, compile_rulebook
from engine.evaluation.engines import DURABLE, PYTHON, RuleEngine, durable_version, engine_label, make_engine
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.firing import Firing
from engine.evaluation.inference import Patient, PatientEncoder
from engine.model.questionnaire import Questionnaire
from engine.model.rulebook import Rulebook, derived_depth

LIMITS = {
    "303": "durable_rules' alpha-network stack (MAX_STACK_SIZE 64 pending tests, error 303): too many of the "
    "rules' tests hold at once for one patient",
    "108": "durable_rules' beta-network limit (ERR_RULE_BETA_LIMIT_EXCEEDED, error 108): derived facts chain too deep",
}
NAME: FindingName = "engine-failure"
MAX_NAMED = 12


def _limit(message: str) -> str:
    code = re.search(r"error code: (\d+)", message)
    if code is not None and code.group(1) in LIMITS:
        return LIMITS[code.group(1)]
    return f"durable_rules refused it ({message})"


def _named(rule_ids: Iterable[str]) -> str:
    ids = sorted(set(rule_ids))
    shown = ", ".join(ids[:MAX_NAMED])
    return shown + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


Targets = tuple[dict[str, list[float]], dict[str, set[str]]]


def rule_targets(rulebook: Rulebook) -> Targets:
    """The numbers each question is compared with (values and parameters, in any profile), and the choices named."""
    thresholds: dict[str, set[float]] = {}
    named: dict[str, set[str]] = {}
    for rule in rulebook.rules:
        for atom in rule.when.atoms():
            fact = atom.fact or ""
            if atom.param is not None:
                param = rulebook.parameters[atom.param]
                thresholds.setdefault(fact, set()).update(param.value(p) for p in rulebook.profiles)
            elif isinstance(atom.value, int | float):
                thresholds.setdefault(fact, set()).add(atom.value)
            elif atom.value is not None:
                values = atom.value if isinstance(atom.value, list) else [atom.value]
                named.setdefault(fact, set()).update(str(v) for v in values)
    return {k: sorted(v) for k, v in thresholds.items()}, named


def near_thresholds(questionnaire: Questionnaire, targets: Targets, rng: random.Random) -> dict[str, Any]:
    """A random answer set biased toward the rules' thresholds, so that rules actually fire.

    Numbers are drawn mostly from each threshold a rule compares the question with (its value or
    parameter, in any profile) and the numbers either side of it; choices the rules name are
    picked more often than others; about one answer in ten is 'unknown'.
    """
    thresholds, named = targets
    answers: dict[str, Any] = {}
    for qid, q in questionnaire.questions.items():
        if q.type == "text" or rng.random() < 0.1:
            continue
        if q.type == "number":
            assert q.min is not None and q.max is not None
            near = thresholds.get(qid)
            if near and rng.random() < 0.8:
                value = rng.choice(near) + rng.choice((-1, 0, 0, 1) if q.integer else (-1, -0.5, 0, 0, 0.5, 1))
            else:
                value = rng.uniform(q.min, q.max)
            value = min(max(value, q.min), q.max)
            answers[qid] = round(value) if q.integer else value
        elif q.type == "multiple":
            chosen = named.get(qid, set())
            answers[qid] = [v for v in q.values if rng.random() < (0.3 if v in chosen else 0.1)]
        else:
            answers[qid] = rng.choice(q.values)
    return answers


NEAR_THRESHOLDS = 300
"""Answer sets drawn around the rules' thresholds (fixed seed) that the engine check also runs, per profile."""


def threshold_sample(rulebook: Rulebook, questionnaire: Questionnaire) -> list[dict[str, Any]]:
    """The NEAR_THRESHOLDS answer sets every profile's engine check runs (the same ones, drawn once)."""
    rng = random.Random(NEAR_THRESHOLDS)  # noqa: S311 - a fixed seed: the same answer sets every run
    targets = rule_targets(rulebook)
    return [near_thresholds(questionnaire, targets, rng) for _ in range(NEAR_THRESHOLDS)]


def dense(answer_sets: Iterable[dict[str, Any]], questionnaire: Questionnaire) -> list[dict[str, Any]]:
    """Each answer set with every number answer at its question's maximum, then at its minimum.

    Where most threshold tests hold at once the alpha network's stack is fullest (error 303).
    """
    out = []
    numbers = [q for q in questionnaire.questions.values() if q.type == "number"]
    for answers in answer_sets:
        for end in ("max", "min"):
            out.append(answers | {q.id: getattr(q, end) if not q.integer else int(getattr(q, end)) for q in numbers})
    return out


def engines_here() -> list[str]:
    """The engines `rules verify` runs: durable_rules where it loads, and always the Python engine."""
    return [DURABLE, PYTHON] if durable_version() is not None else [PYTHON]


def engines_run() -> str:
    """What the engine check ran on, as `rules verify` reports it."""
    if durable_version() is None:
        return (
            f"{engine_label(PYTHON)} only: durable_rules does not load on Python "
            f"{sys.version_info.major}.{sys.version_info.minor}"
        )
    return (
        f"{engine_label(DURABLE)} (the engine `evaluate` uses) and {engine_label(PYTHON)}, firing for firing "
        "(the example patients and those near the thresholds on the ruleset of every profile at once too)"
    )


def engine_findings(
    rulebook: Rulebook,
    questionnaire: Questionnaire,
    evaluators: dict[str, Evaluator],
    own: dict[str, list[dict[str, Any]]],
    shared: list[dict[str, Any]],
) -> list[Any]:
    """Error findings for the compiled rulesets on every engine here.

    Each profile's own ruleset (what `evaluate` runs without the comparison, and a batch) runs
    that profile's answer sets (`own`); the joint ruleset of every profile (what `evaluate` runs to
    compare profiles) runs the `shared` ones once for all, each profile's firings held to that
    profile's independent evaluator. `evaluators`: the profiles checked.
    """
    findings: list[Any] = []
    encoder = PatientEncoder(questionnaire)  # the patient fact as `evaluate` writes it: `to_json(flatten(...))`
    parts: Parts = {}  # each profile compiled once, for its own ruleset and the joint one
    for name, evaluator in evaluators.items():
        compiled = compile_rulebook(rulebook, name, questionnaire, parts)
        answer_sets = own.get(name, [])
        findings += _ruleset_findings(rulebook, questionnaire, encoder, compiled, {name: evaluator}, answer_sets, name)
    joint = compile_joint(rulebook, questionnaire, parts)
    findings += _ruleset_findings(rulebook, questionnaire, encoder, joint, evaluators, shared, "every profile at once")
    return findings


_Ran = dict[str, set[tuple[str, bool]]]
"""What one engine fired for one patient: each profile's firing keys."""


def _run(
    engines: dict[str, RuleEngine], patient: Patient, profiles: tuple[str, ...], joint: bool
) -> tuple[dict[str, _Ran | EngineError], dict[str, set[str] | None]]:
    """One patient on every engine: each engine's firing keys by profile (or its failure), and for each
    profile on which durable_rules and the Python engine fire differently, the rules only one fires."""
    ran: dict[str, Mapping[str, list[Firing]] | EngineError] = {}
    for choice, engine in engines.items():
        try:
            ran[choice] = engine.run_profiles(patient) if joint else {profiles[0]: engine.run_patient(patient)}
        except EngineError as exc:
            ran[choice] = exc
    engines_differ: dict[str, set[str] | None] = {}
    durable, python = ran.get(DURABLE), ran.get(PYTHON)
    if isinstance(durable, Mapping) and isinstance(python, Mapping):
        for name in profiles:
            if durable[name] != python[name]:
                engines_differ[name] = {f.rule_id for f in durable[name]} ^ {f.rule_id for f in python[name]}
    outcomes: dict[str, _Ran | EngineError] = {}
    keys: _Ran = {}  # a profile's firing keys, read once where both engines fired the same
    for choice, by_profile in ran.items():
        if isinstance(by_profile, EngineError):
            outcomes[choice] = by_profile
            continue
        outcomes[choice] = mine = {}
        for name, fired in by_profile.items():
            same = name in keys and name not in engines_differ
            mine[name] = keys[name] if same else {(f.rule_id, f.holds) for f in fired}
            keys.setdefault(name, mine[name])
    return outcomes, engines_differ


def _ruleset_findings(
    rulebook: Rulebook,
    questionnaire: Questionnaire,
    encoder: PatientEncoder,
    compiled: CompiledRuleset,
    evaluators: dict[str, Evaluator],
    answer_sets: list[dict[str, Any]],
    subject: str,
) -> list[Any]:
    """One compiled ruleset (a profile's, or the joint one) on every engine here, on these answer sets."""
    from engine.audit.verify import AuditFinding

    profiles = tuple(evaluators)
    joint = bool(compiled.profiles)
    engines: dict[str, RuleEngine] = {}
    findings: list[AuditFinding] = []
    for choice in engines_here():
        try:
            engines[choice] = make_engine(choice, compiled, questionnaire)
        except EngineError as exc:
            rules = [r for p in profiles for r in rulebook.active_rules(p)]
            depth = derived_depth(rules, rulebook.derived_facts)
            deepest = max(depth.values(), default=0)
            involved = [rid for rid, d in depth.items() if d == deepest]
            message = (
                f"the compiled rulebook cannot be registered on {engine_label(choice)}: {_limit(str(exc))}; every "
                f"evaluation would fail (exit 3). Derived facts chain {deepest} deep; the rules at the end of the "
                f"chain: {_named(involved)}"
            )
            findings.append(AuditFinding(NAME, "error", subject, message, profiles))
    if not engines:
        return findings
    which = " (the joint ruleset of every profile)" if joint else ""
    failures: dict[tuple[str, str], tuple[set[str], dict[str, Any], int]] = {}
    disagreements: list[AuditFinding] = []
    # Answer sets that are one fact to the engines (e.g. a number unknown or left out) run once.
    ran_on: dict[str, tuple[dict[str, _Ran | EngineError], dict[str, set[str] | None]]] = {}
    for answers in answer_sets:
        expected = {name: evaluator.firing_keys(answers) for name, evaluator in evaluators.items()}
        patient = encoder.encode(answers)
        ran = ran_on.get(patient.text)
        if ran is None:
            ran = ran_on[patient.text] = _run(engines, patient, profiles, joint)
        outcomes, engines_differ = ran
        found: dict[str, _Ran] = {}
        for choice, outcome in outcomes.items():
            if not isinstance(outcome, EngineError):
                found[choice] = outcome
            else:
                key = (choice, _limit(str(outcome)))
                held = {rule_id for keys in expected.values() for rule_id, _ in keys}
                seen = failures.get(key)
                failures[key] = (
                    held | (seen[0] if seen else set()),
                    seen[1] if seen else answers,
                    (seen[2] if seen else 0) + 1,
                )
        if len(disagreements) >= 3:
            continue
        for name, wanted in expected.items():
            for choice, by_profile in found.items():
                differ = by_profile[name] ^ set(wanted)
                if differ:
                    disagreements.append(
                        AuditFinding(
                            NAME,
                            "error",
                            name,
                            f"{engine_label(choice)}{which} and the independent evaluator disagree on rules "
                            f"{_named(k[0] for k in differ)}",
                            (name,),
                            answers,
                        )
                    )
            differ_ids = engines_differ.get(name)
            if differ_ids is not None:
                how = (
                    f"fire other rules: {_named(differ_ids)}"
                    if differ_ids
                    else "fire the same rules in another order or with other facts"
                )
                message = f"the Python engine and durable_rules{which} {how}"
                disagreements.append(AuditFinding(NAME, "error", name, message, (name,), answers))
    findings += [
        AuditFinding(
            NAME,
            "error",
            subject,
            f"{engine_label(choice)}{which} fails on {count} of the answer sets checked: {limit}; `evaluate` exits 3 "
            f"for such a patient. The rules that hold for them: {_named(held)}",
            profiles,
            example,
        )
        for (choice, limit), (held, example, count) in failures.items()
    ]
    return findings + disagreements
