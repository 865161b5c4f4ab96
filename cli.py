"""pain-sdm: the command line. Each command parses, calls one engine function, and renders.

Errors raised on purpose by the engine (`PainSdmError`) are printed as one clear message
with their exit code (2 for bad input); nothing is written when input is bad.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from engine.errors import PainSdmError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="pain-sdm",
    help="A shared decision-making aid for interventional pain management: options to discuss, with their reasons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="Print JSON Schemas of the data pain-sdm reads and writes.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

RulesOpt = Annotated[
    Path | None, typer.Option("--rules", help="Use this rules directory instead of the installed rulebook.")
]
KnowledgeOpt = Annotated[
    Path | None, typer.Option("--knowledge", help="Use this knowledge directory instead of the installed one.")
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Guideline profile: consensus (default), us-medicare or uk-nice.")
]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of the screen.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]


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
    from engine.aid import DecisionAid

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
    from engine.batch import Outcome, count_lines, run_batch
    from engine.errors import UsageError

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
        from engine.batch import BatchOptions

        options = BatchOptions(rules, knowledge, profile, compare_profiles, full)
        return evaluate_batch(batch, output, force, workers, strict, options)
    if workers != 1 or strict or compare_profiles or full:
        raise UsageError("--workers, --strict, --compare-profiles and --full go with --batch")
    assert answers is not None
    aid = load_aid(rules, knowledge)
    result = aid.evaluate(aid.read_answers(answers), profile)
    if fmt is ResultFormat.json:
        text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        from engine.report import render

        text = render(result, aid, fmt.value)  # type: ignore[arg-type]
    emit(text, output, force)


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
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Walk through the questions with a patient in a terminal, then show the options side by side."""
    from engine.interview import run_interview

    code = run_interview(load_aid(rules, knowledge), resume=resume, save=save, profile=profile, stdin=sys.stdin)
    if code:
        raise typer.Exit(code)


@schema_app.command("answers")
@handles_errors
def schema_answers(rules: RulesOpt = None, knowledge: KnowledgeOpt = None) -> None:
    """The JSON Schema of an answers file, generated from the questionnaire."""
    aid = load_aid(rules, knowledge)
    typer.echo(json.dumps(aid.answers_model.model_json_schema(), indent=2, ensure_ascii=False))


@schema_app.command("result")
@handles_errors
def schema_result() -> None:
    """The JSON Schema of the result that `evaluate --format json` prints."""
    from engine.result import Result

    typer.echo(json.dumps(Result.model_json_schema(by_alias=True), indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
