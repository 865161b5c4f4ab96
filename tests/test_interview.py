"""The clinician walkthrough, driven through the real questionary prompts over a pipe.

`PipeAsker` is the interview's real `QuestionaryAsker`, given a prompt_toolkit pipe as its
input. Before each prompt it types the keys that a person would press to give the scripted
answer (arrow keys and enter, space to tick, text then enter, Ctrl-C), so questionary itself
reads the keys, runs the validation and returns the answer. It records every prompt's key
(a question id, or 'review', 'profile', ...), so the tests can say what was asked.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, run_cli
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.base import PipeInput
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from engine.errors import AnswersError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.interview.session import SURE_ITEMS, Session, load_session, save_session
from engine.interview.walkthrough import (
    CHANGE,
    CHOOSE,
    DONE,
    EXIT_END_OF_INPUT,
    EXIT_INTERRUPTED,
    NO_ANSWER,
    PLEASE_CHOOSE,
    PROFILE_HELP,
    SURE_INTRO,
    UNDECIDED,
    AnswerRejected,
    Choice,
    Interview,
    QuestionaryAsker,
    Validator,
    answer_words,
    condition_truth,
    is_asked,
    missing,
    number_hint,
    parse_number,
    prepare,
    progress,
    prune,
    review_title,
    wrap_message,
)
from engine.model.questionnaire import UNKNOWN, Question
from engine.model.values import option_fit
from engine.presentation.grid import OUTWEIGHED, ROWS, leaning_points, option_grids, option_panel
from engine.presentation.templating import md_escape

DOWN, UP, ENTER, SPACE, CLEAR, CTRL_C = "\x1b[B", "\x1b[A", "\r", " ", "\x15", "\x03"


@dataclass(frozen=True)
class Reject:
    """Give `bad` first (the prompt must refuse it), then `good`."""

    bad: Any
    good: Any


INTERRUPT = "<ctrl-c>"
END_OF_INPUT = "<end of input>"

Policy = Callable[[Question], Any]


class PipeAsker(QuestionaryAsker):
    """The real questionary prompts, typed into through a pipe; records what was asked."""

    def __init__(self, pipe: PipeInput, aid: DecisionAid, script: dict[str, list[Any]], policy: Policy) -> None:
        super().__init__(input=pipe, output=DummyOutput())
        self.pipe = pipe
        self.aid = aid
        self.script = {k: list(v) for k, v in script.items()}
        self.policy = policy
        self.asked: list[str] = []
        self.rejected: dict[str, list[str]] = {}
        self.offered: dict[str, list[tuple[str, str | None]]] = {}
        """For each select prompt, every time it was shown: its first choice's title and the preselected value."""

    def _next(self, key: str) -> Any:
        self.asked.append(key)
        queue = self.script.get(key)
        if queue:
            return queue.pop(0)
        question = self.aid.questionnaire.questions.get(key)
        if question is None:
            raise AssertionError(f"the script has no answer for the prompt {key!r}")
        return self.policy(question)

    def _special(self, action: Any) -> bool:
        if action == INTERRUPT:
            self.pipe.send_text(CTRL_C)
            return True
        if action == END_OF_INPUT:
            self.pipe.close()
            return True
        return False

    def _recording(self, key: str, validate: Validator) -> Validator:
        def check(raw: Any) -> str | None:
            problem = validate(raw)
            if problem is not None:
                self.rejected.setdefault(key, []).append(problem)
            return problem

        return check

    def select(self, key: str, message: str, choices: Sequence[Choice], default: str | None = None) -> str:
        action = self._next(key)
        self.offered.setdefault(key, []).append((choices[0].title, default))
        if not self._special(action):
            values = [c.value for c in choices if not c.separator]
            start = values.index(default) if default is not None else 0
            moves = values.index(action) - start
            self.pipe.send_text((DOWN * moves if moves > 0 else UP * -moves) + ENTER)
        return super().select(key, message, choices, default)

    def checkbox(
        self, key: str, message: str, choices: Sequence[Choice], checked: Sequence[str], validate: Validator
    ) -> list[str]:
        action = self._next(key)
        if not self._special(action):
            values = [c.value for c in choices]
            steps = [action.bad, action.good] if isinstance(action, Reject) else [action]
            state = set(checked)
            for n, want in enumerate(steps):
                keys = "" if n == 0 else UP * (len(values) - 1)
                for i, value in enumerate(values):
                    keys += SPACE if (value in want) != (value in state) else ""
                    keys += DOWN if i < len(values) - 1 else ""
                state = set(want)
                self.pipe.send_text(keys + ENTER)
        return super().checkbox(key, message, choices, checked, self._recording(key, validate))

    def text(self, key: str, message: str, default: str, validate: Validator, instruction: str = "") -> str:
        action = self._next(key)
        if not self._special(action):
            steps = [action.bad, action.good] if isinstance(action, Reject) else [action]
            self.pipe.send_text("".join(CLEAR + pasted_if_long(typed(v)) + ENTER for v in steps))
        return super().text(key, message, default, self._recording(key, validate), instruction)


def typed(value: Any) -> str:
    """What a person types for an answer: '?' for not sure."""
    return "?" if value == UNKNOWN else str(value)


def pasted_if_long(text: str) -> str:
    """A long text arrives as a terminal paste (one bracketed-paste event), as a clinician pastes notes;
    typed key by key, 20,000 characters cost a minute of the prompt's key handling."""
    return f"\x1b[200~{text}\x1b[201~" if len(text) > 100 else text


