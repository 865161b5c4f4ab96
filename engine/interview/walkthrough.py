"""The clinician walkthrough: questions, review, results on screen and the SURE test, in a terminal.

The walkthrough is split in two, so tests can drive every part of it:

- the question flow, as plain functions: which questions apply (`is_asked` follows each
  question's `ask_if` with three-valued logic: a question is asked only when its condition is
  true), which are still missing, and how a typed or chosen answer becomes a valid answer
  (`parse_number`, `check_choices`, `choices_answer`, `check_text`);
- the prompting, behind the `Asker` protocol. `QuestionaryAsker` asks with questionary, in a
  real terminal and in the tests (over prompt_toolkit pipe input).

Nothing is chosen for the patient: a choice with no answer yet starts on '(choose an answer)',
which is no answer. Each question says "Question N of M" (`progress`, shared with the web form).
The results show the options at a glance, then one option at a time, as asked, with a way back to
change any answer (the results are then worked out again).

Nothing is lost: the draft session is saved after every answer. Ctrl-C or the end of input
saves it and prints how to resume (`pain-sdm interview --resume FILE`); a resumed interview
asks only what is missing. Answers whose question no longer applies (after an edit on the
review screen) are removed, so the saved answers always match what was asked.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shlex
import shutil
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from pydantic import BaseModel
from rich.console import Console
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from engine.errors import AnswersError, PainSdmError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Result
from engine.interview.session import (
    OTTAWA_CHOICES,
    OTTAWA_TEXTS,
    SURE_ITEMS,
    TEXT_LIMITS,
    OttawaGuide,
    Session,
    SureResult,
    load_session,
    record_digest,
    save_session,
    too_long,
)
from engine.model.conditions import Condition, Truth
from engine.model.facts import known
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.questionnaire import UNKNOWN, Question, Questionnaire
from engine.presentation.grid import grouped, leaning_points, option_panel, render_overview
from engine.presentation.report import STATUS_LABELS

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells expect."""
EXIT_END_OF_INPUT = 1
"""Exit code when the input ends before the interview does."""

NOT_SURE = "Not sure"
CHECKBOX_HINT = "(space to tick or untick, enter when done; tick nothing for none)"
NOT_SURE_WORDS = frozenset({"?", "not sure", "unknown", "don't know", "dont know"})
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
DONE = "__done__"
NO_ANSWER = "__no_answer__"
CHOOSE = "(choose an answer)"
"""The first line of a choice list with no answer yet: the pointer starts here, so nothing is chosen for the
patient (Enter on it asks again)."""
PLEASE_CHOOSE = "Please choose one of the answers. Nothing is chosen for you."
CHANGE = "__change__"
UNDECIDED = "undecided"
CLOSING_TEXTS = {
    "decision": "What did you decide together today, if anything? (optional)",
    "notes": "Notes for the record (optional)",
    "clinician": "The clinician's name, to print on the summary (optional)",
}
"""The free-text answers asked at the close, by session field; the summary and the record include them."""
PROFILE_HELP = (
    "Published guidelines differ on a few points, such as how many test blocks come before nerve "
    "ablation. Choose the guidelines your clinic follows; if you are not sure, keep the default."
)
SURE_INTRO = "Four quick questions, to check how sure you feel about the choice (the SURE test). Answer yes or no."
INTRO = (
    "This is a discussion aid, not a prescription. We will go through some questions about the pain, "
    "what has been tried, safety, and what matters to you. Then you will see the options to discuss, "
    "side by side, with the reasons for each. The decision is yours, made together with your clinician."
)

Validator = Callable[[Any], str | None]
"""Checks a raw answer: returns the reason it is rejected, or None when it is fine."""


class Interrupted(Exception):
    """The person stopped the interview (Ctrl-C) or the input ended."""

    def __init__(self, kind: Literal["interrupt", "end_of_input"]) -> None:
        super().__init__(kind)
        self.kind = kind


class AnswerRejected(ValueError):
    """A typed answer is not valid; the message says why, in plain words."""


@dataclass(frozen=True)
class Choice:
    """One choice of a select or checkbox prompt; a separator is a heading that cannot be chosen."""

    title: str
    value: str = ""
    separator: bool = False


