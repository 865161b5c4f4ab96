"""pain-sdm: the command line. Each command parses, calls one engine function, and renders.

Errors raised on purpose by the engine (`PainSdmError`) are printed as one clear message
with their exit code (2 for bad input); nothing is written when input is bad.
"""

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

from engine import memory

memory.pause_for_start_up()  # until the decision aid is loaded: see engine/memory.py

import typer  # noqa: E402

from engine.errors import PainSdmError  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    rich_markup_mode=None,
    name="pain-sdm",
    help="A shared decision-making aid for interventional pain management: options to discuss, with their reasons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(
    rich_markup_mode=None,
    help="Print the JSON Schemas of the data pain-sdm reads and writes, and the questionnaire.",
    no_args_is_help=True,
)
app.add_typer(schema_app, name="schema")
rules_app = typer.Typer(
    rich_markup_mode=None,
    help="Audit the rulebook: list, show, verify, coverage, diff, and a printable book for reviewers.",
    no_args_is_help=True,
)
app.add_typer(rules_app, name="rules")

RulesOpt = Annotated[
    Path | None, typer.Option("--rules", help="Use this rules directory instead of the installed rulebook.")
]
KnowledgeOpt = Annotated[
    Path | None, typer.Option("--knowledge", help="Use this knowledge directory instead of the installed one.")
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Guideline profile (shipped: consensus, the default; us-medicare; uk-nice; us-commercial).",
    ),
]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of the screen.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="The records database: a SQLite file or a postgresql:// URL "
        "(default: $PAIN_SDM_DB, else a file in the user's data folder).",
    ),
]


class ResultFormat(StrEnum):
    json = "json"
    text = "text"
    markdown = "markdown"