@dataclass
class Run:
    code: int
    asker: PipeAsker
    screen: str
    session: Session | None

    @property
    def questions_asked(self) -> list[str]:
        return [k for k in self.asker.asked if k in self.asker.aid.questionnaire.questions]


@pytest.fixture
def pipe() -> Iterator[PipeInput]:
    with create_pipe_input() as pipe_input:
        yield pipe_input


def interview(
    aid: DecisionAid,
    path: Path,
    script: dict[str, list[Any]],
    policy: Policy,
    session: Session | None = None,
    profile: str | None = None,
    width: int = 400,
) -> Run:
    """Run one whole interview over a fresh pipe, as the command does; return what happened."""
    with create_pipe_input() as pipe_input:
        asker = PipeAsker(pipe_input, aid, script, policy)
        screen = io.StringIO()
        console = Console(file=screen, width=width, color_system=None)
        code = Interview(aid, asker, console, session or Session(), path, profile).run()
    saved = load_session(path) if path.exists() else None
    return Run(code, asker, screen.getvalue(), saved)


def flat(text: str) -> str:
    return " ".join(text.split())


# --- Answer policies: what a patient says to the questions a test does not script ---------------


def from_answers(answers: dict[str, Any]) -> Policy:
    """Answer as in an answers file; anything it leaves out is 'not sure' (blank for text)."""
    return lambda q: answers.get(q.id, "" if q.type == "text" else UNKNOWN)


def opening_everything(q: Question) -> Any:
    """Answers that open every skip condition: yes, the first choice, every choice, mid-range numbers."""
    if q.type == "yes_no":
        return "yes"
    if q.type == "multiple":
        return list(q.values)
    if q.type == "single":
        return q.values[0]
    if q.type == "number":
        assert q.min is not None and q.max is not None
        return int((q.min + q.max) // 2)
    return f"about {q.id}"


def closing_everything(q: Question) -> Any:
    """Answers that open no skip condition: no, none, zero, and a neck pain."""
    if q.type == "yes_no":
        return "no"
    if q.type == "multiple":
        return []
    if q.type == "single":
        return "neck" if q.id == "pain_region" else q.values[0]
    if q.type == "number":
        return q.min
    return ""


def sure(*answers: str) -> dict[str, list[Any]]:
    return {f"sure_{key}": [a] for key, a in zip(SURE_ITEMS, answers, strict=True)}


CLOSE = {"leaning": [UNDECIDED], **sure("yes", "yes", "yes", "yes"), "notes": [""], "summary": [""]}
CLOSE.update({"decision": [""], "clinician": [""]})
CLOSE.update({"ottawa_when": ["weeks"], "ottawa_stage": ["considering"], "ottawa_role": ["shared"]})
CLOSE.update({"ottawa_pressure": ["no"], "ottawa_others": [""], "ottawa_next_step": [""]})
CLOSE.update({"keep_session": ["keep"], "review": [DONE], "profile": ["consensus"], "results": [DONE]})
TRIALS = ["scs_trial_done", "itp_trial_done", "pns_trial_done"]
"""The implant trial questions, asked only when the patient has not decided against any implanted device."""


def answered(aid: DecisionAid, patient: dict[str, Any]) -> Session:
    """A draft with every question that applies answered as in `patient` (tests of the close start here)."""
    policy = from_answers(patient)
    answers: dict[str, Any] = {}
    while todo := missing(aid.questionnaire, answers):
        answers[todo[0].id] = policy(todo[0])
    return Session(answers=answers)


def example(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "examples" / name).read_text())
    assert isinstance(data, dict)
    return data


# --- The question flow ---------------------------------------------------------------------------


def test_a_number_out_of_range_is_refused_with_the_range(aid: DecisionAid) -> None:
    age = aid.questionnaire.questions["age_years"]
    with pytest.raises(AnswerRejected, match=r"^150 is out of range\. Please give a number from 0 to 120 years"):
        parse_number(age, "150")
    with pytest.raises(AnswerRejected, match="whole number"):
        parse_number(age, "45.5")
    with pytest.raises(AnswerRejected, match="type a whole number from 0 to 120 years"):
        parse_number(age, "forty")
    assert parse_number(age, " 45 ") == 45
    assert parse_number(age, "?") == UNKNOWN
    months = aid.questionnaire.questions["pain_duration_months"]
    assert parse_number(months, "4.5") == 4.5, "part of a month may be given"
    with pytest.raises(AnswerRejected, match=r"^0\.5 is out of range\. Please give a number from 3 to 1200 months"):
        parse_number(months, "0.5")  # under 3 months is given in weeks
    relief = aid.questionnaire.questions["esi_last_relief_percent"]
    assert parse_number(relief, "50%") == 50, "a percentage may be typed with its sign"
    with pytest.raises(AnswerRejected, match="from 0% to 100%"):
        parse_number(relief, "150%")
    with pytest.raises(AnswerRejected):
        parse_number(age, "50%")


def test_each_number_hint_names_the_range_once_in_plain_words(aid: DecisionAid) -> None:
    hints = {q.id: number_hint(q) for q in aid.questionnaire.questions.values() if q.type == "number"}
    assert hints["age_years"] == "(a whole number from 0 to 120 years; type ? if not sure)"
    assert hints["pain_intensity"] == "(a whole number from 0 to 10; type ? if not sure)"
    assert hints["esi_last_relief_percent"] == "(a number from 0% to 100%; type ? if not sure)"
    for qid, hint in hints.items():
        q = aid.questionnaire.questions[qid]
        assert f"{q.max:g}" in hint and ", out of" not in hint and "% relief" not in hint, qid


