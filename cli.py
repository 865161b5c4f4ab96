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


@app.command()
@handles_errors
def evaluate(
    answers: Annotated[Path, typer.Argument(help="The patient's answers, as a YAML or JSON file.")],
    fmt: Annotated[ResultFormat, typer.Option("--format", "-f", help="Output format.")] = ResultFormat.text,
    profile: ProfileOpt = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
    rules: RulesOpt = None,
    knowledge: KnowledgeOpt = None,
) -> None:
    """Evaluate one patient's answers and show every option with its status and reasons."""
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