class Asker(Protocol):
    """What the interview needs from a prompt library. `key` names the prompt (a question id, or
    'review', 'profile', 'results', 'leaning', 'sure_<item>', 'ottawa_<item>', 'decision', 'notes', 'clinician',
    'summary', 'summary_file', 'keep_session').
    Each method raises `Interrupted` when the person stops or the input ends."""

    def select(self, key: str, message: str, choices: Sequence[Choice], default: str | None = None) -> str: ...

    def checkbox(
        self, key: str, message: str, choices: Sequence[Choice], checked: Sequence[str], validate: Validator
    ) -> list[str]: ...

    def text(self, key: str, message: str, default: str, validate: Validator, instruction: str = "") -> str: ...


SELECT_HINT = "(Use arrow keys)"
"""What questionary shows after a select prompt's message until it is answered."""


def wrap_message(message: str, width: int) -> str:
    """A prompt's message wrapped at word boundaries for a terminal `width` columns wide.

    prompt_toolkit would otherwise break long lines in the middle of a word. Lines after the
    first are indented to line up after the '? ' mark. A prompt whose message and answer do not
    fit on one line puts its hint and answer on a line of their own, under the message.
    """
    return "\n  ".join(textwrap.wrap(message, max(width - 3, 20)) or [""])


class QuestionaryAsker:
    """The Asker for a real terminal, built on questionary. `prompt_options` go to every prompt.

    Messages are wrapped to `width` columns (by default the terminal's width when asked).
    """

    def __init__(self, width: int | None = None, **prompt_options: Any) -> None:
        self.width = width
        self.prompt_options = prompt_options

    def columns(self) -> int:
        return self.width or shutil.get_terminal_size((100, 40)).columns

    @staticmethod
    def _ask(question: Any, choice: bool = False) -> Any:
        """`question`'s answer; Ctrl-C and Ctrl-D end the interview (the draft is kept).

        A text prompt ends on Ctrl-D by itself (when its line is empty); a choice prompt
        (`choice`) ignores Ctrl-D, so it is bound here to end it the same way.
        """
        if choice:
            from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

            end = KeyBindings()

            @end.add("c-d", eager=True)
            def _end_of_input(event: Any) -> None:
                event.app.exit(exception=EOFError)

            application = question.application
            application.key_bindings = merge_key_bindings([application.key_bindings, end])
        try:
            return question.unsafe_ask()
        except KeyboardInterrupt:
            raise Interrupted("interrupt") from None
        except EOFError:
            raise Interrupted("end_of_input") from None

    @staticmethod
    def _check(validate: Validator) -> Callable[[Any], bool | str]:
        def check(raw: Any) -> bool | str:
            problem = validate(raw)
            return True if problem is None else problem

        return check

    def select(self, key: str, message: str, choices: Sequence[Choice], default: str | None = None) -> str:
        import questionary

        options = [
            questionary.Separator(f"-- {c.title} --") if c.separator else questionary.Choice(c.title, value=c.value)
            for c in choices
        ]
        columns = self.columns()
        longest = max([len(SELECT_HINT)] + [len(c.title) for c in choices if not c.separator])
        if len(message) + longest + 4 <= columns:
            text = message  # the message and any answer fit on one line
        else:  # the hint, then the answer, go on the next line
            text = wrap_message(message, columns) + "\n "
        prompt = questionary.select(text, choices=options, default=default, **self.prompt_options)
        return str(self._ask(prompt, choice=True))

    def checkbox(
        self, key: str, message: str, choices: Sequence[Choice], checked: Sequence[str], validate: Validator
    ) -> list[str]:
        import questionary

        options = [questionary.Choice(c.title, value=c.value, checked=c.value in checked) for c in choices]
        prompt = questionary.checkbox(
            wrap_message(message, self.columns()) + "\n ",
            choices=options,
            validate=self._check(validate),
            instruction=CHECKBOX_HINT,
            **self.prompt_options,
        )
        return list(self._ask(prompt, choice=True))

    def text(self, key: str, message: str, default: str, validate: Validator, instruction: str = "") -> str:
        import questionary

        columns = self.columns()
        hint = f" {instruction}" if instruction else ""
        if len(message) + len(hint) + 12 <= columns - 3:
            text = message  # the message, its hint and a short answer fit on one line
        else:
            text = wrap_message(message, columns) + ("\n" if instruction else "")
        prompt = questionary.text(
            text,
            default=default,
            validate=self._check(validate),
            instruction=instruction or None,
            **self.prompt_options,
        )
        return str(self._ask(prompt))