def handles_errors(func: F) -> F:
    """Turn engine errors into one message on stderr and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PainSdmError as exc:
            typer.echo(f"pain-sdm: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def emit(text: str, output: Path | None, force: bool) -> None:
    """Print, or write atomically to a file."""
    if output is None:
        sys.stdout.write(text)
        return
    from engine.output import write_atomic

    write_atomic(output, text, force)
    typer.echo(f"wrote {output}", err=True)


def load_aid(rules: Path | None, knowledge: Path | None) -> Any:
    from engine.evaluation.aid import DecisionAid

    return DecisionAid.load(rules, knowledge)


BatchOpt = Annotated[
    Path | None,
    typer.Option("--batch", help="Evaluate every record of this JSON Lines (.jsonl) or CSV file into -o OUT."),
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, max=64, help="With --batch: worker processes.")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="With --batch: stop at the first invalid record; nothing is written.")
]
CompareOpt = Annotated[
    bool, typer.Option("--compare-profiles", help="With --batch: list where other profiles differ (slower).")
]
FullOpt = Annotated[bool, typer.Option("--full", help="With --batch: write each full result, not the summary.")]


def evaluate_batch(source: Path, output: Path | None, force: bool, workers: int, strict: bool, options: Any) -> None:
    """Run a batch, with a progress bar on a terminal; invalid records are reported on stderr."""
    from engine.errors import UsageError
    from engine.evaluation.batch import Outcome, count_lines, run_batch

    if output is None:
        raise UsageError("--batch needs -o OUT, the JSON Lines file to write")
    aid = load_aid(options.rules_dir, options.knowledge_dir)
    say: Callable[[str], None] = functools.partial(typer.echo, err=True)

    def report(outcome: Outcome) -> None:
        for problem in outcome.problems:
            say(f"pain-sdm: {problem}")

    run = functools.partial(run_batch, aid, source, output, options, workers=workers, strict=strict, force=force)
    if not sys.stderr.isatty():
        summary = run(on_invalid=report)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("evaluating, line"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("batch", total=count_lines(source))
            say = functools.partial(bar.console.print, markup=False, highlight=False)
            summary = run(on_invalid=report, on_progress=lambda line: bar.update(task, completed=line))
    invalid = f", {summary.invalid} invalid (reported above)" if summary.invalid else ""
    typer.echo(f"wrote {output}: {summary.records} records{invalid} in {summary.seconds:.1f} s", err=True)
    if summary.invalid:
        raise typer.Exit(1)


@app.command()
@handles_errors
def evaluate(
    answers: Annotated[
        Path | None, typer.Argument(help="The patient's answers, as a YAML or JSON file (not with --batch).")
    ] = None,
    fmt: Annotated[ResultFormat, typer.Option("--format", "-f", help="Output format.")] = ResultFormat.text,
    profile: ProfileOpt = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
    record: Annotated[bool, typer.Option("--record", help="Store this evaluation in the records database.")] = False,
    db: DbOpt = None,
    patient_label: Annotated[
        str | None, typer.Option("--patient-label", help="A label for the record, e.g. initials (no name needed).")
    ] = None,
    append_to_damaged: Annotated[
        bool,
        typer.Option(
            "--append-to-damaged-chain",
            help="With --record: store even though the database fails `records verify` (the choice is recorded).",
        ),
    ] = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
    batch: BatchOpt = None,
    workers: WorkersOpt = 1,
    strict: StrictOpt = False,
    compare_profiles: CompareOpt = False,
    full: FullOpt = False,
) -> None:
    """Evaluate one patient's answers and show every option with its status and reasons.

    With --batch IN -o OUT, evaluate every record of IN and write one JSON line per record (see README).
    """
    from engine.errors import UsageError

    if (answers is None) == (batch is None):
        raise UsageError("give one patient's ANSWERS file, or --batch IN -o OUT (not both)")
    if batch is not None:
        from engine.evaluation.batch import BatchOptions

        if record or db or patient_label or append_to_damaged:
            raise UsageError(
                "--record, --db, --patient-label and --append-to-damaged-chain go with one patient, not --batch"
            )
        options = BatchOptions(rules, knowledge, profile, compare_profiles, full)
        return evaluate_batch(batch, output, force, workers, strict, options)
    if workers != 1 or strict or compare_profiles or full:
        raise UsageError("--workers, --strict, --compare-profiles and --full go with --batch")
    assert answers is not None
    if record or db or patient_label or append_to_damaged:
        from engine.records.store import check_record_options

        check_record_options(record, db, patient_label, append_to_damaged)
    aid = load_aid(rules, knowledge)
    migrated: list[str] = []
    parsed = aid.read_answers(answers, migrated)
    for note in migrated:
        typer.echo(f"note: {answers} is in an older answers schema; {note}", err=True)
    result = aid.evaluate(parsed, profile)
    if record:  # every field of the record checked before anything is written (-o, or the database)
        from engine.records.store import prepare_record

        new = prepare_record(aid, parsed, result, patient_label=patient_label)
    if fmt is ResultFormat.json:
        text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        from engine.presentation.report import render

        text = render(result, aid, fmt.value)  # type: ignore[arg-type]
    emit(text, output, force)
    if record:
        from engine.records.store import display, resolve_path, store_record

        stored = store_record(new, db, append_to_damaged)
        typer.echo(f"recorded as record {stored.id} in {display(resolve_path(db))}", err=True)


@app.command()
@handles_errors
def interview(
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Carry on a saved session: only missing answers are asked.")
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Save the session here (default: ./pain-sdm-session-DATE-TIME.json)."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Guideline profile to preselect (default: consensus).")
    ] = None,
    db: DbOpt = None,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Walk through the questions with a patient in a terminal, then show the options side by side."""
    from engine.interview.walkthrough import run_interview

    aid = load_aid(rules, knowledge)
    code = run_interview(aid, resume=resume, save=save, profile=profile, stdin=sys.stdin, stdout=sys.stdout, db=db)
    if code:
        raise typer.Exit(code)


@schema_app.command("answers")
@handles_errors
def schema_answers(rules: RulesOpt = None, knowledge: KnowledgeOpt = None) -> None:
    """The JSON Schema of an answers file, generated from the questionnaire."""
    aid = load_aid(rules, knowledge)
    from engine.model.migration import ANSWERS_VERSION, VERSION_KEY

    schema = aid.answers_model.model_json_schema()
    schema["properties"][VERSION_KEY] = {
        "type": "integer",
        "minimum": 1,
        "maximum": ANSWERS_VERSION,
        "description": f"the answers schema the file is written in (today {ANSWERS_VERSION}); older ones are migrated",
    }
    typer.echo(json.dumps(schema, indent=2, ensure_ascii=False))


@schema_app.command("questionnaire")
@handles_errors
def schema_questionnaire(rules: RulesOpt = None, knowledge: KnowledgeOpt = None) -> None:
    """The questionnaire as Markdown: each question, its answers, when it is asked, the rules that read it."""
    from engine.presentation.questionnaire_doc import questionnaire_markdown

    sys.stdout.write(questionnaire_markdown(load_aid(rules, knowledge)))


