"""The reviewer's commands, through the real command line: rules list/show/coverage/diff/book, explain, why-not.

Expectations are computed from the rulebook and the engine, not written out, so the tests keep
holding as the rulebook grows.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, run_cli

from engine.audit.golden import load_cases
from engine.evaluation.aid import DecisionAid
from engine.model.knowledge import PROCEDURE_IDS
from engine.presentation.explain import Wording

SCIATICA = str(ROOT / "examples" / "sciatica.yaml")


def listed(output: str) -> set[str]:
    """Rule ids in the first column of a `rules list` table."""
    return set(re.findall(r"^│ ([A-Z]{2,5}-[A-Z0-9-]+)\s+│", output, re.M))


def evaluate_json(*args: str) -> dict[str, Any]:
    done = run_cli("evaluate", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- rules list ------------------------------------------------------------------------------------


def test_list_shows_every_rule(aid: DecisionAid) -> None:
    done = run_cli("rules", "list")
    assert done.returncode == 0, done.stderr
    assert listed(done.stdout) == {r.id for r in aid.rulebook.rules}
    for header in ("title", "version", "status", "procedures", "sources", "criteria", "last reviewed"):
        assert header in done.stdout


def test_list_filters_by_procedure_status_source_and_criterion(aid: DecisionAid) -> None:
    rules = aid.rulebook.rules
    rule = next(r for r in rules if r.active and r.sources and r.criteria and r.then.status == "candidate")
    procedure = rule.then.procedures[0]
    source, criterion = rule.sources[0], rule.criteria[0]
    cases = {
        ("--procedure", procedure): {r.id for r in rules if procedure in r.then.procedures},
        ("--status", "candidate"): {r.id for r in rules if r.then.status == "candidate"},
        ("--status", "active"): {r.id for r in rules if r.status == "active"},
        ("--source", source): {r.id for r in rules if source in r.sources},
        ("--criterion", criterion): {r.id for r in rules if criterion in r.criteria},
    }
    for args, expected in cases.items():
        done = run_cli("rules", "list", *args)
        assert done.returncode == 0, done.stderr
        assert listed(done.stdout) == expected, args
    both = run_cli("rules", "list", "--procedure", procedure, "--status", "candidate")
    assert rule.id in listed(both.stdout)
    assert listed(both.stdout) == cases[("--procedure", procedure)] & cases[("--status", "candidate")]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--procedure", "acupuncture"), ("--status", "maybe"), ("--source", "no-such-source"), ("--criterion", "ZZ-99")],
    ids=["procedure", "status", "source", "criterion"],
)
def test_list_refuses_unknown_procedure_status_source_or_criterion(option: str, value: str) -> None:
    """A typo is an error, never an empty table that reads as 'no rule cites it'."""
    done = run_cli("rules", "list", option, value)
    assert done.returncode == 2
    assert f"unknown {option[2:]} `{value}`" in done.stderr
    assert done.stdout == ""


def test_list_suggests_the_source_or_criterion_meant(aid: DecisionAid) -> None:
    rule = next(r for r in aid.rulebook.rules if r.sources and r.criteria)
    source, criterion = rule.sources[0], rule.criteria[0]
    for option, typo, meant in (("--source", source[:-1], source), ("--criterion", criterion.lower(), criterion)):
        done = run_cli("rules", "list", option, typo)
        assert done.returncode == 2
        assert f"did you mean `{meant}`" in done.stderr, done.stderr


# -- rules show ------------------------------------------------------------------------------------


def test_show_gives_if_then_parameters_per_profile_sources_and_criteria(aid: DecisionAid) -> None:
    rulebook = aid.rulebook

    def differs(pid: str) -> bool:
        return len({rulebook.parameters[pid].value(p) for p in rulebook.profiles}) > 1

    rule = next(r for r in rulebook.rules if r.criteria and any(a.param and differs(a.param) for a in r.when.atoms()))
    done = run_cli("rules", "show", rule.id)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"{rule.id} v{rule.version}: {rule.title}")
    assert "\nIF " in out and "\nTHEN " in out
    for atom in rule.when.atoms():
        assert atom.fact is not None and atom.fact in out
        if atom.param:
            param = rulebook.parameters[atom.param]
            values = ", ".join(f"{p} {param.value(p):g}" for p in rulebook.profiles)
            assert f"{atom.param} ({param.unit}): {values}" in out
    for sid in rule.sources:
        source = aid.knowledge.sources[sid]
        assert f"{sid}: {source.title}. {source.publisher}, {source.year}." in out
    for cid in rule.criteria:
        assert cid in out
    filled = Wording(aid).text(rule.explanation, rule.profiles)  # each {parameter} as its value, named
    assert " ".join(filled.split()) in " ".join(out.split())


def test_show_names_questions_in_words_and_marks_unconfirmed_figures(aid: DecisionAid) -> None:
    rule = next(
        r
        for r in aid.rulebook.rules
        if any(a.param and aid.rulebook.parameters[a.param].confidence != "confirmed" for a in r.when.atoms())
    )
    out = run_cli("rules", "show", rule.id).stdout
    assert "UNCONFIRMED" in out
    question = next(a.fact for a in rule.when.atoms() if a.fact in aid.questionnaire.questions)
    assert aid.questionnaire.questions[question].prompt in out


def test_show_says_a_derived_fact_can_be_true_false_or_unknown(aid: DecisionAid) -> None:
    rule = next(r for r in aid.rulebook.rules if r.then.derive is not None)
    out = run_cli("rules", "show", rule.id).stdout
    then = next(line for line in out.splitlines() if line.startswith("THEN "))
    assert then == (
        f"THEN derived fact {rule.then.derive} is true (false when the condition is false, unknown when it is unknown)"
    )


def test_show_refuses_an_unknown_rule() -> None:
    done = run_cli("rules", "show", "NO-SUCH-RULE")
    assert done.returncode == 2
    assert "unknown rule `NO-SUCH-RULE`" in done.stderr and "pain-sdm rules list" in done.stderr
    assert done.stdout == ""


def test_show_suggests_the_rule_meant_and_redirects_a_criterion_id(aid: DecisionAid) -> None:
    rule = next(r for r in aid.rulebook.rules if r.criteria)
    typo = run_cli("rules", "show", rule.id.lower())
    assert typo.returncode == 2
    assert f"did you mean `{rule.id}`" in typo.stderr
    criterion = rule.criteria[0]
    encoding = [r.id for r in aid.rulebook.rules if criterion in r.criteria]
    redirected = run_cli("rules", "show", criterion)
    assert redirected.returncode == 2
    assert f"`{criterion}` is a published criterion, not a rule; rules that encode it: {', '.join(encoding)}" in (
        redirected.stderr
    )


def test_show_gives_the_thresholds_a_rule_depends_on_through_derived_facts(aid: DecisionAid) -> None:
    """A rule reading `first_block_positive` depends on the block threshold, which differs per profile."""
    rulebook = aid.rulebook

    def indirect(rule: Any) -> list[tuple[str, str, str]]:
        out = []
        for atom in rule.when.atoms():
            if atom.fact in rulebook.derived_facts:
                deriving = rulebook.rule(rulebook.derived_facts[atom.fact])
                out += [(a.param, atom.fact, deriving.id) for a in deriving.when.atoms() if a.param]
        return out

    rule = next(
        r
        for r in rulebook.rules
        if not any(a.param for a in r.when.atoms())
        and any(len({rulebook.parameters[p].value(x) for x in rulebook.profiles}) > 1 for p, _, _ in indirect(r))
    )
    out = run_cli("rules", "show", rule.id).stdout
    assert "Thresholds it depends on through derived facts (value in each profile):" in out
    for pid, _fact, _deriving in indirect(rule):
        param = rulebook.parameters[pid]
        values = ", ".join(f"{p} {param.value(p):g}" for p in rulebook.profiles)
        assert f"  {pid} ({param.unit}): {values}" in out
        assert re.search(rf"^  {pid} .*; via \w+ \([A-Z0-9-]+\)$", out, re.M)
    assert any(f"via {fact} ({deriving})" in out for _, fact, deriving in indirect(rule))


# -- explain ---------------------------------------------------------------------------------------


def test_explain_lists_the_trace_in_firing_order_with_derived_facts_justified(aid: DecisionAid) -> None:
    result = evaluate_json(SCIATICA)
    done = run_cli("explain", SCIATICA)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    steps = re.findall(r"^\s*\d+\. ([A-Z]{2,5}-[A-Z0-9-]+) v\d+", out, re.M)
    assert steps == [f["rule_id"] for f in result["trace"]]
    trace_part, derived_part = out.split("Derived facts and what justifies them:")
    for finding in result["trace"]:
        if finding["kind"] == "status":
            assert f"{', '.join(finding['procedures'])} -> {finding['status']}" in trace_part
    shown = {f["derived"]: f["holds"] for f in result["derived"]}
    assert False in shown.values(), "the example should show a derived fact false"
    for fact in aid.rulebook.derived_facts:
        word = {True: "true", False: "false", None: "unknown"}[shown.get(fact)]
        assert re.search(rf"^  {fact}: {word}\b", derived_part, re.M), fact
    for option in result["options"]:
        assert f"  {option['procedure']}: {option['status']}" in out


def test_explain_uses_the_profile(aid: DecisionAid) -> None:
    out = run_cli("explain", SCIATICA, "--profile", "us-medicare").stdout
    assert "(us-medicare)" in out


def single_question_derivations(aid: DecisionAid, procedure: str) -> list[tuple[str, str, str]]:
    """(derived fact, its rule, the one question it reads) for facts the procedure's opening rules read."""
    rulebook, out = aid.rulebook, []
    openers = [
        r
        for r in rulebook.rules
        if r.then.status in ("candidate", "after_prerequisite") and procedure in r.then.procedures
    ]
    for fact in dict.fromkeys(a.fact for r in openers for a in r.when.atoms() if a.fact in rulebook.derived_facts):
        assert fact is not None
        rule = rulebook.rule(rulebook.derived_facts[fact])
        atoms = list(rule.when.atoms())
        if len(atoms) == 1 and atoms[0].fact in aid.questionnaire.questions and not rule.profiles:
            out.append((fact, rule.id, atoms[0].fact or ""))
    return out