# --- The question flow -------------------------------------------------------------------------


def known_facts(answers: dict[str, Any]) -> dict[str, Any]:
    """The answers as a skip condition reads them: 'unknown' (not sure) as a missing value."""
    return {fact: known(value) for fact, value in answers.items()}


def condition_truth(condition: Condition, answers: dict[str, Any]) -> Truth:
    """A skip condition on the answers so far, in three-valued logic (a missing answer is unknown).

    Skip conditions take values only (the questionnaire's loader refuses a parameter).
    """
    return condition.truth(known_facts(answers))


def _asked(question: Question, facts: dict[str, Any]) -> bool:
    return question.ask_if is None or question.ask_if.truth(facts) is True


def is_asked(question: Question, answers: dict[str, Any]) -> bool:
    """A question is asked when it has no skip condition, or its condition is true (not unknown)."""
    return _asked(question, known_facts(answers))


def prune(questionnaire: Questionnaire, answers: dict[str, Any]) -> dict[str, Any]:
    """The answers whose question still applies, in asking order (a skip condition reads earlier answers only)."""
    kept: dict[str, Any] = {}
    facts: dict[str, Any] = {}  # known_facts(kept), kept up as it grows
    for q in questionnaire.questions.values():
        if q.id in answers and _asked(q, facts):
            kept[q.id] = answers[q.id]
            facts[q.id] = known(answers[q.id])
    return kept


def applicable(questionnaire: Questionnaire, answers: dict[str, Any]) -> list[Question]:
    """The questions that apply to these answers, in asking order."""
    facts = known_facts(prune(questionnaire, answers))
    return [q for q in questionnaire.questions.values() if _asked(q, facts)]


@dataclass(frozen=True)
class Progress:
    """Where a question stands: "Question `number` of `total`", and the question asked before it."""

    number: int
    total: int
    previous: str | None


def progress(questionnaire: Questionnaire, answers: dict[str, Any], qid: str) -> Progress:
    """A question's place among those that apply to the answers so far (the total grows when an answer opens
    follow-up questions). The terminal walkthrough and the web form both show it."""
    asked = [q.id for q in applicable(questionnaire, answers)]
    index = asked.index(qid) if qid in asked else len(asked)
    return Progress(index + 1, max(len(asked), index + 1), asked[index - 1] if 0 < index <= len(asked) else None)


def missing(questionnaire: Questionnaire, answers: dict[str, Any]) -> list[Question]:
    """The questions that apply but have no answer yet, in asking order."""
    return [q for q in applicable(questionnaire, answers) if q.id not in answers]


def is_percent(q: Question) -> bool:
    return q.unit.startswith("%")


def range_words(q: Question) -> str:
    """A number question's range in words: 'from 0 to 120 years', 'from 0% to 100%', 'from 0 to 10'."""
    low, high = f"{q.min:g}", f"{q.max:g}"
    if is_percent(q):
        return f"from {low}% to {high}%"
    if q.unit.startswith("out of"):  # 'from 0 to 10', not 'from 0 to 10 out of 10'
        return f"from {low} to {high}"
    return f"from {low} to {high} {q.unit}"


def number_hint(q: Question) -> str:
    kind = "a whole number" if q.integer else "a number"
    unsure = "; type ? if not sure" if q.allow_unknown else ""
    return f"({kind} {range_words(q)}{unsure})"


def parse_number(q: Question, text: str) -> int | float | str:
    """A typed number as an answer: an int or float in range, or 'unknown' for '?' / 'not sure'.

    A percentage may be typed with its sign ('50%').
    """
    raw = text.strip().lower()
    if q.allow_unknown and raw in NOT_SURE_WORDS:
        return UNKNOWN
    assert q.min is not None and q.max is not None
    if is_percent(q):
        raw = raw.removesuffix("%").strip()
    unsure = ", or ? if you are not sure" if q.allow_unknown else ""
    kind = "a whole number" if q.integer else "a number"
    if not NUMBER.match(raw) or not math.isfinite(float(raw)):
        raise AnswerRejected(f"Please type {kind} {range_words(q)}{unsure}.")
    number = float(raw)
    if q.integer and not number.is_integer():
        raise AnswerRejected(f"Please give a whole number, with no decimals{unsure}.")
    if not q.min <= number <= q.max:
        raise AnswerRejected(f"{raw} is out of range. Please give a number {range_words(q)}{unsure}.")
    return int(number) if number.is_integer() else number


