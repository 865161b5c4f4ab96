"""What a rule tells the patient states the thresholds the chosen profile applies, never other ones.

An explanation or caution may write `{parameter_id}`; it is filled from the profile's value. A
number written out with a parameter's unit ("3 months", "80%", "5 out of 10") must equal the
value, in that profile, of a parameter with that unit which the rule reads (directly or through
the derived facts it reads). So when a profile changes a threshold, no text keeps the old one.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
import yaml

from engine.errors import RulebookError
from engine.evaluation.aid import DecisionAid
from engine.model.rulebook import PLACEHOLDER, Rule, fill_parameters
from engine.presentation.explain import Wording
from engine.presentation.rulebook_doc import render_book, render_card, rule_card

ROOT = Path(__file__).resolve().parent.parent

# A number after "in" or "to" is a time window or the end of a range ("in 12 months", "6 to 12
# months"), not a threshold.
UNIT_PATTERNS = {
    "months": r"(?<!in )(?<!to )\b(\d+(?:\.\d+)?) months?",
    "weeks": r"(\d+(?:\.\d+)?) weeks?",
    "% relief": r"(\d+(?:\.\d+)?)%",
    "out of 10": r"(\d+(?:\.\d+)?) out of 10",
    "injections": r"(\d+(?:\.\d+)?) epidurals?",
}


def _params_read(aid: DecisionAid, rule: Rule) -> set[str]:
    rules = [rule] + [aid.rulebook.rule(aid.rulebook.derived_facts[f]) for f in aid.rulebook.derived_read([rule])]
    return {a.param for r in rules for a in r.when.atoms() if a.param}


def _cases(aid: DecisionAid) -> list[tuple[str, str]]:
    return [(r.id, p) for p in aid.rulebook.profiles for r in aid.rulebook.active_rules(p)]


def test_every_stated_threshold_is_the_profiles_parameter(aid: DecisionAid) -> None:
    wrong = []
    for rule_id, profile in _cases(aid):
        rule = aid.rulebook.rule(rule_id)
        values = {pid: p.value(profile) for pid, p in aid.rulebook.parameters.items()}
        params = _params_read(aid, rule)
        for text in (rule.explanation, rule.then.caution or ""):
            shown = fill_parameters(text, values)
            for unit, pattern in UNIT_PATTERNS.items():
                allowed = {values[p] for p in params if aid.rulebook.parameters[p].unit == unit}
                if not allowed:
                    continue
                for number in re.findall(pattern, shown):
                    if float(number) not in allowed:
                        wrong.append(f"{rule_id} under {profile}: says {number} {unit}, its parameters say {allowed}")
    assert not wrong, "\n".join(wrong)


def test_a_profile_that_changes_a_threshold_changes_the_text(aid: DecisionAid) -> None:
    rule = aid.rulebook.rule("DER-CONS-WEEKS")
    texts = {
        p: fill_parameters(rule.explanation, {pid: par.value(p) for pid, par in aid.rulebook.parameters.items()})
        for p in ("us-medicare", "us-commercial")
    }
    assert "at least 4 weeks" in texts["us-medicare"]
    assert "at least 2 weeks" in texts["us-commercial"]


def test_the_patient_sees_the_filled_text_in_the_result(aid: DecisionAid) -> None:
    answers = aid.parse_answers(yaml.safe_load((ROOT / "examples" / "sciatica.yaml").read_text()))
    for profile, weeks in (("us-medicare", "4"), ("us-commercial", "2")):
        result = aid.evaluate(answers, profile, compare_profiles=False)
        texts = [f.text for f in result.trace]
        assert all("{" not in t for t in texts), [t for t in texts if "{" in t]
        assert f"for at least {weeks} weeks" in " ".join(texts)


def test_a_placeholder_must_name_a_parameter(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    path = rules / "10-derived.yaml"
    path.write_text(
        path.read_text().replace("at least {conservative_min_weeks} weeks", "at least {no_such_param} weeks")
    )
    with pytest.raises(RulebookError, match=r"`\{no_such_param\}` names no parameter"):
        DecisionAid.load(rules, ROOT / "knowledge")


# ----------------------------------------------------------------- what reviewers see of the same texts


def _rules_with_placeholders(aid: DecisionAid) -> list[Rule]:
    return [r for r in aid.rulebook.rules if PLACEHOLDER.search(r.explanation + (r.then.caution or ""))]


def test_some_rules_state_a_parameter_in_their_text(aid: DecisionAid) -> None:
    assert len(_rules_with_placeholders(aid)) >= 5


@pytest.mark.parametrize("fmt", ["card", "md", "html"])
def test_rule_cards_and_the_rulebook_show_values_never_raw_placeholders(aid: DecisionAid, fmt: str) -> None:
    """`rules show`, `rules book` (Markdown and HTML) fill each `{parameter}` and name it."""
    rules = _rules_with_placeholders(aid)
    shown = (
        {r.id: render_card(rule_card(aid, r)) for r in rules}
        if fmt == "card"
        else {"book": str(render_book(aid, fmt, dt.date(2026, 12, 3)))}  # type: ignore[arg-type]
    )
    if fmt == "md":  # Markdown escapes its markup characters: compare the text a reader sees
        shown = {where: text.replace("\\", "") for where, text in shown.items()}
    for where, text in shown.items():
        raw = sorted(set(PLACEHOLDER.findall(text)) & set(aid.rulebook.parameters))
        assert not raw, f"{where} shows raw placeholders {raw}"
    for r in rules:
        text = shown[r.id] if fmt == "card" else shown["book"]
        for pid in PLACEHOLDER.findall(r.explanation + (r.then.caution or "")):
            values = {aid.rulebook.parameters[pid].value(p) for p in r.profiles or aid.rulebook.profiles}
            one = f"{next(iter(values)):g} [{pid}" if len(values) == 1 else f"[{pid}: "
            assert one in text, f"{r.id}: `{{{pid}}}` should read {one!r}"


def test_a_card_gives_each_profiles_value_where_they_differ_and_only_the_rules_profiles(aid: DecisionAid) -> None:
    wording = Wording(aid)
    text = "by {mbb_positive_percent}% or more"
    every = {p: aid.rulebook.parameters["mbb_positive_percent"].value(p) for p in aid.rulebook.profiles}
    assert len(set(every.values())) > 1, "the example needs a parameter that differs by profile"
    listed = wording.text(text)
    for profile, value in every.items():
        assert f"{profile} {value:g}" in listed
    assert wording.text(text, ["us-medicare"]) == f"by {every['us-medicare']:g} [mbb_positive_percent]% or more"
    assert Wording(aid, "consensus").text(text) == f"by {every['consensus']:g} [mbb_positive_percent]% or more"


def test_explain_states_the_chosen_profiles_value(aid: DecisionAid) -> None:
    rule = aid.rulebook.rule("DER-CONS-WEEKS")
    for profile in ("us-medicare", "us-commercial"):
        weeks = aid.rulebook.parameters["conservative_min_weeks"].value(profile)
        assert f"{weeks:g} [conservative_min_weeks]" in Wording(aid, profile).text(rule.explanation)