def test_review_answers_read_like_the_choices(aid: DecisionAid) -> None:
    questions = aid.questionnaire.questions
    assert answer_words(questions["rfa_previous"], "yes") == "Yes"
    assert answer_words(questions["rfa_previous"], UNKNOWN) == "Not sure"
    assert answer_words(questions["conditions"], UNKNOWN) == "Not sure"
    assert answer_words(questions["rfa_relief_percent"], 60) == "60% relief"
    assert answer_words(questions["age_years"], 42) == "42 years"
    assert answer_words(questions["physical_therapy_weeks"], 1) == "1 week"
    assert answer_words(questions["esi_count_12m"], 1) == "1 injection"
    assert answer_words(questions["red_flags"], []) == "none"


@pytest.mark.parametrize("width", [80, 140])
def test_each_review_line_fits_the_terminal_and_shows_question_and_answer(aid: DecisionAid, width: int) -> None:
    for q in aid.questionnaire.questions.values():
        for value in (longest_answer(q), UNKNOWN):
            title = review_title(q, value, width)
            assert len(title) <= width - 5, (q.id, title)
            shown = answer_words(q, value)
            assert title.startswith(q.prompt[:20]) and f"[{shown[:8]}" in title, (q.id, title)


def longest_answer(q: Question) -> Any:
    if q.type == "multiple":
        return list(q.values)
    if q.type == "text":
        return "x" * q.max_length
    if q.type == "number":
        return q.max
    return max(q.values, key=lambda v: len(q.label_of(v)))


def test_long_prompts_wrap_between_words(aid: DecisionAid) -> None:
    for q in aid.questionnaire.questions.values():
        for width in (60, 80, 140):
            wrapped = wrap_message(q.prompt, width)
            shown = ("? " + wrapped).split("\n")
            assert all(len(line) < width for line in shown), (q.id, width, shown)
            assert all(line.startswith("  ") for line in shown[1:]), "lines after the first line up after '? '"
            assert wrapped.split() == q.prompt.split(), "no word is split or lost"


def test_a_question_is_asked_only_when_its_skip_condition_is_true(aid: DecisionAid) -> None:
    q = aid.questionnaire.questions["neurogenic_claudication"]
    assert is_asked(q, {"pain_region": "low_back"})
    assert not is_asked(q, {"pain_region": "neck"})
    assert q.ask_if is not None and condition_truth(q.ask_if, {"pain_region": UNKNOWN}) is None
    assert not is_asked(q, {"pain_region": UNKNOWN}), "an unknown skip condition skips the question"
    assert not is_asked(q, {}), "an unanswered earlier question counts as unknown"
    life = aid.questionnaire.questions["life_expectancy_months"]
    assert is_asked(life, {"conditions": ["cancer_pain"]})
    assert not is_asked(life, {"conditions": ["sciatica"]})


def test_answers_to_questions_that_no_longer_apply_are_dropped(aid: DecisionAid) -> None:
    answers = {"rfa_previous": "no", "rfa_relief_percent": 60, "age_years": 50}
    assert prune(aid.questionnaire, answers) == {"age_years": 50, "rfa_previous": "no"}
    asked_next = [q.id for q in missing(aid.questionnaire, {"rfa_previous": "yes"})]
    assert {"rfa_relief_percent", "rfa_relief_months", "rfa_months_ago"} <= set(asked_next)


# --- Whole interviews through the real prompts ---------------------------------------------------


def test_a_complete_interview_with_a_refused_value_an_edit_and_the_results(aid: DecisionAid, tmp_path: Path) -> None:
    patient = example("sciatica.yaml")
    new_intensity = (patient["pain_intensity"] + 1) % 11
    expected = prune(aid.questionnaire, {**patient, "pain_intensity": new_intensity})
    result = aid.evaluate(aid.parse_answers(expected), "uk-nice")
    script = {
        **CLOSE,
        "results": [*(o.procedure for o in result.options), DONE],  # each option in detail, one at a time
        "age_years": [Reject(150, patient["age_years"])],
        "review": ["pain_intensity", DONE],
        "pain_intensity": [patient["pain_intensity"], new_intensity],
        "profile": ["uk-nice"],
        "leaning": ["epidural_steroid_injection"],
        **sure("yes", "no", "yes", "yes"),
        "notes": ["Talked about ESI risks"],
        "decision": ["Think it over; call next week"],
        "clinician": ["Dr A. Example"],
    }
    path = tmp_path / "session.json"
    run = interview(aid, path, script, from_answers(patient))

    assert run.code == 0
    assert run.asker.rejected["age_years"] == [parse_error(aid, "age_years", "150")]
    assert run.session is not None and run.session.complete
    stored = {k: v for k, v in run.session.answers.items() if v not in (UNKNOWN, "")}
    assert stored == {k: v for k, v in expected.items() if v not in (UNKNOWN, "")}
    assert run.session.profile == "uk-nice"
    assert run.session.leaning == "epidural_steroid_injection"
    assert run.session.sure is not None and run.session.sure.conflict and not run.session.sure.understand
    assert run.session.notes == "Talked about ESI risks"
    assert run.session.decision == "Think it over; call next week"
    assert run.session.clinician == "Dr A. Example"
    # The edit re-asked exactly the edited question, between two reviews.
    review_at = [i for i, k in enumerate(run.asker.asked) if k == "review"]
    assert run.asker.asked[review_at[0] + 1 : review_at[1]] == ["pain_intensity"]

    assert aid.evaluate(aid.parse_answers(run.session.answers), "uk-nice").statuses() == result.statuses()
    screen = flat(run.screen)
    assert "UK NICE guidance" in screen
    for label in ROWS:
        assert label in screen
    for option in result.options:
        assert flat(option.name) in screen
        for reason in option.reasons:
            assert flat(reason.text) in screen
        for step in option.next_steps:
            assert flat(step.text) in screen
    assert "Talk more before deciding" in screen
    assert flat(SURE_INTRO) in screen and flat(PROFILE_HELP) in screen
    assert flat(SURE_ITEMS["understand"]) in screen
    for point in leaning_points(aid, result, run.session.answers, "epidural_steroid_injection"):
        assert flat(point) in screen