@pytest.fixture(scope="module")
def half_answered(aid: DecisionAid, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[Any]]:
    """Sciatica, with one question a derived fact needs left out and another marked 'unknown' (not sure)."""
    procedure, picked = next(
        (p, found) for p in PROCEDURE_IDS if len(found := single_question_derivations(aid, p)) >= 2
    )
    answers = yaml.safe_load(Path(SCIATICA).read_text())
    (_, _, left_out), (_, _, not_sure) = picked[:2]
    answers.pop(left_out, None)
    answers[not_sure] = "unknown"
    path = tmp_path_factory.mktemp("half") / "answers.yaml"
    path.write_text(yaml.safe_dump(answers))
    return path, procedure, picked[:2]


def test_explain_names_the_answers_that_leave_a_derived_fact_unknown(half_answered: tuple[Path, str, Any]) -> None:
    path, _, ((left_fact, left_rule, left_q), (sure_fact, sure_rule, sure_q)) = half_answered
    done = run_cli("explain", str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"  {left_fact}: unknown: {left_rule} could not decide it (not answered: {left_q})" in out
    assert f"  {sure_fact}: unknown: {sure_rule} could not decide it (marked 'not sure': {sure_q})" in out


def test_explain_says_what_a_default_status_is_and_gives_threshold_units(aid: DecisionAid, tmp_path: Path) -> None:
    # the shipped rules leave no procedure to the fallback (invariant safety-no-fallback): a reviewer's
    # copy without NB-ASK does, for a nerve block while the conditions are not answered
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    layer = yaml.safe_load((rules / "30-prerequisites.yaml").read_text())
    layer["rules"] = [r for r in layer["rules"] if r["id"] != "NB-ASK"]
    (rules / "30-prerequisites.yaml").write_text(yaml.safe_dump(layer, sort_keys=False))
    answers = yaml.safe_load(Path(SCIATICA).read_text())
    del answers["conditions"]
    path = tmp_path / "no-conditions.yaml"
    path.write_text(yaml.safe_dump(answers))
    result = evaluate_json(str(path), "--rules", str(rules))
    out = run_cli("explain", str(path), "--rules", str(rules)).stdout
    fallback = [o["procedure"] for o in result["options"] if [r["rule_id"] for r in o["reasons"]] == ["FALLBACK"]]
    assert fallback == ["nerve_block"], "without NB-ASK, unanswered conditions leave the nerve block to the fallback"
    assert "  nerve_block: not_indicated (no rule set a status, so it is not_indicated by default" in out
    used = {k for f in result["trace"] for k in f["parameters"]}
    assert used
    for pid in used:
        param = aid.rulebook.parameters[pid]
        assert re.search(rf"thresholds: .*\b{pid} = [\d.]+ {re.escape(param.unit)}", out), pid


def test_why_not_tells_an_answer_not_given_from_one_marked_not_sure(half_answered: tuple[Path, str, Any]) -> None:
    path, procedure, ((_, _, left_q), (_, _, sure_q)) = half_answered
    done = run_cli("why-not", procedure, str(path))
    assert done.returncode == 0, done.stderr
    assert re.search(rf"\[UNKNOWN\]\s+{left_q} .*; patient: not answered$", done.stdout, re.M)
    assert re.search(rf"\[UNKNOWN\]\s+{sure_q} .*; patient: not sure$", done.stdout, re.M)


# -- why-not ---------------------------------------------------------------------------------------


def openers(aid: DecisionAid, procedure: str, profile: str) -> list[Any]:
    results, _ = aid.evaluator(profile).evaluate_rules(aid.read_answers(Path(SCIATICA)).model_dump())
    return [
        r
        for r in results
        if r.rule.then.status in ("candidate", "after_prerequisite") and procedure in r.rule.then.procedures
    ]


@pytest.mark.parametrize("profile", ["consensus", "us-medicare"])
def test_why_not_checks_every_rule_that_could_open_the_procedure(aid: DecisionAid, profile: str) -> None:
    result = evaluate_json(SCIATICA, "--profile", profile)
    closed = next(
        o for o in result["options"] if o["status"] in ("not_indicated", "deferred") and o["procedure"] != "nerve_block"
    )
    procedure = closed["procedure"]
    done = run_cli("why-not", procedure, SCIATICA, "--profile", profile)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0].endswith(f": {closed['status']}.")
    for reason in closed["reasons"]:
        assert reason["rule_id"] in out
    candidates = openers(aid, procedure, profile)
    assert candidates
    for res in candidates:
        assert f"{res.rule.id} v{res.rule.version}:" in out
        for atom in res.atoms:
            if atom.truth is False and atom.param is not None:
                value = aid.rulebook.parameters[atom.param].value(profile)
                assert re.search(rf"NOT MET\]\s.*\b{value:g} .*\({atom.param}\W.*; patient: ", out), atom
    assert "Derived facts these rules read:" in out