@schema_app.command("result")
@handles_errors
def schema_result() -> None:
    """The JSON Schema of the result that `evaluate --format json` prints."""
    from engine.evaluation.result import Result

    typer.echo(json.dumps(Result.model_json_schema(by_alias=True), indent=2, ensure_ascii=False))


AnswersArg = Annotated[Path, typer.Argument(help="The patient's answers, as a YAML or JSON file.")]


@app.command()
@handles_errors
def explain(
    answers: AnswersArg,
    profile: ProfileOpt = None,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Show the full trace: every rule that fired, in order, the facts it matched and what it concluded."""
    from engine.presentation.explain import explain as render_trace

    aid = load_aid(rules, knowledge)
    parsed = aid.read_answers(answers)
    result = aid.evaluate(parsed, profile, compare_profiles=False)
    sys.stdout.write(render_trace(result, aid, parsed))


@app.command("why-not")
@handles_errors
def why_not(
    procedure: Annotated[str, typer.Argument(help="A procedure id, e.g. radiofrequency_ablation.")],
    answers: AnswersArg,
    profile: ProfileOpt = None,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Show why a procedure is not open: every rule that could open it, condition by condition."""
    from engine.presentation.explain import why_not as render_why_not

    aid = load_aid(rules, knowledge)
    sys.stdout.write(render_why_not(aid, procedure, aid.read_answers(answers), profile))


@rules_app.command("list")
@handles_errors
def rules_list(
    procedure: Annotated[str | None, typer.Option("--procedure", help="Only rules about this procedure.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only rules in this state (active, draft, retired) or concluding this status."),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only rules citing this source id.")] = None,
    criterion: Annotated[str | None, typer.Option("--criterion", help="Only rules encoding this criterion id.")] = None,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """List the rules as a table: id, title, version, status, procedures, sources, criteria, last reviewed."""
    from rich.console import Console

    from engine.presentation.rulebook_doc import rules_table, select_rules

    aid = load_aid(rules, knowledge)
    table = rules_table(select_rules(aid, procedure, status, source, criterion))
    Console(width=None if sys.stdout.isatty() else 240).print(table)


@rules_app.command("show")
@handles_errors
def rules_show(
    rule_id: Annotated[str, typer.Argument(help="A rule id (or one of its aliases), e.g. ESI-CAND.")],
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Show one rule in plain English (IF ... THEN ...), with its parameters in each profile and its sources.

    A safety invariant's id (rules/invariants.yaml) shows the invariant.
    """
    from engine.presentation.rulebook_doc import (
        find_invariant,
        find_rule,
        invariant_card,
        render_card,
        render_invariant,
        rule_card,
    )

    aid = load_aid(rules, knowledge)
    invariant = find_invariant(aid, rule_id)
    if invariant is not None:
        sys.stdout.write(render_invariant(invariant_card(aid, invariant)))
        return
    sys.stdout.write(render_card(rule_card(aid, find_rule(aid, rule_id))))


class ReportFormat(StrEnum):
    text = "text"
    json = "json"


@rules_app.command("verify")
@handles_errors
def rules_verify(
    today: Annotated[
        str | None, typer.Option("--today", help="The date review ages are counted to (YYYY-MM-DD; default today).")
    ] = None,
    max_age_days: Annotated[
        int, typer.Option("--max-age-days", min=1, help="A rule not reviewed for longer than this is overdue.")
    ] = 365,
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")] = ReportFormat.text,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Check under this profile only (default: every profile).")
    ] = None,
    notes: Annotated[
        bool, typer.Option("--notes", help="List every note (rules that can hold together are otherwise counted).")
    ] = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Check the rulebook: references, dead or conflicting rules, reachability, review dates, safety invariants.

    Exits 1 when any finding is an error.
    """
    import datetime as dt

    from engine.audit.verify import render, verify
    from engine.errors import UsageError

    try:
        day = dt.date.fromisoformat(today) if today else None
    except ValueError:
        raise UsageError(f"--today: expected a date such as 2026-11-24; got {today!r}") from None
    report = verify(rules, knowledge, day, max_age_days, profile)
    if fmt is ReportFormat.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(report, all_notes=notes))
    if report.errors:
        raise typer.Exit(1)


CasesOpt = Annotated[
    Path | None, typer.Option("--cases", help="Golden cases directory (default: tests/golden of the checkout).")
]
ExamplesOpt = Annotated[
    Path | None, typer.Option("--examples", help="Example patients that cases name as `base` (default: examples/).")
]


@rules_app.command("coverage")
@handles_errors
def rules_coverage(
    cases: CasesOpt = None,
    examples: ExamplesOpt = None,
    fail_under: Annotated[
        float | None,
        typer.Option("--fail-under", min=0, max=100, help="Exit 1 if fewer than this % of active rules fired."),
    ] = None,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Run the golden cases and report how often each rule fired, and which rules never fired."""
    from engine.audit.coverage import coverage, render_coverage
    from engine.audit.golden import load_cases

    aid = load_aid(rules, knowledge)
    report = coverage(aid, load_cases(cases, examples))
    sys.stdout.write(render_coverage(report))
    if fail_under is not None and report.percent < fail_under:
        typer.echo(f"pain-sdm: rule coverage {report.percent:.1f}% is under --fail-under {fail_under:g}%", err=True)
        raise typer.Exit(1)


@rules_app.command("diff")
@handles_errors
def rules_diff(
    old: Annotated[str, typer.Argument(help="The old rules: a directory or a git revision (e.g. HEAD~3).")],
    new: Annotated[str, typer.Argument(help="The new rules: a directory or a git revision (e.g. HEAD).")],
    cases: CasesOpt = None,
    examples: ExamplesOpt = None,
    repo: Annotated[
        Path | None, typer.Option("--repo", help="The git repository revisions are read from (default: here).")
    ] = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Show rules added, removed and changed (field by field), and the golden cases whose outcome changes."""
    from engine.audit.golden import load_cases
    from engine.audit.rulediff import render_diff
    from engine.audit.rulediff import rules_diff as compare

    sys.stdout.write(render_diff(compare(old, new, load_cases(cases, examples), repo, knowledge)))


class BookFormat(StrEnum):
    md = "md"
    html = "html"
    pdf = "pdf"


@rules_app.command("book")
@handles_errors
def rules_book(
    fmt: Annotated[
        BookFormat | None,
        typer.Option("--format", "-f", help="Output format (default: from the -o file's suffix, else md)."),
    ] = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Write the whole rulebook as a reviewer's document, grouped by procedure, with a sign-off table."""
    from engine.errors import UsageError
    from engine.presentation.rulebook_doc import book_format, render_book

    chosen = book_format(fmt.value if fmt else None, output)
    if chosen == "pdf" and output is None:
        raise UsageError("a PDF cannot be printed to the screen; give a file with -o FILE")
    content = render_book(load_aid(rules, knowledge), chosen)
    if isinstance(content, bytes):
        from engine.output import write_atomic

        assert output is not None
        write_atomic(output, content, force)
        typer.echo(f"wrote {output}", err=True)
    else:
        emit(content, output, force)


class SummaryFormat(StrEnum):
    pdf = "pdf"
    html = "html"
    md = "md"


class Paper(StrEnum):
    a4 = "a4"
    letter = "letter"


@app.command()
@handles_errors
def summary(
    source: Annotated[
        Path,
        typer.Argument(metavar="INPUT", help="The patient's answers (YAML or JSON) or a saved interview session."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    fmt: Annotated[
        SummaryFormat | None,
        typer.Option("--format", "-f", help="pdf, html or md (Markdown); default: from -o's suffix, else pdf."),
    ] = None,
    paper: Annotated[Paper, typer.Option("--paper", help="Paper size for printing.")] = Paper.a4,
    grid_only: Annotated[
        bool, typer.Option("--grid-only", help="Only page 1: the Option Grid comparing the options.")
    ] = False,
    patient_label: Annotated[
        str | None, typer.Option("--patient-label", help="A label printed on each page, e.g. initials (optional).")
    ] = None,
    clinician: Annotated[
        str | None, typer.Option("--clinician", help="The clinician's name, printed on the summary.")
    ] = None,
    include_notes: Annotated[
        bool,
        typer.Option("--include-notes", help="Print a saved session's clinician notes on it (left off otherwise)."),
    ] = False,
    profile: ProfileOpt = None,
    force: ForceOpt = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Write the printable discussion summary for the patient (PDF, HTML or Markdown)."""
    from engine.presentation.summary import write_summary
    from engine.records.store import MAX_LABEL, checked_text

    checked_text(patient_label, "patient label", MAX_LABEL)
    checked_text(clinician, "clinician's name", MAX_LABEL)
    aid = load_aid(rules, knowledge)
    with memory.building(until_exit=True):  # a summary keeps what it builds until it is written
        write_summary(
            aid,
            source,
            fmt.value if fmt else None,
            output,
            paper=paper.value,
            grid_only=grid_only,
            profile=profile,
            patient_label=patient_label,
            clinician=clinician,
            force=force,
            include_notes=include_notes,
        )
    typer.echo(f"wrote {output}", err=True)


fhir_app = typer.Typer(
    help="Talk to an EHR: the questionnaire, answers and results as FHIR R4 resources (see 'Working with an EHR').",
    no_args_is_help=True,
)
app.add_typer(fhir_app, name="fhir")
FhirInputArg = Annotated[
    Path,
    typer.Argument(
        metavar="ANSWERS", help="The patient's answers (YAML or JSON), a saved session or a QuestionnaireResponse."
    ),
]
LabelOpt = Annotated[
    str | None,
    typer.Option("--patient-label", help="A label for the patient, e.g. a clinic reference (never needs a name)."),
]


@fhir_app.command("questionnaire")
@handles_errors
def fhir_questionnaire(
    output: OutputOpt = None, force: ForceOpt = False, rules: RulesOpt = None, knowledge: KnowledgeOpt = None
) -> None:
    """The questionnaire as a FHIR R4 Questionnaire (JSON); its version is the rulebook version."""
    from engine.fhir.questionnaire import questionnaire_json

    aid = load_aid(rules, knowledge)
    emit(questionnaire_json(aid.questionnaire, aid.rulebook.version), output, force)


@fhir_app.command("response")
@handles_errors
def fhir_response(
    source: FhirInputArg,
    output: OutputOpt = None,
    patient_label: LabelOpt = None,
    force: ForceOpt = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """The answers as a FHIR R4 QuestionnaireResponse (JSON) to pain-sdm's Questionnaire."""
    from engine.fhir.response import response_json
    from engine.presentation.summary import read_input
    from engine.records.store import MAX_LABEL, checked_text

    checked_text(patient_label, "patient label", MAX_LABEL)
    aid = load_aid(rules, knowledge)
    answers, _session = read_input(aid, source)
    emit(response_json(aid, answers, patient_label=patient_label), output, force)


@fhir_app.command("bundle")
@handles_errors
def fhir_bundle(
    source: FhirInputArg,
    output: OutputOpt = None,
    patient_label: LabelOpt = None,
    paper: Annotated[Paper, typer.Option("--paper", help="Paper size of the summary PDF.")] = Paper.a4,
    profile: ProfileOpt = None,
    force: ForceOpt = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """A FHIR R4 Bundle: the QuestionnaireResponse, the evaluation (GuidanceResponse) and the summary PDF."""
    from engine.fhir.bundle import bundle_json
    from engine.presentation.summary import read_input
    from engine.records.store import MAX_LABEL, checked_text

    checked_text(patient_label, "patient label", MAX_LABEL)
    aid = load_aid(rules, knowledge)
    answers, session = read_input(aid, source)
    text = bundle_json(aid, answers, session=session, profile=profile, patient_label=patient_label, paper=paper.value)
    emit(text, output, force)


records_app = typer.Typer(
    rich_markup_mode=None,
    help="The stored evaluation records: list, show, export, stats, verify, replay.",
    no_args_is_help=True,
)
app.add_typer(records_app, name="records")
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only records from this UTC date or time on (e.g. 2024-05-01).")
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only records up to this UTC date (inclusive) or time.")]
SQLITE_MAX = 2**63 - 1
RecordIdArg = Annotated[
    int, typer.Argument(help="The record number (see `pain-sdm records list`).", min=1, max=SQLITE_MAX)
]


class RecordsFormat(StrEnum):
    text = "text"
    json = "json"


RecordsFormatOpt = Annotated[RecordsFormat, typer.Option("--format", "-f", help="Output format.")]


def _window(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    from engine.records.store import parse_window

    return parse_window(since, until)


def _warn_integrity(problems: list[str], db: str) -> None:
    """Say on stderr that what was just shown fails its integrity check; exit 1."""
    if problems:
        for problem in problems:
            typer.echo(f"pain-sdm: WARNING: {problem}", err=True)
        typer.echo(f"pain-sdm: run `pain-sdm records verify --db {db}` for the whole chain", err=True)
        raise typer.Exit(1)


@records_app.command("list")
@handles_errors
def records_list(
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, max=SQLITE_MAX, help="Only the most recent N records.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """List the records as a table: id, time, label, profile, rulebook version, open options."""
    from engine.records.store import RecordStore, render_list

    with RecordStore.open(db, create=False) as store:
        sys.stdout.write(render_list(store.list(*_window(since, until), limit=limit)))


@records_app.command("show")
@handles_errors
def records_show(
    record_id: RecordIdArg,
    fmt: RecordsFormatOpt = RecordsFormat.text,
    db: DbOpt = None,
) -> None:
    """Show one record: the answers, every status, the rulebook version, SURE, decision and notes.

    Exits 1, after showing it, if the record fails its integrity check (edited, or its link broken).
    """
    from engine.records.store import RecordStore, render_record

    with RecordStore.open(db, create=False) as store:
        record = store.get(record_id)
        problems = store.check_record(record_id)
    if fmt is RecordsFormat.json:
        sys.stdout.write(json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_record(record))
    _warn_integrity(problems, store.where)


@records_app.command("export")
@handles_errors
def records_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The JSON Lines file to write.")],
    force: ForceOpt = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    db: DbOpt = None,
) -> None:
    """Write the records as JSON Lines (one record per line, hashes included), atomically.

    Exits 1, after writing, if the database fails its integrity check (see `records verify`).
    """
    from engine.records.store import RecordStore

    with RecordStore.open(db, create=False) as store:
        count = store.export_jsonl(output, force, *_window(since, until))
        problems = store.verify()
    typer.echo(f"wrote {count} record{'s' if count != 1 else ''} to {output}", err=True)
    _warn_integrity(problems, store.where)


@records_app.command("stats")
@handles_errors
def records_stats(
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: RecordsFormatOpt = RecordsFormat.text,
    db: DbOpt = None,
) -> None:
    """Per-rule firing counts and per-procedure status counts over the records."""
    from engine.records.store import RecordStore, render_stats

    with RecordStore.open(db, create=False) as store:
        stats = store.stats(*_window(since, until))
    if fmt is RecordsFormat.json:
        sys.stdout.write(json.dumps(stats.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_stats(stats))


@records_app.command("verify")
@handles_errors
def records_verify(
    db: DbOpt = None,
    expect_head: Annotated[
        str | None,
        typer.Option("--expect-head", help="The head hash noted earlier elsewhere; exit 1 if the chain's differs."),
    ] = None,
) -> None:
    """Recompute the hash chain; exits 1 and names each record if any was edited, deleted or reordered.

    A consistent rewrite of the whole chain is caught only by comparing the head hash with a copy
    kept elsewhere: --expect-head HASH makes that comparison.
    """
    from engine.records.store import RecordStore

    with RecordStore.open(db, create=False) as store:
        problems = store.verify()
        notes = store.damage_notes()
        count, head = store.count(), store.head()[1]
    if expect_head is not None and expect_head.strip().lower() != head:
        problems.append(
            f"the head hash is {head}, not the {expect_head.strip()} noted earlier: records were added since, "
            "or the chain was rewritten"
        )
    for note in notes:
        typer.echo(f"pain-sdm: note: {note}", err=True)
    if problems:
        typer.echo(f"pain-sdm: the records database {store.where} FAILS its integrity check:", err=True)
        for problem in problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{store.where}: {count} record{'s' if count != 1 else ''}, chain intact; head hash {head}")
    if expect_head is None:
        typer.echo(
            "Anyone who can write the file could rewrite the whole chain consistently: note this head hash "
            "somewhere else (a ticket, a paper log) and check it later with --expect-head HASH."
        )
    else:
        typer.echo("the head hash matches the one noted earlier")


@records_app.command("copy")
@handles_errors
def records_copy(
    source: Annotated[
        str, typer.Option("--from", help="The database to copy from (a SQLite file or postgresql:// URL).")
    ],
    target: Annotated[
        str, typer.Option("--to", help="The database to copy into: empty, or an earlier copy of --from.")
    ],
) -> None:
    """Copy every record to another database (SQLite or PostgreSQL), hashes unchanged; both chains verified."""
    from engine.records.store import copy_records

    done = copy_records(source, target)
    kept = f" ({done.already} were there already)" if done.already else ""
    typer.echo(
        f"copied {done.copied} record{'s' if done.copied != 1 else ''} from {done.source} to {done.target}{kept}; "
        f"both chains intact; head record {done.head[0]}, hash {done.head[1]}"
    )


@records_app.command("replay")
@handles_errors
def records_replay(
    record_id: RecordIdArg,
    db: DbOpt = None,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Re-evaluate a record's answers with the current (or given) rulebook and show what changed.

    Exits 1, after showing it, if the record fails its integrity check.
    """
    from engine.records.store import RecordStore, render_replay, replay

    with RecordStore.open(db, create=False) as store:
        record = store.get(record_id)
        problems = store.check_record(record_id)
    sys.stdout.write(render_replay(replay(load_aid(rules, knowledge), record)))
    _warn_integrity(problems, store.where)


accounts_app = typer.Typer(help="Clinician accounts for `pain-sdm serve` (needed to serve beyond this computer).")
app.add_typer(accounts_app, name="accounts")
AccountsOpt = Annotated[
    Path | None,
    typer.Option("--accounts", help="The clinician accounts file (see `pain-sdm accounts add`)."),
]


@app.command()
@handles_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; any but loopback needs --accounts.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    db: DbOpt = None,
    accounts: AccountsOpt = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The certificate's private key.")] = None,
    link_hours: Annotated[
        float, typer.Option("--link-hours", min=0.1, max=24 * 90, help="How long a patient's link or code works.")
    ] = 72.0,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Serve the clinic's web app: the patient's pre-visit form and the clinician's consultation view."""
    from engine.web.app import serve as run_server

    run_server(
        host=host,
        port=port,
        db=db,
        accounts_file=accounts,
        tls_cert=tls_cert,
        tls_key=tls_key,
        link_hours=link_hours,
        rules=rules,
        knowledge=knowledge,
        say=functools.partial(typer.echo, err=False),
    )


@accounts_app.command("add")
@handles_errors
def accounts_add(
    name: Annotated[str, typer.Argument(help="The clinician's account name (one word).")],
    accounts: Annotated[Path, typer.Option("--accounts", help="The accounts file (created if missing).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
) -> None:
    """Add a clinician (or change their password); the password is stored only as an argon2 hash."""
    from engine.web.auth import add_account

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    add_account(accounts, name, password)
    typer.echo(f"{name} can now sign in; accounts in {accounts}")


def command_for(args: list[str]) -> Callable[[], Any]:
    """What runs the command line `args`: the app, or only the command or group its first argument names.

    Typer makes every command before it parses anything (reading each function's parameters off
    its signature): 26 commands, about 8 ms of a start-up, for a run that reaches one of them.
    When the first argument is a command's or a group's name, nothing else can be reached, so
    a group holding just that one runs (the same name, so the same usage lines and errors);
    anything else (`--help`, no arguments, an unknown command and its suggestions) gets the app.
    """
    if args:
        for info in app.registered_commands:
            if (
                info.callback is not None
                and (info.name or typer.main.get_command_name(info.callback.__name__)) == args[0]
            ):
                return only(commands=[info])
        for group in app.registered_groups:
            if group.name == args[0]:
                return only(groups=[group])
    return app


def only(commands: list[Any] | None = None, groups: list[Any] | None = None) -> Callable[[], Any]:
    """The app's top-level group with just these commands and groups (always a group, as the app is)."""
    import copy

    view = copy.copy(app)
    view.registered_commands = commands or []
    view.registered_groups = groups or []
    return typer.main.get_group(view)


def main() -> None:
    """Run the command; then exit without tearing the interpreter down.

    Freeing every object of the loaded rulebook, engines and models one by one at exit costs
    about 50 ms of a short command's time and does nothing the operating system does not do.
    Exit handlers still run, output is flushed, and a command that left other threads running
    exits the ordinary way.
    """
    import atexit
    import os
    import threading

    memory.exit_follows_command()
    try:
        command_for(sys.argv[1:])()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # let the ordinary exit report a closed pipe
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    os._exit(code)


if __name__ == "__main__":
    main()