def parse_error(aid: DecisionAid, qid: str, raw: str) -> str:
    with pytest.raises(AnswerRejected) as caught:
        parse_number(aid.questionnaire.questions[qid], raw)
    return str(caught.value)


def defined_question_ids() -> list[str]:
    """Every question id that knowledge/questionnaire.yaml defines, read from the YAML itself (not through the
    loader): the questions it lists, and the tried / weeks (unless `ask_weeks: false`) / outcome questions of
    each treatment in knowledge/treatments.yaml for its treatment-history section."""
    definition = yaml.safe_load((ROOT / "knowledge" / "questionnaire.yaml").read_text())
    treatments = yaml.safe_load((ROOT / "knowledge" / "treatments.yaml").read_text())["terms"]
    ids = []
    for section in definition["sections"]:
        ids += [q["id"] for q in section.get("questions", [])]
        if section.get("treatment_history"):
            for t in treatments:
                parts = ("tried", "weeks", "outcome") if t.get("ask_weeks", True) else ("tried", "outcome")
                ids += [f"{t['id']}_{part}" for part in parts]
    return ids


@pytest.mark.slow  # the longest end-to-end walks run with the slow tests (CI runs them every time)
def test_every_question_is_asked_when_every_skip_condition_opens(aid: DecisionAid, tmp_path: Path) -> None:
    """Two walks open every skip condition between them: some questions exclude each other (the weeks or
    the months of the pain; the baclofen test judged by tone for spasticity, other trials by relief). Not
    declining implants opens the trial questions."""
    conditions = list(aid.questionnaire.questions["conditions"].values)
    first = interview(
        aid,
        tmp_path / "first.json",
        {
            **CLOSE,
            "conditions": [Reject([UNKNOWN, "sciatica"], conditions)],
            "pain_duration_unit": ["weeks"],
            "declines_implants": ["no"],
        },
        opening_everything,
    )
    others = [c for c in conditions if c != "spasticity"]
    second = interview(
        aid,
        tmp_path / "second.json",
        {**CLOSE, "conditions": [others], "pain_duration_unit": ["months"], "declines_implants": ["no"]},
        opening_everything,
    )
    assert first.code == second.code == 0
    defined = defined_question_ids()
    assert len(defined) > 60 and "oral_baclofen_failed" in defined and "surgery_outcome" in defined
    for run in (first, second):
        assert len(run.questions_asked) == len(set(run.questions_asked)), "no question asked twice"
    assert {"pain_duration_weeks", "itp_trial_tone_change"} <= set(first.questions_asked)
    assert {"pain_duration_months", "itp_trial_relief_percent"} <= set(second.questions_asked)
    assert sorted(set(first.questions_asked) | set(second.questions_asked)) == sorted(defined)
    assert first.asker.rejected["conditions"], "'Not sure' ticked with a condition is refused"
    assert first.session is not None
    assert first.session.answers["conditions"] == conditions
    assert first.session.answers["patient_label"] == "about patient_label"


def test_skip_conditions_that_stay_closed_skip_their_questions(aid: DecisionAid, tmp_path: Path) -> None:
    run = interview(aid, tmp_path / "s.json", CLOSE, closing_everything)
    assert run.code == 0
    # Every answer to the duration's unit opens one follow-up (the first, "weeks", opens the weeks), and
    # "no" to declining implants opens the trial questions.
    opened = {"pain_duration_weeks", *TRIALS}
    expected = [q.id for q in aid.questionnaire.questions.values() if q.ask_if is None or q.id in opened]
    assert run.questions_asked == expected
    multiple = [q for q in aid.questionnaire.questions.values() if q.type == "multiple" and q.id in run.questions_asked]
    assert run.screen.count("You chose: none") == len(multiple), "a ticked-nothing answer is said in words"