def number_default(value: Any) -> str:
    """A stored number answer as the text to edit (blank when there is none)."""
    if value is None:
        return ""
    if value == UNKNOWN:
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


def rejection(check: Callable[[Any], Any]) -> Validator:
    """A validator from a parser that raises AnswerRejected."""

    def validate(raw: Any) -> str | None:
        try:
            check(raw)
        except AnswerRejected as exc:
            return str(exc)
        return None

    return validate


def choices_for(q: Question) -> list[Choice]:
    """The choices of a single, yes/no or multiple-choice question, with 'Not sure' where allowed."""
    if q.type == "yes_no":
        options = [Choice("Yes", "yes"), Choice("No", "no")]
    else:
        options = [Choice(o.label, o.value) for o in q.options]
    if q.allow_unknown:
        options.append(Choice(NOT_SURE, UNKNOWN))
    return options


def check_choices(selected: Sequence[str]) -> str | None:
    """'Not sure' stands alone in a multiple-choice answer."""
    if UNKNOWN in selected and len(selected) > 1:
        return f"Choose '{NOT_SURE}' on its own, or untick it."
    return None


def choices_answer(q: Question, selected: Sequence[str]) -> list[str] | str:
    """Ticked choices as an answer, in the question's order ('unknown' when 'Not sure' is ticked)."""
    problem = check_choices(selected)
    if problem:
        raise AnswerRejected(problem)
    if UNKNOWN in selected:
        return UNKNOWN
    return [v for v in q.values if v in selected]


def check_text(q: Question, text: str) -> str:
    if len(text) > q.max_length:
        raise AnswerRejected(f"Please keep this to {q.max_length} characters or fewer (now {len(text)}).")
    return text.strip()


def answer_words(q: Question, value: Any) -> str:
    """An answer as shown on the review screen, in the words of the choices ('Yes', 'Not sure', '60% relief')."""
    if q.type == "text" and not value:
        return "(left blank)"
    if value is None:
        return "(not answered)"
    if value == UNKNOWN:
        return NOT_SURE
    if q.type == "yes_no":
        return str(value).capitalize()
    if q.type == "number" and is_percent(q):
        return f"{number_default(value)}{q.unit}"
    if q.type == "number" and value == 1 and q.unit.endswith("s"):
        return f"1 {q.unit[:-1]}"  # '1 week', not '1 weeks'
    return q.describe(value)


def file_name(typed: str) -> Path:
    """A file name as typed: surrounding spaces dropped, '~' for the home folder."""
    return Path(typed.strip()).expanduser()


def bullet_list(lines: Sequence[str]) -> Table:
    """Lines as a bulleted list whose wrapped lines stay indented under their bullet."""
    table = Table.grid(padding=(0, 1))
    table.add_column(width=1)
    table.add_column(ratio=1)
    for line in lines:
        table.add_row("-", line)
    return table


def shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 1)].rstrip() + "..."


