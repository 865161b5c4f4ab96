"""The results on screen: a side-by-side option grid, each option's reasons, and how it fits the patient.

Everything here is rendered with rich from one `Result`, the knowledge base and the patient's
answers, so the interview, and any other screen, show the same things:

- `option_grids`: the options side by side (what it is, how long relief lasts, main benefits,
  main risks, recovery, practical burden), in column groups: open now, open after steps, not now.
  Conservative care is always a column.
- `option_panel`: one option's status, reasons (with the rule behind each), cautions, next steps,
  how it fits what the patient said matters, and how another guideline profile would differ.
- `values_table`: how the options fit each value the patient called important.
- `leaning_points`: points to discuss about the option the patient leans to.
- `render_overview`: the results at a glance (the grid, values fit, disagreements); the
  interview then shows one option's panel at a time.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import OptionResult, Result
from engine.model.status import OPEN_STATUSES, STATUS_GROUPS, Status
from engine.model.values import ValueNote, conflicts, option_fit
from engine.presentation.main_points import MAIN_ITEMS, main_points
from engine.presentation.report import DISCLAIMER, STATUS_LABELS

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple((g.title, g.statuses) for g in STATUS_GROUPS)
"""Column groups of the grid, in order (engine.model.status); every status is in exactly one group."""

ROWS: tuple[str, ...] = (
    "What it is",
    "How long relief lasts",
    "Main benefits",
    "Main risks",
    "Recovery",
    "Practical burden",
)

STATUS_STYLES = {
    "candidate": "bold green",
    "after_prerequisite": "bold yellow",
    "not_indicated": "dim",
    "deferred": "bold red",
}
OUTWEIGHED = "Also found, but the reasons above come first"
FIT_MARKS = {"good": ("fits well", "green"), "mixed": ("fits in part", "yellow"), "poor": ("fits poorly", "red")}
IMPORTANCE_WORDS = {"somewhat_important": "somewhat important", "very_important": "very important"}
LABEL_WIDTH = 14
MIN_COLUMN_WIDTH = 26
NARROW = 100
"""Below this width the grid's row labels wrap (at LABEL_WIDTH) to leave room for the options."""


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph (the whole text when it has one sentence)."""
    match = re.match(r"(.+?[.!?])(\s|$)", " ".join(text.split()))
    return match.group(1) if match else text.strip()


def grouped(result: Result) -> list[tuple[str, list[OptionResult]]]:
    """The options in their column groups, in display order, leaving out empty groups."""
    out = []
    for title, statuses in GROUPS:
        chosen = [o for o in result.options if o.status in statuses]
        if chosen:
            out.append((title, chosen))
    return out


def grid_cells(aid: DecisionAid, procedure: str) -> list[str]:
    """The grid's cells for one option, one per row of `ROWS`, from the knowledge base."""
    proc = aid.knowledge.procedures[procedure]
    main = main_points(proc, MAIN_ITEMS)
    benefits = "\n".join(f"+ {b.text}" for b in main.benefits)
    risks = "\n".join(f"- {r.text} ({r.frequency})" for r in main.risks)
    return [first_sentence(proc.description), proc.relief_duration, benefits, risks, proc.recovery, proc.burden]