def test_an_edit_that_opens_questions_asks_them_and_an_edit_that_closes_them_drops_them(
    aid: DecisionAid, tmp_path: Path
) -> None:
    follow_ups = ["rfa_relief_percent", "rfa_relief_months", "rfa_months_ago"]
    script = {
        **CLOSE,
        "review": ["rfa_previous", "rfa_previous", DONE],
        "rfa_previous": ["no", "yes", "no"],
        "rfa_relief_percent": [60],
        "rfa_relief_months": [8],
        "rfa_months_ago": [Reject(-3, 14)],
    }
    path = tmp_path / "s.json"
    run = interview(aid, path, script, closing_everything)
    assert run.code == 0
    first, second, third = [i for i, k in enumerate(run.asker.asked) if k == "review"]
    assert run.asker.asked[first + 1 : second] == ["rfa_previous", *follow_ups]
    assert run.asker.asked[second + 1 : third] == ["rfa_previous"]
    assert run.asker.rejected["rfa_months_ago"]
    assert run.session is not None
    assert run.session.answers["rfa_previous"] == "no"
    assert not set(follow_ups) & set(run.session.answers)


def test_an_interrupted_interview_is_saved_and_resumes_with_only_what_is_missing(
    aid: DecisionAid, tmp_path: Path
) -> None:
    patient = example("facet-back-pain.yaml")
    order = [q.id for q in aid.questionnaire.questions.values() if is_asked(q, patient)]
    stop_at = order[5]
    path = tmp_path / "draft.json"
    first = interview(aid, path, {**CLOSE, stop_at: [INTERRUPT]}, from_answers(patient))
    assert first.code == EXIT_INTERRUPTED
    assert f"pain-sdm interview --resume {path}" in flat(first.screen)
    assert first.session is not None and not first.session.complete
    assert list(first.session.answers) == order[:5]

    second = interview(aid, path, CLOSE, from_answers(patient), session=first.session)
    assert second.code == 0
    assert second.questions_asked[0] == stop_at
    assert not set(second.questions_asked) & set(order[:5])
    assert second.session is not None and second.session.complete


def test_the_end_of_input_saves_the_draft_and_a_resume_after_the_results_goes_on(
    aid: DecisionAid, tmp_path: Path
) -> None:
    patient = example("failed-back-surgery.yaml")
    path = tmp_path / "draft.json"
    first = interview(
        aid, path, {**CLOSE, "sure_values": [END_OF_INPUT]}, from_answers(patient), answered(aid, patient)
    )
    assert first.code == EXIT_END_OF_INPUT
    assert "--resume" in first.screen
    assert first.session is not None and first.session.sure is None and first.session.leaning == UNDECIDED

    second = interview(aid, path, {**CLOSE, **sure("yes", "yes", "yes", "yes")}, from_answers(patient), first.session)
    assert second.code == 0
    # The review is offered (with 'Everything is right' preselected), then the results; no question or leaning.
    assert second.asker.offered["review"] == [("Everything is right: show the options", DONE)]
    assert second.asker.asked[:6] == ["review", "results", *(f"sure_{k}" for k in SURE_ITEMS)]
    assert second.session is not None and second.session.sure is not None and not second.session.sure.conflict
    assert "SURE score 4 of 4" in second.screen


# --- The flow: progress, nothing chosen for the patient, implants, results, resume -----------------


def test_each_question_says_question_n_of_m_counting_the_questions_that_apply(aid: DecisionAid, tmp_path: Path) -> None:
    run = interview(aid, tmp_path / "s.json", CLOSE, closing_everything)
    assert run.code == 0
    shown = [(int(n), int(m)) for n, m in re.findall(r"Question (\d+) of (\d+)", run.screen)]
    asked = len(run.questions_asked)
    assert [n for n, _ in shown] == list(range(1, asked + 1)), "one count per question, in order"
    assert all(n <= m for n, m in shown) and shown[-1] == (asked, asked)


def test_the_count_grows_when_an_answer_opens_follow_up_questions(aid: DecisionAid) -> None:
    questionnaire = aid.questionnaire
    first = progress(questionnaire, {}, "patient_label")
    assert (first.number, first.previous) == (1, None)
    age = progress(questionnaire, {"patient_label": ""}, "age_years")
    assert (age.number, age.previous) == (2, "patient_label")
    without = progress(questionnaire, {"rfa_previous": "no"}, "rfa_previous")
    with_ablation = progress(questionnaire, {"rfa_previous": "yes"}, "rfa_previous")
    assert with_ablation.total == without.total + 3, "the three questions about the last ablation"
    assert with_ablation.number == without.number


def test_no_answer_is_chosen_for_the_patient_and_enter_at_once_asks_again(aid: DecisionAid, tmp_path: Path) -> None:
    script = {
        **CLOSE,
        "cardiac_device": [NO_ANSWER, "no", "yes"],  # Enter at once, then "no"; changed to "yes" on review
        "review": ["cardiac_device", DONE],
        **sure("yes", "yes", "yes", "yes"),
        "sure_understand": [NO_ANSWER, "yes"],
    }
    run = interview(aid, tmp_path / "s.json", script, closing_everything)
    assert run.code == 0
    questions = aid.questionnaire.questions
    first_shown = {key: shown[0] for key, shown in run.asker.offered.items()}
    chosen = [key for key in first_shown if key in questions or key.startswith(("sure_", "ottawa_"))]
    safety = [q for q in run.questions_asked if questions[q].section == "safety" and questions[q].type == "yes_no"]
    assert len(safety) >= 5 and set(safety) <= set(chosen)
    for key in chosen:
        assert first_shown[key] == (CHOOSE, NO_ANSWER), f"{key}: an answer is preselected"
    assert run.asker.asked.count("cardiac_device") == 3 and run.screen.count(PLEASE_CHOOSE) == 2
    assert run.asker.offered["cardiac_device"][-1] == ("Yes", "no"), "an answer being changed starts on itself"
    assert run.session is not None and run.session.answers["cardiac_device"] == "yes"
    assert run.session.sure is not None and run.session.sure.understand