def review_title(q: Question, value: Any, width: int) -> str:
    """One line of the review list: the question, then its answer in brackets, within `width` columns.

    The answer gets up to about 40% of the line, so a long answer does not hide its question; both
    are shortened with '...' rather than cut off at the edge of the terminal.
    """
    room = max(width - 5, 30)  # the list's pointer and margin take the rest
    answer = answer_words(q, value)
    answer = shorten(answer, min(len(answer), max(12, room * 2 // 5)))
    return f"{shorten(q.prompt, room - len(answer) - 4)}  [{answer}]"


# --- The interview ------------------------------------------------------------------------------


class Interview:
    """One walkthrough with one patient. `run()` returns the exit code (0, or 130 / 1 when stopped)."""

    def __init__(
        self,
        aid: DecisionAid,
        asker: Asker,
        console: Console,
        session: Session,
        path: Path,
        profile: str | None = None,
        records_db: Path | str | None = None,
    ) -> None:
        self.aid = aid
        self.asker = asker
        self.console = console
        self.session = session
        self.path = path
        self.profile = profile
        self.records_db = records_db
        self.questionnaire = aid.questionnaire
        self._section = ""

    # Saving and stopping

    def save(self) -> None:
        save_session(self.session, self.path)

    def run(self) -> int:
        try:
            self._run()
        except (Interrupted, KeyboardInterrupt, EOFError) as exc:
            interrupted = isinstance(exc, KeyboardInterrupt) or (
                isinstance(exc, Interrupted) and exc.kind == "interrupt"
            )
            self.save()
            why = "Stopped." if interrupted else "The input ended before the interview did."
            self.console.print(f"\n{why} Your answers so far are saved in {self.path}.")
            self.print_command("To carry on where you left off, run:", self.resume_command())
            return EXIT_INTERRUPTED if interrupted else EXIT_END_OF_INPUT
        return 0

    def resume_command(self) -> str:
        return f"pain-sdm interview --resume {shlex.quote(str(self.path))}"

    def print_command(self, lead: str, command: str) -> None:
        """`lead`, then `command` on a line of its own that is never wrapped, so it is copied whole."""
        self.console.print(lead)
        self.console.print(Text(command), soft_wrap=True)

    def _run(self) -> None:
        self._intro()
        self.ask_missing()
        self.review()  # also when resumed after the results: 'Everything is right' is preselected
        if self.session.profile is None:
            self.choose_profile()
        answers, result = self.show_results()
        if self.session.leaning is None:
            self.ask_leaning(result)
        self.show_leaning(result)
        if self.session.sure is None:
            self.ask_sure()
        self.show_sure()
        if self.session.ottawa is None:
            self.ask_ottawa()
        self.session.complete = True
        self.save()
        self.close(answers, result)

    def _intro(self) -> None:
        self.console.print(Panel(INTRO, title="pain-sdm: options for pain treatment", title_align="left"))
        count = len(self.session.answers)
        if count:
            self.console.print(f"Carrying on the session in {self.path} ({count} answers so far).")
            if self.session.profile is not None:
                name = self.aid.rulebook.profiles[self.session.profile].name
                self.console.print(f"Guideline profile: {name}.")
        else:
            self.console.print(f"Your answers are saved as you go, in {self.path}.")
        self.console.print("Press Ctrl-C at any time to stop; you can carry on later.\n")

    # Questions

    def set_answer(self, qid: str, value: Any) -> None:
        """Store one answer, drop answers whose question no longer applies, and save the draft."""
        self.session.answers = prune(self.questionnaire, {**self.session.answers, qid: value})
        self.save()

    def ask_missing(self) -> None:
        """Ask every question that applies and has no answer yet, saving after each."""
        while todo := missing(self.questionnaire, self.session.answers):
            question = todo[0]
            self._section_heading(question.section)
            self.set_answer(question.id, self.ask(question, self.session.answers.get(question.id)))

    def _section_heading(self, section_id: str) -> None:
        if section_id == self._section:
            return
        self._section = section_id
        section = next(s for s in self.questionnaire.sections if s.id == section_id)
        self.console.rule(section.title)
        if section.intro:
            self.console.print(section.intro)

    def ask(self, q: Question, current: Any = None) -> Any:
        """Ask one question (pre-filled with `current` when editing) and return a valid answer."""
        place = progress(self.questionnaire, self.session.answers, q.id)
        self.console.print(Text(f"Question {place.number} of {place.total}", style="dim"))
        if q.help:
            self.console.print(Text(q.help, style="dim"))
        if q.type == "number":
            raw = self.asker.text(
                q.id, q.prompt, number_default(current), rejection(lambda s: parse_number(q, s)), number_hint(q)
            )
            return parse_number(q, raw)
        if q.type == "multiple":
            checked = [UNKNOWN] if current == UNKNOWN else list(current or [])
            selected = self.asker.checkbox(q.id, q.prompt, choices_for(q), checked, check_choices)
            answer = choices_answer(q, selected)
            if answer == UNKNOWN or len(answer) != 1:  # questionary itself shows only 'done (2 selections)'
                chosen = Text(f"You chose: {answer_words(q, answer)}", style="dim")
                self.console.print(Padding(chosen, (0, 0, 0, 2)))
            return answer
        if q.type == "text":
            skip = "(enter to skip)" if "optional" in q.prompt.lower() else "(optional; enter to skip)"
            raw = self.asker.text(q.id, q.prompt, current or "", rejection(lambda s: check_text(q, s)), skip)
            return check_text(q, raw)
        return self.choose(q.id, q.prompt, choices_for(q), current)

    def choose(self, key: str, message: str, choices: Sequence[Choice], current: str | None = None) -> str:
        """One choice, with nothing chosen for the person: with no answer yet, the pointer starts on
        '(choose an answer)', which is no answer (Enter there asks again). An answer given before is
        preselected, to be kept or changed."""
        if current is not None:
            return self.asker.select(key, message, choices, current)
        while (pick := self.asker.select(key, message, [Choice(CHOOSE, NO_ANSWER), *choices], NO_ANSWER)) == NO_ANSWER:
            self.console.print(PLEASE_CHOOSE)
        return pick

    # Review and profile

    def review_table(self) -> Table:
        table = Table(title="Your answers", title_justify="left", show_lines=False)
        table.add_column("Question")
        table.add_column("Answer")
        section = ""
        for q in applicable(self.questionnaire, self.session.answers):
            if q.section != section:
                section = q.section
                title = next(s.title for s in self.questionnaire.sections if s.id == section)
                table.add_row(Text(title, style="bold"), "")
            table.add_row(q.prompt, answer_words(q, self.session.answers.get(q.id)))
        return table

    def review(self) -> None:
        """Show every answer; let any one be changed (then ask what the change opens) until all is right.

        A change made after the results were shown (from the results, or when resumed) asks the
        leaning and the SURE test again, since the options they were about may have changed.
        """
        before = dict(self.session.answers)
        self.console.print(self.review_table())  # in full once; the list below shows each change
        while True:
            choices = [Choice("Everything is right: show the options", DONE)]
            section = ""
            for q in applicable(self.questionnaire, self.session.answers):
                if q.section != section:
                    section = q.section
                    choices.append(
                        Choice(next(s.title for s in self.questionnaire.sections if s.id == section), "", True)
                    )
                choices.append(Choice(review_title(q, self.session.answers.get(q.id), self.console.width), q.id))
            pick = self.asker.select("review", "Choose an answer to change, or go on.", choices, DONE)
            if pick == DONE:
                if self.session.answers != before and (self.session.leaning, self.session.sure) != (None, None):
                    self.session.leaning, self.session.sure = None, None
                    self.save()
                return
            question = self.questionnaire.questions[pick]
            self._section = question.section  # no section heading between the list and the edited question
            self.set_answer(pick, self.ask(question, self.session.answers.get(pick)))
            self.ask_missing()

    def choose_profile(self) -> None:
        """Which guideline profile settles disagreements; the default (or --profile) is preselected."""
        rulebook = self.aid.rulebook
        chosen = self.profile or rulebook.default_profile
        if len(rulebook.profiles) > 1:
            self.console.print(Text(PROFILE_HELP, style="dim"))
            choices = [
                Choice(f"{p.name}{' (the default)' if pid == rulebook.default_profile else ''}", pid)
                for pid, p in rulebook.profiles.items()
            ]
            chosen = self.asker.select(
                "profile", "Which guidelines should settle points where published sources disagree?", choices, chosen
            )
        self.session.profile = chosen
        self.save()

    # The results

    def show_results(self) -> tuple[BaseModel, Result]:
        """The results at a glance, then one option at a time, as asked; any answer can be changed from here
        (the results are then worked out again and shown at once)."""
        while True:
            answers = self.aid.parse_answers(self.session.answers, str(self.path))
            result = self.aid.evaluate(answers, self.session.profile)
            render_overview(self.console, self.aid, result, self.session.answers)
            choices = [Choice("Go on: which option you lean towards, and the SURE test", DONE)]
            choices += [
                Choice(f"See {o.name} in detail ({STATUS_LABELS[o.status].lower()})", o.procedure)
                for _, options in grouped(result)
                for o in options
            ]
            choices.append(Choice("Change an answer", CHANGE))
            while (pick := self.asker.select("results", "What would you like to see?", choices, DONE)) not in (
                DONE,
                CHANGE,
            ):
                self.console.print(option_panel(self.aid, result, result.option(pick), self.session.answers))
            if pick == DONE:
                return answers, result
            self.review()

    # After the results

    def ask_leaning(self, result: Result) -> None:
        choices = [
            Choice(f"{o.name} ({STATUS_LABELS[o.status].lower()})", o.procedure)
            for _, options in grouped(result)
            for o in options
        ]
        choices.append(Choice("Undecided for now", UNDECIDED))
        self.session.leaning = self.asker.select(
            "leaning", "Which option are you leaning towards, if any?", choices, UNDECIDED
        )
        self.save()

    def show_leaning(self, result: Result) -> None:
        leaning = self.session.leaning
        if leaning is None or leaning == UNDECIDED:
            self.console.print("Being undecided is fine. The summary lists questions to ask before you choose.")
            return
        points = leaning_points(self.aid, result, self.session.answers, leaning)
        name = result.option(leaning).name
        self.console.print(f"You are leaning towards: {name}.")
        if points:
            body = bullet_list(points)
            self.console.print(Panel(body, title=f"Points to discuss about {name}", border_style="yellow"))
        else:
            self.console.print(f"Nothing you said matters to you conflicts with {name}.")

    def ask_sure(self) -> None:
        """The SURE test: four yes/no items, asked one by one."""
        yes_no = [Choice("Yes", "yes"), Choice("No", "no")]
        self.console.print(SURE_INTRO)
        items = {key: self.choose(f"sure_{key}", item, yes_no) == "yes" for key, item in SURE_ITEMS.items()}
        self.session.sure = SureResult(**items)
        self.save()

    @staticmethod
    def _fits(key: str) -> Validator:
        """The check for one free text of the session: at most its limit (TEXT_LIMITS), with a clear message."""
        return lambda raw: too_long(raw, TEXT_LIMITS[key])

    def ask_ottawa(self) -> None:
        """The Ottawa Personal Decision Guide's other items: timing, stage, role, others, pressure, next step."""
        chosen = {
            key: self.choose(f"ottawa_{key}", prompt, [Choice(label, value) for value, label in choices.items()])
            for key, (prompt, choices) in OTTAWA_CHOICES.items()
        }
        typed = {
            key: self.asker.text(f"ottawa_{key}", prompt, "", self._fits(key), "(enter to skip)").strip()
            for key, prompt in OTTAWA_TEXTS.items()
        }
        self.session.ottawa = OttawaGuide.model_validate({**chosen, **typed})
        self.save()

    def show_sure(self) -> None:
        sure = self.session.sure
        assert sure is not None
        if sure.conflict:
            unsure = [SURE_ITEMS[k] for k in SURE_ITEMS if not getattr(sure, k)]
            body = (
                f"SURE score {sure.score} of 4. The answers suggest the choice is not settled yet "
                "(possible decisional conflict). Take more time to talk before deciding:\n"
                + "\n".join(f"- {item} (answered no)" for item in unsure)
            )
            self.console.print(Panel(body, title="Talk more before deciding", border_style="bold red"))
        else:
            self.console.print(Panel("SURE score 4 of 4: you feel sure about the choice.", border_style="green"))

    def close(self, answers: BaseModel, result: Result) -> None:
        """Decision, notes and clinician; the summary offered; the record stored; the session kept or deleted."""
        for key, message in CLOSING_TEXTS.items():
            current = getattr(self.session, key)
            setattr(
                self.session, key, self.asker.text(key, message, current, self._fits(key), "(enter to skip)").strip()
            )
            self.save()
        self.offer_summary()
        self.store_record(answers, result)
        keep = self.asker.select(
            "keep_session",
            f"Keep the session file {self.path}? It holds the answers.",
            [Choice("Keep it", "keep"), Choice("Delete it", "delete")],
            "keep",
        )
        if keep == "delete":
            self.path.unlink(missing_ok=True)
            self.console.print(f"Deleted {self.path}.")
        else:
            self.console.print(f"The session is saved in {self.path}.")
            self.print_command("To see the results again, or change an answer:", self.resume_command())

    def offer_summary(self) -> None:
        """Offer the printable summary (engine.presentation.summary), written from the saved session."""
        formats = [Choice("PDF", "pdf"), Choice("Web page (HTML)", "html"), Choice("Markdown", "md"), Choice("No", "")]
        fmt = self.asker.select("summary", "Write the printable summary to take home?", formats, "pdf")
        if not fmt:
            return
        from engine.presentation.summary import write_summary

        def free(raw: str) -> str | None:
            if not raw.strip():
                return "Please give a file name."
            return f"{raw} already exists; choose another name" if file_name(raw).exists() else None

        default = str(self.path.with_suffix(f".{fmt}"))
        output = file_name(self.asker.text("summary_file", "Save the summary as", default, free))
        self.console.print("Writing the summary...")
        command = f"pain-sdm summary {shlex.quote(str(self.path))} --format {fmt} -o {shlex.quote(str(output))}"
        try:
            write_summary(self.aid, self.path, fmt, output, profile=self.session.profile)
        except PainSdmError as exc:
            self.console.print(f"The summary was not written: {exc}")
            self.print_command("To try again later:", command)
            return
        self.console.print(f"Wrote the summary to {output}.")
        if self.session.notes.strip():
            self.print_command("Your notes are not on it. To print them on it:", f"{command} --force --include-notes")

    def store_record(self, answers: BaseModel, result: Result) -> None:
        """Store the evaluation in the records database (engine.records.store): every interview is kept, for audit."""
        from engine.records.store import display, record_evaluation, resolve_path

        where = resolve_path(self.records_db)
        db = display(where)
        answered = answers.model_dump(mode="json")
        digest = record_digest(where, result.profile, result.rulebook_version, answered, self.session)
        if self.session.record_id is not None and self.session.record_of == digest:
            self.console.print(f"Already stored as record number {self.session.record_id} in {db}; nothing changed.")
            return
        try:
            record = record_evaluation(
                self.aid,
                answers,
                result,
                db=self.records_db,
                sure=self.session.sure,
                decision=self.session.decision or None,
                notes=self.session.notes or None,
            )
        except PainSdmError as exc:
            self.console.print(f"[bold red]The record was not stored:[/] {exc}")
            self.console.print(f"The session file keeps everything: {self.path}")
            return
        self.session.record_id, self.session.record_of = record.id, digest
        self.save()
        self.console.print(
            f"Stored as record number {record.id} in {db} "
            "(every evaluation is kept there for audit; no name is needed)."
        )


# --- Starting -----------------------------------------------------------------------------------


def default_session_path(now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(f"pain-sdm-session-{stamp}.json")


def prepare(aid: DecisionAid, *, resume: Path | None, save: Path | None, profile: str | None) -> tuple[Session, Path]:
    """Check the options and load or start the session; bad options raise before anything is asked."""
    if profile is not None:
        aid.rulebook.check_profile(profile)
    if resume is not None:
        session = load_session(resume)
        aid.parse_answers(session.answers, str(resume))  # a hand-edited draft must still be valid
        if session.profile is not None:
            aid.rulebook.check_profile(session.profile)
        if session.leaning not in (None, UNDECIDED, *PROCEDURE_IDS):
            raise AnswersError(f"{resume}: `leaning` must be an option id or '{UNDECIDED}', not {session.leaning!r}")
        session.answers = prune(aid.questionnaire, session.answers)
        if profile is not None and session.profile is not None:
            session.profile = profile  # --profile given again wins over the one chosen before
    else:
        session = Session()
    path = save or resume or default_session_path()
    if path.exists() and (resume is None or path.resolve() != resume.resolve()):
        raise UsageError(f"{path} already exists; resume it with --resume {path}, or choose another --save file")
    if path.is_dir() or not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise UsageError(f"cannot save the session to {path}: give a file in an existing folder")
    return session, path


def require_terminal(stdin: IO[str], stdout: IO[str] | None = None) -> None:
    """The interview needs a person at a terminal; without one it stops at once, never waiting.

    The output must be a terminal too: the prompts redraw themselves and are garbled in a pipe.
    """
    if not stdin.isatty():
        raise UsageError(
            "the interview needs an interactive terminal, and the input is not one. "
            "To evaluate answers from a file, use: pain-sdm evaluate ANSWERS.yaml"
        )
    if stdout is not None and not stdout.isatty():
        raise UsageError(
            "the interview needs an interactive terminal, and the output is not one: run it without "
            "a pipe or redirection. The printable summary (offered at the end) keeps a copy of the results"
        )


def run_interview(
    aid: DecisionAid,
    *,
    resume: Path | None,
    save: Path | None,
    profile: str | None,
    stdin: IO[str],
    stdout: IO[str] | None = None,
    db: Path | str | None = None,
) -> int:
    """The `pain-sdm interview` command: check options and the terminal, then run the walkthrough."""
    session, path = prepare(aid, resume=resume, save=save, profile=profile)
    if db is not None:
        from engine.records.store import check_path

        check_path(db)
    require_terminal(stdin, stdout)
    return Interview(aid, QuestionaryAsker(), Console(), session, path, profile, records_db=db).run()
