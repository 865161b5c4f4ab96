"""Patients do not leak into each other: one after another in one process, each gets its result alone.

Mixed patients (1,000 by default; 10,000 in the `slow` run CI makes), around the rules'
thresholds, with red flags, sparse and empty answer sets and the shipped examples, profiles
interleaved, with and without the profile comparison, are evaluated in sequence on one decision
aid, as a long clinic session or a batch would. Each result is then checked against evaluations
that share nothing with the sequence:

- every patient: the independent evaluator's firings (plain Python, no state between calls);
- a random sample (40, or 200 of the 10,000): the whole result, each from its own new decision
  aid (new compiled rulesets, new engines), in another process;
- two of those: the whole result from the command line (`pain-sdm evaluate --format json`).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ROOT, run_cli, threshold_answers

from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Result
from engine.model.loading import read_data

FRESH_PROCESS_SAMPLE = 2
ALONE_PER_PROCESS = 50
SEED = 7_000_007


def mixed_patients(aid: DecisionAid, rng: random.Random, count: int) -> list[tuple[dict[str, Any], str, bool]]:
    """(answers, profile, compare_profiles) for a varied clinic: most near thresholds, some odd ones."""
    examples = [read_data(p) for p in EXAMPLES]
    red_flags = aid.questionnaire.questions["red_flags"].values
    profiles = sorted(aid.rulebook.profiles)
    out = []
    for i in range(count):
        kind = rng.random()
        if kind < 0.02:
            answers: dict[str, Any] = {}
        elif kind < 0.06:
            answers = dict(rng.choice(examples))
        else:
            answers = threshold_answers(aid, rng)
            if kind < 0.15:  # sparse: most answers missing
                answers = {k: v for k, v in answers.items() if rng.random() < 0.2}
            elif kind < 0.25:
                answers["red_flags"] = rng.sample(red_flags, rng.randint(1, 2))
        out.append((answers, rng.choice(profiles), i % 10 == 0))
    return out


def firing_keys(result: Result) -> set[tuple[str, bool]]:
    return {(f.rule_id, f.holds) for f in result.trace}


@pytest.mark.parametrize(
    ("count", "fresh"),
    [pytest.param(300, 40, id="300"), pytest.param(10_000, 200, id="10000", marks=pytest.mark.slow)],
)
def test_patients_in_sequence_each_get_the_result_they_get_alone(
    aid: DecisionAid, tmp_path: Path, count: int, fresh: int
) -> None:
    rng = random.Random(SEED)
    patients = mixed_patients(aid, rng, count)
    sample = set(rng.sample(range(count), fresh))
    evaluators = {p: aid.evaluator(p) for p in aid.rulebook.profiles}
    kept: dict[int, Result] = {}
    urgent = 0
    for i, (raw, profile, compare) in enumerate(patients):
        answers = aid.parse_answers(raw)
        result = aid.evaluate(answers, profile, compare_profiles=compare)
        independent = evaluators[profile].firings(answers.model_dump())
        assert firing_keys(result) == {f.key for f in independent}, (i, raw, profile)
        urgent += result.urgent_assessment
        if i in sample:
            kept[i] = result
    assert min(urgent, count - urgent) > 0.1 * count  # the mix really is mixed

    alone = evaluate_alone([patients[i] for i in sorted(sample)])
    for i, theirs in zip(sorted(sample), alone, strict=True):
        assert theirs["rulebook_version"] == aid.rulebook.version, "the rule files changed during the test"
        mine = kept[i].to_json()
        assert theirs == mine, (i, patients[i], [k for k in mine if mine[k] != theirs.get(k)])

    compared = sorted(i for i in sample if patients[i][2])
    for n, i in enumerate(rng.sample(compared, FRESH_PROCESS_SAMPLE)):
        raw, profile, _compare = patients[i]
        path = tmp_path / f"patient-{n}.json"
        path.write_text(json.dumps(raw), encoding="utf-8")
        done = run_cli("evaluate", str(path), "--format", "json", "--profile", profile)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == kept[i].to_json(), (i, raw)


ALONE = """
import json, sys
sys.path.insert(0, {root!r})
from engine.evaluation.aid import DecisionAid
loaded = DecisionAid.load()
for line in sys.stdin:
    raw, profile, compare = json.loads(line)
    aid = DecisionAid(loaded.knowledge, loaded.questionnaire, loaded.rulebook, loaded.values)
    print(json.dumps(aid.evaluate(aid.parse_answers(raw), profile, compare_profiles=compare).to_json()))
"""


def evaluate_alone(patients: list[tuple[dict[str, Any], str, bool]]) -> list[dict[str, Any]]:
    """Each patient on its own new decision aid (new compiled rulesets, new durable engines).

    In child processes of 50 patients each: durable keeps every native ruleset a process ever
    created (about 2 MB each), so one process for all would grow by hundreds of megabytes.
    """
    out: list[dict[str, Any]] = []
    for start in range(0, len(patients), ALONE_PER_PROCESS):
        chunk = patients[start : start + ALONE_PER_PROCESS]
        done = subprocess.run(
            [sys.executable, "-c", ALONE.format(root=str(ROOT))],
            input="".join(json.dumps(p) + "\n" for p in chunk),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        out += [json.loads(line) for line in done.stdout.splitlines()]
    return out