def test_declining_implants_is_asked_before_the_trial_questions_and_skips_them(
    aid: DecisionAid, tmp_path: Path
) -> None:
    order = list(aid.questionnaire.questions)
    assert all(order.index("declines_implants") < order.index(trial) for trial in TRIALS)
    for answer, asked in (("yes", False), ("no", True), (UNKNOWN, True)):
        upcoming = {q.id for q in missing(aid.questionnaire, {"declines_implants": answer})}
        assert set(TRIALS) <= upcoming if asked else not set(TRIALS) & upcoming, answer

    run = interview(aid, tmp_path / "s.json", {**CLOSE, "declines_implants": ["yes"]}, closing_everything)
    assert run.code == 0 and "declines_implants" in run.questions_asked
    assert not {q for q in run.questions_asked if "_trial_" in q}, "no trial question, nor its follow-ups"
    assert run.session is not None
    result = aid.evaluate(aid.parse_answers(run.session.answers))
    implants = ["spinal_cord_stimulation", "intrathecal_pump", "peripheral_nerve_stimulation"]
    assert all(result.option(pid).declined is not None for pid in implants)


def test_the_results_show_one_option_at_a_time_with_a_way_back_to_change_an_answer(
    aid: DecisionAid, tmp_path: Path
) -> None:
    patient = example("facet-back-pain.yaml")
    session = answered(aid, patient)
    result = aid.evaluate(aid.parse_answers(session.answers), "consensus")
    assert not result.urgent_assessment
    picked, other = result.options[0], result.options[-1]
    other_reasons = {flat(r.text) for r in other.reasons} - {flat(r.text) for r in picked.reasons}
    assert other_reasons
    red_flag = aid.questionnaire.questions["red_flags"].values[0]
    script = {
        **CLOSE,
        "results": [picked.procedure, CHANGE, DONE],
        "review": [DONE, "red_flags", DONE],
        "red_flags": [[red_flag]],
    }
    run = interview(aid, tmp_path / "s.json", script, from_answers(patient), session)
    assert run.code == 0
    _, first, again = run.screen.split(". Rulebook version ")  # once in each overview
    assert all(flat(r.text) in flat(first) for r in picked.reasons), "the option asked for is shown in full"
    assert not any(text in flat(run.screen) for text in other_reasons), "an option not asked for is not"
    assert "Urgent assessment needed" not in first and "Urgent assessment needed" in again, "worked out again"
    assert run.session is not None and run.session.answers["red_flags"] == [red_flag]


def test_a_resume_after_the_results_offers_the_review_and_a_change_asks_the_leaning_and_sure_again(
    aid: DecisionAid, tmp_path: Path
) -> None:
    patient = example("sciatica.yaml")
    path = tmp_path / "s.json"
    first = interview(aid, path, CLOSE, from_answers(patient), answered(aid, patient))
    assert first.code == 0 and first.session is not None and first.session.complete
    assert "To see the results again, or change an answer:" in first.screen

    new_intensity = (patient["pain_intensity"] + 1) % 11
    script = {**CLOSE, "review": ["pain_intensity", DONE], "pain_intensity": [new_intensity]}
    second = interview(aid, path, script, from_answers(patient), first.session)
    assert second.code == 0
    assert second.asker.asked[:4] == ["review", "pain_intensity", "review", "results"]
    assert {"leaning", *(f"sure_{k}" for k in SURE_ITEMS)} <= set(second.asker.asked)
    assert second.session is not None and second.session.answers["pain_intensity"] == new_intensity


def test_the_printed_resume_command_is_one_line_however_narrow_the_terminal(aid: DecisionAid, tmp_path: Path) -> None:
    folder = tmp_path / "sessions kept by the pain clinic for this week"
    folder.mkdir()
    path = folder / "visit-with-a-rather-long-file-name.json"
    run = interview(aid, path, {"patient_label": [INTERRUPT]}, closing_everything, width=40)
    assert run.code == EXIT_INTERRUPTED
    command = f"pain-sdm interview --resume {shlex.quote(str(path))}"
    assert len(command) > 100 and command in run.screen.splitlines(), "whole, on a line of its own, quoted"


def test_the_profile_given_on_the_command_line_is_preselected(aid: DecisionAid, tmp_path: Path) -> None:
    script = {**CLOSE, "profile": ["us-medicare"]}
    patient = example("sciatica.yaml")
    run = interview(aid, tmp_path / "s.json", script, from_answers(patient), answered(aid, patient), "us-medicare")
    assert run.questions_asked == []
    assert run.session is not None and run.session.profile == "us-medicare"