def option_grids(aid: DecisionAid, result: Result, width: int = 120) -> list[Table]:
    """Side-by-side grids, one per column group; a wide group is split so each column stays readable."""
    per_table = max(1, (width - LABEL_WIDTH - 4) // MIN_COLUMN_WIDTH)
    tables = []
    for title, options in grouped(result):
        chunks = [options[i : i + per_table] for i in range(0, len(options), per_table)]
        for n, chunk in enumerate(chunks):
            suffix = f" ({n + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            table = Table(title=f"{title}{suffix}", show_lines=True, expand=True, title_justify="left")
            label_width = LABEL_WIDTH if width < NARROW else 22
            table.add_column("", style="bold", min_width=min(LABEL_WIDTH, label_width), max_width=label_width)
            for option in chunk:
                header = Text(option.name + "\n")
                header.append(STATUS_LABELS[option.status], style=STATUS_STYLES[option.status])
                table.add_column(header, ratio=1)
            columns = [grid_cells(aid, o.procedure) for o in chunk]
            for row, label in enumerate(ROWS):
                table.add_row(label, *(cells[row] for cells in columns))
            tables.append(table)
    return tables


def fit_line(note: ValueNote) -> Text:
    """One value note in words, e.g. 'Avoiding a device (very important): fits poorly. A device stays in.'"""
    words, style = FIT_MARKS[note.fit]
    line = Text(f"{note.label} ({IMPORTANCE_WORDS.get(note.importance, note.importance)}): ")
    line.append(words, style=style)
    line.append(f". {note.note}")
    return line


def fit_summary(notes: list[ValueNote]) -> Text:
    """How an option fits the patient's values on one line, e.g. 'fits well: avoiding a device; fits poorly: ...'."""
    line = Text()
    for fit in ("good", "mixed", "poor"):
        labels = [n.label[:1].lower() + n.label[1:] for n in notes if n.fit == fit]
        if labels:
            words, style = FIT_MARKS[fit]
            if line:
                line.append("; ")
            line.append(words, style=style)
            line.append(": " + ", ".join(labels))
    return line.append(".") if line else line


def _bullets(title: str, lines: list[Text | str], style: str = "bold") -> list[RenderableType]:
    if not lines:
        return []
    body = Table.grid(padding=(0, 1))
    body.add_column(width=3, justify="right")
    body.add_column(ratio=1)
    for line in lines:
        body.add_row("-", line)
    return [Text(title, style=style), body]


def option_panel(aid: DecisionAid, result: Result, option: OptionResult, answers: dict[str, Any]) -> Panel:
    """One option: why it has its status, cautions, next steps, fit with the patient's values, other profiles."""
    parts: list[RenderableType] = []
    if option.declined is not None:
        parts.append(Text(f"You said you do not want this: {option.declined.text}", style="bold magenta"))
    reasons: list[Text | str] = []
    outweighed: list[Text | str] = []
    for reason in option.reasons:
        line = Text(reason.text)
        if reason.unconfirmed:
            line.append(" (unconfirmed figure)", style="italic")
        line.append(f"  [{reason.rule_id} v{reason.rule_version}]", style="dim")
        # A reason for a less restrictive status did not decide this one: shown apart, so the
        # patient does not read 'can be discussed' under 'not usually suggested'.
        (reasons if reason.status in (None, option.status) else outweighed).append(line)
    parts += _bullets("Why", reasons)
    parts += _bullets(OUTWEIGHED, outweighed)
    if option.status in OPEN_STATUSES:
        cautions: list[Text | str] = []
        for caution in option.cautions:
            line = Text(caution.text)
            line.append(f"  [{caution.rule_id} v{caution.rule_version}]", style="dim")
            cautions.append(line)
        parts += _bullets("Cautions", cautions, "bold yellow")
    parts += _bullets("Next steps", [step.text for step in option.next_steps])
    notes = option_fit(aid.values, answers, option.procedure)
    if option.status in OPEN_STATUSES:
        parts += _bullets("What matters to you", [fit_line(n) for n in notes])
    elif notes:  # options not open now get one line, to keep the screen short
        parts.append(Text.assemble(("What matters to you: ", "bold"), fit_summary(notes)))
    differences: list[Text | str] = []
    for diff in result.profile_differences:
        if diff.procedure == option.procedure:
            name = aid.rulebook.profiles[diff.profile].name
            line = Text(f"Under {name} this would be: {STATUS_LABELS[diff.status].lower()}")
            line.append(f"  [{', '.join(diff.rules) or 'different thresholds'}]", style="dim")
            differences.append(line)
    parts += _bullets("Other guideline profiles", differences, "bold cyan")
    title = Text(option.name + ": ")
    title.append(STATUS_LABELS[option.status], style=STATUS_STYLES[option.status])
    return Panel(Group(*parts), title=title, title_align="left", border_style=STATUS_STYLES[option.status])


def values_table(aid: DecisionAid, result: Result, answers: dict[str, Any]) -> Table | None:
    """How the open options (and conservative care) fit each value the patient called important."""
    shown = [o for o in result.options if o.status in OPEN_STATUSES]
    notes = {o.procedure: option_fit(aid.values, answers, o.procedure) for o in shown}
    if not shown or not notes[shown[0].procedure]:
        return None
    table = Table(title="How the options fit what matters to you", title_justify="left", show_lines=False)
    table.add_column("What matters to you")
    for option in shown:
        table.add_column(aid.knowledge.procedures[option.procedure].short_name)
    by_question = {pid: {n.question: n for n in found} for pid, found in notes.items()}
    for first in notes[shown[0].procedure]:
        cells: list[Text | str] = [f"{first.label} ({IMPORTANCE_WORDS.get(first.importance, first.importance)})"]
        for option in shown:
            words, style = FIT_MARKS[by_question[option.procedure][first.question].fit]
            cells.append(Text(words, style=style))
        table.add_row(*cells)
    return table


def leaning_points(aid: DecisionAid, result: Result, answers: dict[str, Any], leaning: str) -> list[str]:
    """Points to discuss about the option the patient leans to: values it fits poorly, its status, a decline."""
    option = result.option(leaning)
    points = []
    if option.status not in OPEN_STATUSES:
        points.append(
            f"{option.name} is marked '{STATUS_LABELS[option.status].lower()}' for now. Talk about the reasons."
        )
    elif option.status == Status.AFTER_PREREQUISITE:
        steps = "; ".join(step.text.rstrip(".") for step in option.next_steps)
        points.append(f"{option.name} is open only after further steps" + (f": {steps}." if steps else "."))
    if option.declined is not None:
        points.append(f"You said you do not want an implanted device, and {option.name} uses one.")
    for note in conflicts(aid.values, answers, leaning):
        importance = IMPORTANCE_WORDS.get(note.importance, note.importance)
        points.append(f"You said '{note.label.lower()}' is {importance} to you. {option.name}: {note.note}")
    return points


def render_overview(console: Console, aid: DecisionAid, result: Result, answers: dict[str, Any]) -> None:
    """The results at a glance: disclaimer, urgent warning, the grid, values fit and disagreements.

    Each option's panel (`option_panel`: reasons, cautions, next steps) is shown one at a time,
    when asked for, so the screen stays short.
    """
    profile = aid.rulebook.profiles[result.profile]
    console.rule("Options to discuss")
    console.print(DISCLAIMER)
    console.print(
        Text(
            f"Guideline profile: {profile.name}. Rulebook version {result.rulebook_version}. Engine: {result.engine}.",
            "dim",
        )
    )
    if result.urgent_assessment:
        urgent = [Text(f"- {f.text}") for f in result.urgent_reasons]
        console.print(Panel(Group(*urgent), title="Urgent assessment needed", border_style="bold red"))
    for table in option_grids(aid, result, console.width):
        console.print(table)
    fits = values_table(aid, result, answers)
    if fits is not None:
        console.print(fits)
    if result.disagreements:
        lines: list[Text | str] = []
        for did in result.disagreements:
            d = aid.knowledge.disagreements[did]
            lines.append(Text.assemble((d.topic, "bold"), f": {d.plain}"))
        console.print(Group(*_bullets("Where published sources disagree", lines)))