def test_why_not_refuses_an_unknown_procedure() -> None:
    done = run_cli("why-not", "acupuncture", SCIATICA)
    assert done.returncode == 2
    assert "unknown procedure `acupuncture`" in done.stderr
    assert all(p in done.stderr for p in PROCEDURE_IDS)


def test_why_not_refuses_bad_answers(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pain_duration_months: three\n")
    done = run_cli("why-not", "nerve_block", str(bad))
    assert done.returncode == 2
    assert "pain_duration_months" in done.stderr


# -- rules coverage --------------------------------------------------------------------------------


def test_coverage_counts_firings_over_the_golden_cases(aid: DecisionAid) -> None:
    done = run_cli("rules", "coverage")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    cases = load_cases()
    assert out.startswith(f"{len(cases)} golden cases")
    always = next(r for r in aid.rulebook.rules if r.active and r.when.all == [] and not r.profiles)
    assert re.search(rf"^{always.id}\s+\w+\s+{len(cases)}\s", out, re.M)
    for rule in aid.rulebook.rules:
        if rule.active:
            assert re.search(rf"^{rule.id}\s", out, re.M), rule.id


def test_coverage_names_the_rules_that_never_fired(tmp_path: Path, aid: DecisionAid) -> None:
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "one.yaml").write_text(
        yaml.safe_dump({"cases": [{"id": "only-sciatica", "base": "sciatica", "expect": {}}]})
    )
    fired = {f["rule_id"] for f in evaluate_json(SCIATICA)["trace"] if f["holds"]}
    done = run_cli("rules", "coverage", "--cases", str(cases))
    assert done.returncode == 0, done.stderr
    never = done.stdout.split("Never fired")[1]
    for rule in aid.rulebook.rules:
        if rule.active:
            assert (f"  {rule.id}\n" in never or f"  {rule.id} (" in never) == (rule.id not in fired), rule.id
    assert run_cli("rules", "coverage", "--cases", str(cases), "--fail-under", "100").returncode == 1