def test_deleting_the_session_at_the_end_leaves_no_file(aid: DecisionAid, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    patient = example("sciatica.yaml")
    run = interview(aid, path, {**CLOSE, "keep_session": ["delete"]}, from_answers(patient), answered(aid, patient))
    assert run.code == 0 and not path.exists()


def test_a_closing_text_over_its_limit_is_refused_at_the_prompt_and_asked_again(
    aid: DecisionAid, tmp_path: Path
) -> None:
    path = tmp_path / "s.json"
    patient = example("sciatica.yaml")
    script = {**CLOSE, "clinician": [Reject("A" * 201, "Dr A. Example")], "ottawa_others": [Reject("x" * 20_001, "")]}
    script |= {"ottawa_when": ["weeks"], "ottawa_stage": ["considering"], "ottawa_role": ["shared"]}
    script |= {"ottawa_pressure": ["no"], "ottawa_next_step": [""]}
    run = interview(aid, path, {**script, **sure("yes", "no", "yes", "yes")}, from_answers(patient))
    assert run.code == 0
    assert run.asker.rejected["clinician"] == ["Please keep this to 200 characters or fewer (it has 201)."]
    assert run.asker.rejected["ottawa_others"] == ["Please keep this to 20,000 characters or fewer (it has 20,001)."]
    assert run.session is not None and run.session.clinician == "Dr A. Example"


def test_the_printable_summary_is_offered_at_the_close(
    aid: DecisionAid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "s.json"
    (tmp_path / "taken.md").write_text("")
    script = {**CLOSE, "summary": ["md"], "summary_file": [Reject(tmp_path / "taken.md", "~/summary.md")]}
    patient = example("stenosis-claudication.yaml")
    run = interview(aid, path, script, from_answers(patient), answered(aid, patient))
    assert run.code == 0
    summary = (tmp_path / "summary.md").read_text()
    result = aid.evaluate(aid.parse_answers(example("stenosis-claudication.yaml")))
    for option in result.options:
        assert md_escape(option.name) in summary, "every option is named (as Markdown text)"
    assert f"Wrote the summary to {tmp_path / 'summary.md'}" in flat(run.screen)
    assert "Your notes are not on it" not in run.screen, "no hint without notes"
    assert run.asker.rejected["summary_file"] == [f"{tmp_path / 'taken.md'} already exists; choose another name"]
    assert (tmp_path / "taken.md").read_text() == "", "an existing file is never overwritten"


def test_the_summary_offered_at_the_close_leaves_the_notes_off_and_says_how_to_print_them(
    aid: DecisionAid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    script = {**CLOSE, "notes": ["Call back in two weeks."], "summary": ["md"], "summary_file": ["~/summary.md"]}
    patient = example("stenosis-claudication.yaml")
    run = interview(aid, tmp_path / "s.json", script, from_answers(patient), answered(aid, patient))
    assert run.code == 0
    assert "Call back in two weeks." not in (tmp_path / "summary.md").read_text()
    assert "Your notes are not on it" in run.screen and "--include-notes" in run.screen


def test_every_finished_interview_is_stored_as_a_record(aid: DecisionAid, tmp_path: Path) -> None:
    from engine.records.store import RecordStore

    patient = example("facet-back-pain.yaml")
    db = tmp_path / "records.sqlite3"
    script = {**CLOSE, **sure("yes", "yes", "no", "yes"), "notes": ["second visit"]}
    script["decision"] = ["Test blocks first"]
    screen = io.StringIO()
    with create_pipe_input() as pipe_input:
        asker = PipeAsker(pipe_input, aid, script, from_answers(patient))
        console = Console(file=screen, width=200)
        session = answered(aid, patient)
        code = Interview(aid, asker, console, session, tmp_path / "s.json", records_db=db).run()
    assert code == 0
    with RecordStore.open(db, create=False) as store:
        assert store.count() == 1
        record = store.get(1)
    assert record.notes == "second visit"
    assert record.decision == "Test blocks first"
    assert f"Stored as record number 1 in {db}" in flat(screen.getvalue()), "the database file is named"
    assert "record" not in asker.asked, "nobody is asked: every evaluation is kept"
    assert record.sure == {"sure": True, "understand": True, "values": False, "support": True}
    assert record.patient_label == patient.get("patient_label")
    expected = aid.evaluate(aid.parse_answers(session.answers), session.profile)
    assert record.statuses() == expected.statuses()


def test_a_finished_session_run_again_stores_a_record_only_when_something_changed(
    aid: DecisionAid, tmp_path: Path
) -> None:
    from engine.records.store import RecordStore

    patient = example("sciatica.yaml")
    db, path = tmp_path / "records.sqlite3", tmp_path / "s.json"

    def close(session: Session, notes: str) -> str:
        screen = io.StringIO()
        with create_pipe_input() as pipe_input:
            asker = PipeAsker(pipe_input, aid, {**CLOSE, "notes": [notes]}, from_answers(patient))
            code = Interview(aid, asker, Console(file=screen, width=200), session, path, records_db=db).run()
        assert code == 0
        return flat(screen.getvalue())

    close(answered(aid, patient), "first visit")
    again = close(load_session(path), "first visit")
    assert f"Already stored as record number 1 in {db}; nothing changed." in again
    changed = close(load_session(path), "first visit; will think it over")
    assert f"Stored as record number 2 in {db}" in changed
    with RecordStore.open(db, create=False) as store:
        assert store.count() == 2
        assert store.get(2).notes == "first visit; will think it over"
    assert load_session(path).record_id == 2


# --- The grid ------------------------------------------------------------------------------------


def test_the_grid_groups_options_by_status_with_conservative_care_always_a_column(aid: DecisionAid) -> None:
    for name in ("sciatica.yaml", "red-flags.yaml", "crps-declines-implants.yaml"):
        result = aid.evaluate(aid.parse_answers(example(name)))
        columns = [str(col.header).split("\n")[0] for t in option_grids(aid, result, 400) for col in t.columns[1:]]
        assert columns == [o.name for o in sorted(result.options, key=lambda o: group_rank(o.status))]
        assert aid.knowledge.procedures["conservative_care"].name in columns


def group_rank(status: str) -> int:
    return {"candidate": 0, "after_prerequisite": 1, "not_indicated": 2, "deferred": 2}[status]


def test_a_value_that_conflicts_with_the_leaning_is_a_point_to_discuss(aid: DecisionAid) -> None:
    answers = {**example("crps-declines-implants.yaml"), "value_avoid_implants": "very_important"}
    result = aid.evaluate(aid.parse_answers(answers))
    points = leaning_points(aid, result, answers, "spinal_cord_stimulation")
    assert any("avoiding a device in the body" in p for p in points)
    assert not any("device" in p for p in leaning_points(aid, result, answers, "conservative_care"))


def test_reasons_that_did_not_decide_the_status_are_shown_apart(aid: DecisionAid) -> None:
    patient = example("stenosis-claudication.yaml")
    result = aid.evaluate(aid.parse_answers(patient))
    option = result.option("facet_joint_injection")
    deciding = [flat(r.text) for r in option.reasons if r.status == option.status]
    outweighed = [flat(r.text) for r in option.reasons if r.status != option.status]
    assert deciding and outweighed, "this example has a reason for a less restrictive status"
    panel = rendered(option_panel(aid, result, option, patient))
    last_deciding = max(panel.index(text) for text in deciding)
    assert panel.index("Why") < last_deciding < panel.index(OUTWEIGHED) < min(panel.index(t) for t in outweighed)


def test_options_open_now_show_each_value_and_the_others_one_line(aid: DecisionAid) -> None:
    patient = example("failed-back-surgery.yaml")
    result = aid.evaluate(aid.parse_answers(patient))
    assert {o.status for o in result.options} >= {"candidate", "after_prerequisite", "not_indicated"}
    for option in result.options:
        notes = option_fit(aid.values, patient, option.procedure)
        assert notes
        panel = rendered(option_panel(aid, result, option, patient))
        if option.status in ("candidate", "after_prerequisite"):
            assert all(flat(note.note) in panel for note in notes), option.procedure
        else:
            assert not any(flat(note.note) in panel for note in notes), option.procedure
            for note in notes:
                assert note.label[1:] in panel.split("What matters to you:")[1], option.procedure


def test_leaning_to_an_option_open_after_steps_names_the_steps(aid: DecisionAid) -> None:
    patient = example("failed-back-surgery.yaml")
    result = aid.evaluate(aid.parse_answers(patient))
    pump = result.option("intrathecal_pump")
    assert pump.status == "after_prerequisite" and pump.next_steps
    points = leaning_points(aid, result, patient, "intrathecal_pump")
    assert any("open only after further steps" in p for p in points)
    for step in pump.next_steps:
        assert any(step.text.rstrip(".") in p for p in points)


def rendered(renderable: Any) -> str:
    screen = io.StringIO()
    Console(file=screen, width=400, color_system=None).print(renderable)
    return flat(screen.getvalue())


# --- Starting: options, resume files and the terminal --------------------------------------------


def test_bad_start_options_are_refused_before_anything_is_asked(aid: DecisionAid, tmp_path: Path) -> None:
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    with pytest.raises(UsageError, match="already exists"):
        prepare(aid, resume=None, save=taken, profile=None)
    with pytest.raises(UsageError, match="unknown profile"):
        prepare(aid, resume=None, save=tmp_path / "new.json", profile="nowhere")
    bad = tmp_path / "bad.json"
    save_session(Session(answers={"age_years": 500}), bad)
    with pytest.raises(AnswersError, match="age_years"):
        prepare(aid, resume=bad, save=None, profile=None)
    good = tmp_path / "good.json"
    save_session(Session(answers={"age_years": 50}), good)
    session, path = prepare(aid, resume=good, save=None, profile=None)
    assert path == good and session.answers == {"age_years": 50}


def test_a_profile_given_when_resuming_replaces_the_one_chosen_before(aid: DecisionAid, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_session(Session(answers={"age_years": 50}, profile="consensus"), path)
    assert prepare(aid, resume=path, save=None, profile="uk-nice")[0].profile == "uk-nice"
    assert prepare(aid, resume=path, save=None, profile=None)[0].profile == "consensus"


def test_without_a_terminal_the_command_exits_at_once_pointing_to_evaluate(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "interview"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pain-sdm evaluate" in proc.stderr and "terminal" in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing is written"
    assert time.monotonic() - started < 30


def test_output_to_a_pipe_exits_at_once_with_a_clear_message(tmp_path: Path) -> None:
    import pty

    parent, child = pty.openpty()  # the input is a terminal; the output is not
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), "interview"],
            stdin=child,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        os.close(child)
        os.close(parent)
    assert proc.returncode == 2, proc.stderr
    assert "output is not one" in proc.stderr and "pipe" in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_a_records_database_in_a_missing_folder_is_refused_before_the_interview(tmp_path: Path) -> None:
    proc = run_cli("interview", "--db", str(tmp_path / "nowhere" / "records.sqlite3"), input="", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nowhere" in proc.stderr and "does not exist" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_a_bad_resume_file_is_named_through_the_cli(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "pain-sdm/session/1", "answers": {"pain_intensity": 11}}')
    proc = run_cli("interview", "--resume", str(broken), input="")
    assert proc.returncode == 2
    assert "broken.json" in proc.stderr and "pain_intensity" in proc.stderr
