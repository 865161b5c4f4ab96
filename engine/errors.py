"""Every error pain-sdm raises on purpose comes from one hierarchy.

The command line catches only `PainSdmError`, prints its message and exits with
its `exit_code`, so a user never sees a traceback for bad input.

    PainSdmError                 base class; exit code 1
    ├── DataFileError            a rule, knowledge or answers file is unreadable or invalid; exit 2
    │   ├── KnowledgeError       a file under knowledge/ is invalid
    │   ├── RulebookError        a file under rules/ is invalid, or refers to something unknown
    │   └── AnswersError         a patient's answers are invalid (lists every problem by field path)
    ├── UsageError               a command option is invalid (unknown profile, procedure, ...); exit 2
    ├── OutputError              an output file cannot be written (or would overwrite without --force)
    └── EngineError              the rule engine failed while evaluating: never swallowed
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one entry of one file.

    `code` names the kind of problem where it is raised (`rules verify` reports it under that
    name, e.g. `unknown-reference`); it is never read back out of the message.
    """

    file: str
    entry: str
    field: str
    message: str
    code: str = "schema"

    def __str__(self) -> str:
        where = self.file
        if self.entry:
            where += f", {self.entry}"
        if self.field:
            where += f", field `{self.field}`"
        return f"{where}: {self.message}" if where else self.message


class PainSdmError(Exception):
    """Base of every error pain-sdm raises on purpose."""

    exit_code = 1


class DataFileError(PainSdmError):
    """A data file is unreadable or invalid; `problems` lists what is wrong, one line each."""

    exit_code = 2
    kind = "data file"

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", "", "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        count = len(problems)
        head = f"invalid {self.kind} ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))


class KnowledgeError(DataFileError):
    """A file under knowledge/ is invalid."""

    kind = "knowledge file"


class RulebookError(DataFileError):
    """A rule file is invalid or refers to an unknown fact, parameter, source or criterion."""

    kind = "rulebook"


class AnswersError(DataFileError):
    """A patient's answers are invalid."""

    kind = "answers"


class UsageError(PainSdmError):
    """A command option names something that does not exist."""

    exit_code = 2


class OutputError(PainSdmError):
    """An output file cannot be written."""

    exit_code = 1


class EngineError(PainSdmError):
    """The rule engine failed during an evaluation (e.g. an action raised)."""

    exit_code = 3