def test_coverage_refuses_a_missing_cases_directory(tmp_path: Path) -> None:
    done = run_cli("rules", "coverage", "--cases", str(tmp_path / "nothing"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    a_file = tmp_path / "cases.yaml"
    a_file.write_text("cases: []\n")
    done = run_cli("rules", "coverage", "--cases", str(a_file))
    assert done.returncode == 2
    assert f"cases directory `{a_file}` is not a directory" in done.stderr


def test_coverage_says_why_it_fails_and_refuses_a_percentage_over_100(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "one.yaml").write_text(yaml.safe_dump({"cases": [{"id": "only-sciatica", "base": "sciatica"}]}))
    under = run_cli("rules", "coverage", "--cases", str(cases), "--fail-under", "99.5")
    assert under.returncode == 1
    shown = re.search(r"Rule coverage: ([\d.]+)%", under.stdout)
    assert shown and f"rule coverage {shown.group(1)}% is under --fail-under 99.5%" in under.stderr
    assert run_cli("rules", "coverage", "--cases", str(cases), "--fail-under", "101").returncode == 2


# -- rules diff ------------------------------------------------------------------------------------


def edit(rules: Path) -> dict[str, str]:
    """Remove the epidural candidate rules, retitle a rule without a version bump, add a rule, change a parameter."""
    made: dict[str, str] = {}
    for path in sorted(rules.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if path.name == "parameters.yaml":
            param = data["parameters"][0]
            param["default"] = param["default"] + 1
            made["parameter"] = param["id"]
        elif isinstance(data, dict) and data.get("layer") == "option":
            keep = []
            for rule in data["rules"]:
                then = rule["then"]
                if then.get("status") == "candidate" and "epidural_steroid_injection" in then["procedures"]:
                    made.setdefault("removed", rule["id"])
                    continue
                keep.append(rule)
            retitled = next(r for r in keep if r["id"] != made.get("removed"))
            retitled["title"] += " (reworded)"
            made["retitled"] = retitled["id"]
            added = {**copy.deepcopy(retitled), "id": "ZZ-NEW-RULE", "title": "A new rule"}
            keep.append(added)
            data["rules"] = keep
        else:
            continue
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return made


def test_diff_of_two_directories_shows_rule_changes_and_golden_cases_that_change(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(ROOT / "rules", old)
    shutil.copytree(ROOT / "rules", new)
    made = edit(new)
    done = run_cli("rules", "diff", str(old), str(new))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"- removed {made['removed']} " in out
    assert "+ added   ZZ-NEW-RULE v" in out
    assert re.search(rf"~ changed {made['retitled']} \(v\d+, VERSION NOT BUMPED\): title", out)
    assert f"~ parameter {made['parameter']}:" in out
    expect_candidate = [
        c.id for c in load_cases() if c.expect.statuses.get("epidural_steroid_injection") == "candidate"
    ]
    assert expect_candidate
    for case_id in expect_candidate:
        assert re.search(rf"^  {re.escape(case_id)} \[.*epidural_steroid_injection: candidate -> ", out, re.M)


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_diff_of_two_git_revisions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(ROOT / "rules", repo / "rules")
    shutil.copytree(ROOT / "knowledge", repo / "knowledge")
    git(repo, "init", "-q")
    git(repo, "add", "rules", "knowledge")
    git(repo, "commit", "-q", "-m", "v1")
    made = edit(repo / "rules")
    git(repo, "commit", "-q", "-am", "v2")
    done = run_cli("rules", "diff", "HEAD~1", "HEAD", "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^Rules: HEAD~1 \([0-9a-f]{12}\) -> HEAD \([0-9a-f]{12}\)", done.stdout)
    assert f"- removed {made['removed']} " in done.stdout
    same = run_cli("rules", "diff", "HEAD", "HEAD", "--repo", str(repo))
    assert "No rule, parameter or profile changed." in same.stdout
    assert re.search(r"Golden cases: \d+ run under both; 0 change outcome", same.stdout)


def test_diff_refuses_what_is_neither_a_directory_nor_a_revision(tmp_path: Path) -> None:
    done = run_cli("rules", "diff", "no-such-revision-xyz", "HEAD", "--repo", str(ROOT))
    assert done.returncode == 2
    assert "neither a rules directory nor a git revision" in done.stderr
    outside = run_cli("rules", "diff", "HEAD", "HEAD", "--repo", str(tmp_path))
    assert outside.returncode == 2
    assert f"{tmp_path} is not in a git repository" in outside.stderr


def test_diff_shows_every_changed_field_of_a_parameter_and_names_a_side_that_does_not_load(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(ROOT / "rules", old)
    shutil.copytree(ROOT / "rules", new)
    data = yaml.safe_load((new / "parameters.yaml").read_text())
    param = data["parameters"][0]
    param["description"] += " (reworded)"
    param["sources"] = param["sources"][:1] + ["nice-ng59"] if "nice-ng59" not in param["sources"] else ["cms-l39240"]
    (new / "parameters.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    done = run_cli("rules", "diff", str(old), str(new))
    assert done.returncode == 0, done.stderr
    assert f"~ parameter {param['id']}: description: " in done.stdout and "(reworded)" in done.stdout
    assert f"~ parameter {param['id']}: sources: " in done.stdout
    assert f"~ parameter {param['id']}: values" not in done.stdout
    (old / "profiles.yaml").unlink()
    broken = run_cli("rules", "diff", str(old), str(new))
    assert broken.returncode == 2
    assert f"the OLD rules, {old}, cannot be compared" in broken.stderr and "profiles.yaml" in broken.stderr


# -- rules book ------------------------------------------------------------------------------------


def test_book_in_markdown_has_every_procedure_rule_parameter_and_a_sign_off_table(aid: DecisionAid) -> None:
    done = run_cli("rules", "book", "--format", "md")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("# pain-sdm rulebook")
    assert f"Rulebook version `{aid.rulebook.version}`" in out
    for pid in PROCEDURE_IDS:
        assert f"(`{pid}`)" in out
    for rule in aid.rulebook.rules:
        assert f"#### {rule.id} v{rule.version}:" in out
    assert "## Derived facts" in out
    header = "| parameter | unit | " + " | ".join(aid.rulebook.profiles) + " | confidence | sources |"
    assert header in out
    for pid in aid.rulebook.parameters:
        assert f"| `{pid}` |" in out
    if any(p.confidence != "confirmed" for p in aid.rulebook.parameters.values()):
        assert "**UNCONFIRMED**" in out
    assert "| reviewer | role | date | signature |" in out


def test_book_in_html_is_written_atomically_and_never_overwritten_without_force(tmp_path: Path) -> None:
    target = tmp_path / "book.html"
    done = run_cli("rules", "book", "--format", "html", "-o", str(target))
    assert done.returncode == 0, done.stderr
    html = target.read_text()
    assert '<table class="signoff">' in html and "<th>signature</th>" in html
    assert "<script" not in html
    target.write_text("keep me")
    again = run_cli("rules", "book", "--format", "html", "-o", str(target))
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert target.read_text() == "keep me"
    assert run_cli("rules", "book", "--format", "html", "-o", str(target), "--force").returncode == 0
    assert target.read_text() == html
    assert [p.name for p in tmp_path.iterdir()] == ["book.html"]


def test_book_format_follows_the_file_name_and_a_contradiction_is_refused(tmp_path: Path) -> None:
    small = str(Path(__file__).parent / "fixtures" / "broken_rules" / "base")
    html = tmp_path / "book.html"
    done = run_cli("rules", "book", "-o", str(html), "--rules", small)
    assert done.returncode == 0, done.stderr
    assert html.read_text().startswith("<!DOCTYPE html>")
    pdf = tmp_path / "book.pdf"
    refused = run_cli("rules", "book", "--format", "md", "-o", str(pdf), "--rules", small)
    assert refused.returncode == 2
    assert f"--format md does not match the file name {pdf}" in refused.stderr
    assert not pdf.exists()


@pytest.mark.parametrize("where", ["missing_folder", "a_directory", "refused_by_the_system"])
def test_an_unwritable_output_is_a_clear_error_exit_2_and_nothing_written(tmp_path: Path, where: str) -> None:
    assert where != "refused_by_the_system" or Path("/proc/self").is_dir(), "needs Linux's /proc"
    target = {
        "missing_folder": tmp_path / "no-such-folder" / "book.md",
        "a_directory": tmp_path,
        "refused_by_the_system": Path("/proc/pain-sdm-book.md"),
    }[where]
    before = sorted(tmp_path.iterdir())
    done = run_cli(
        "rules", "book", "-o", str(target), "--rules", str(Path(__file__).parent / "fixtures" / "broken_rules" / "base")
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("pain-sdm: ") and str(target) in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_book_as_pdf(tmp_path: Path) -> None:
    """On the small fixture rulebook: WeasyPrint takes tens of seconds on the whole real one."""
    from pypdf import PdfReader

    small = str(Path(__file__).parent / "fixtures" / "broken_rules" / "base")
    assert run_cli("rules", "book", "--format", "pdf", "--rules", small).returncode == 2
    target = tmp_path / "book.pdf"
    done = run_cli("rules", "book", "--format", "pdf", "-o", str(target), "--rules", small)
    assert done.returncode == 0, done.stderr
    reader = PdfReader(target)
    text = "".join(page.extract_text() for page in reader.pages)
    assert "ESI-CAND v1" in text and "Derived facts" in text
    assert "Sign-off" in text and "signature" in text
