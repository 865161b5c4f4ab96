"""Batch evaluation: many patients' answers in, one JSON result line per record out, in input order.

Input, chosen by the file name's extension:

- `.jsonl` (JSON Lines): one JSON object per line, either the answers themselves or an object
  whose `answers` field holds them (as a saved session or a record does). Blank lines are skipped.
- `.csv`: a header row of question ids, then one row per patient. A cell is read by its
  question's type: a number question takes a number (`4`, `2.5`); a multiple-choice question
  takes its choices separated by `;` (`sciatica;disc_herniation`) and `[]` for "none of them";
  any other question takes its value as written (`yes`, `low_back`). An empty cell, or
  `unknown`, is an unknown answer, and so is every answer of a column that is left out.

Output (`OUT`), JSON Lines in UTF-8, one line per input record and in input order:

- `{"line":N,"result":{...}}`: N is the record's line number in the input file (for CSV, the
  line the record starts on; the header is line 1). `result` is a compact summary (schema
  `pain-sdm/result-summary/1`, see `engine.evaluation.result.summary`): each option's status with the ids of the
  rules behind it, about 3 KB a record; with `full`, it is the whole result that
  `pain-sdm evaluate --format json` prints (schema `pain-sdm/result/1`, about 40 KB a record);
- `{"line":N,"error":{"problems":[{"field":F,"message":M},...]}}` for an invalid record, which
  is also reported on stderr with its line number; it is skipped, or, with `strict`, stops
  the run at the first one: nothing is written then.

`profile_differences` is empty unless `compare_profiles` is set: comparing profiles
evaluates every record once per profile, about three times the work.

OUT is written to a temporary file beside it and renamed at the end, so it is either
complete or untouched; an existing OUT is replaced only with `force`.

Workers: durable_rules is not thread-safe, so a parallel run uses processes (the `spawn`
start method), each loading its own DecisionAid once. Records go out in chunks, with a few
chunks per worker in flight, and results are written in input order as they come back, so
memory stays flat whatever the size of the file.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import AnswersError, DataFileError, PainSdmError, Problem, UsageError
from engine.evaluation.aid import DecisionAid
from engine.model.loading import MAX_FILE_BYTES, DuplicateKey, load_json, open_regular
from engine.model.questionnaire import UNKNOWN, Question, Questionnaire
from engine.output import open_atomic

FORMATS = (".jsonl", ".csv")
CHUNK_SIZE = 200
IN_FLIGHT_PER_WORKER = 3
NONE_CHOSEN = "[]"
CHOICE_SEPARATOR = ";"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
"""Numbers are ASCII digits only: a regex digit class and int() would also read Arabic-Indic or full-width digits."""

Payload = bytes | list[str]
"""One raw record: a JSON line, or a CSV row's cells."""


@dataclass(frozen=True)
class Outcome:
    """An invalid record: its line number, its output line and its problems."""

    line: int
    text: str
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A chunk of records evaluated: their output lines as one text, and the invalid ones."""

    text: bytes
    count: int
    last_line: int
    invalid: list[Outcome]


@dataclass
class BatchSummary:
    records: int = 0
    invalid: int = 0
    seconds: float = 0.0
    workers: int = 1


@dataclass(frozen=True)
class BatchOptions:
    """What the run evaluates with; sent to each worker process."""

    rules_dir: Path | None = None
    knowledge_dir: Path | None = None
    profile: str | None = None
    compare_profiles: bool = False
    full: bool = False


def input_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"{path}: a batch file must be JSON Lines (.jsonl) or CSV (.csv), not `{path.suffix}`")
    return suffix


def count_lines(path: Path) -> int:
    """The number of lines in a file, for a progress bar's total."""
    count = 0
    last = b"\n"
    with open_regular(path, AnswersError) as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


# --- reading records ---------------------------------------------------------------------------


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The file's lines, none read beyond MAX_FILE_BYTES: a longer line is cut there (and refused as too large)."""
    while line := handle.readline(MAX_FILE_BYTES + 1):
        if len(line) > MAX_FILE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # the rest of an over-long line is skipped, never held in memory
        yield line


def _jsonl_records(path: Path) -> Iterator[tuple[int, Payload]]:
    with open_regular(path, AnswersError) as handle:
        for number, raw in enumerate(_bounded_lines(handle), start=1):
            if raw.strip():
                yield number, raw


def _text_lines(handle: BinaryIO, name: str) -> Iterator[str]:
    """A CSV file's lines as text (UTF-8, a byte-order mark dropped), none longer than MAX_FILE_BYTES."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    number = 0
    while line := text.readline(MAX_FILE_BYTES + 1):
        number += 1
        if len(line) > MAX_FILE_BYTES:
            raise AnswersError(Problem(name, f"line {number}", "", f"the line is longer than {MAX_FILE_BYTES} bytes"))
        yield line


def read_header(path: Path, questionnaire: Questionnaire) -> list[str]:
    """A CSV file's header: every column must be a question id, each named once."""
    name = str(path)
    with open_regular(path, AnswersError) as handle:
        try:
            header = next(csv.reader(_text_lines(handle, name)), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise AnswersError(Problem(name, "line 1", "", f"cannot read the header: {exc}")) from exc
    if not header or not any(c.strip() for c in header):
        raise AnswersError(Problem(name, "line 1", "", "expected a header row of question ids, e.g. age_years"))
    problems = []
    seen: set[str] = set()
    for column in (c.strip() for c in header):
        if column not in questionnaire.questions:
            problems.append(Problem(name, "line 1", column, "not a question id; check the spelling"))
        elif column in seen:
            problems.append(Problem(name, "line 1", column, "this column appears twice"))
        seen.add(column)
    if problems:
        raise AnswersError(problems)
    return [c.strip() for c in header]


def _csv_records(path: Path) -> Iterator[tuple[int, Payload]]:
    with open_regular(path, AnswersError) as handle:
        reader = csv.reader(_text_lines(handle, str(path)))
        next(reader, None)  # the header, checked by read_header
        start = reader.line_num + 1
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield start, row
                start = reader.line_num + 1
        except (UnicodeDecodeError, csv.Error) as exc:
            raise AnswersError(Problem(str(path), f"line {start}", "", f"cannot read the file: {exc}")) from exc


def read_records(path: Path, kind: str) -> Iterator[tuple[int, Payload]]:
    """Each record's line number and raw content, read lazily."""
    with open_regular(path, AnswersError):
        pass  # refused now, before anything runs, if missing or not a regular file (a FIFO would block)
    return _csv_records(path) if kind == ".csv" else _jsonl_records(path)


class RecordDecoder:
    """Turns one raw record into answers for `DecisionAid.parse_answers`."""

    def __init__(self, aid: DecisionAid, header: list[str] | None) -> None:
        self.aid = aid
        self.header = header
        self.columns = [aid.questionnaire.questions[c] for c in header] if header else []

    def decode(self, payload: Payload, where: str) -> Any:
        if isinstance(payload, bytes):
            return self._json(payload, where)
        return self._row(payload, where)

    def _json(self, raw: bytes, where: str) -> Any:
        if len(raw) > MAX_FILE_BYTES:
            raise AnswersError(Problem(where, "", "", f"the record is larger than {MAX_FILE_BYTES} bytes"))
        try:
            data = load_json(raw)
        except DuplicateKey as exc:
            raise AnswersError(Problem(where, "", "", exc.message())) from exc
        except UnicodeDecodeError as exc:
            raise AnswersError(Problem(where, "", "", "the line is not UTF-8 text")) from exc
        except json.JSONDecodeError as exc:
            raise AnswersError(Problem(where, "", "", f"not valid JSON: {exc.msg} at column {exc.colno}")) from exc
        except RecursionError as exc:
            raise AnswersError(Problem(where, "", "", "nested too deeply")) from exc
        return self.aid.unwrap_answers(data, where)

    def _row(self, row: list[str], where: str) -> dict[str, Any]:
        if len(row) > len(self.columns):
            extra = len(row) - len(self.columns)
            raise AnswersError(
                Problem(where, "", "", f"{extra} more cell{'s' if extra > 1 else ''} than the header has columns")
            )
        answers: dict[str, Any] = {}
        for question, cell in zip(self.columns, row, strict=False):
            value = cell_value(question, cell)
            if value is not None:
                answers[question.id] = value
        return answers


def cell_value(question: Question, cell: str) -> Any:
    """A CSV cell as an answer to `question`; None for an empty cell (an unknown answer)."""
    text = cell if question.type == "text" else cell.strip()
    if not text.strip():
        return None
    if text == UNKNOWN:
        return UNKNOWN
    if question.type == "number":
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text):
            return float(text)
        return text  # not a number: validation says what is expected
    if question.type == "multiple":
        return [] if text == NONE_CHOSEN else [part.strip() for part in text.split(CHOICE_SEPARATOR)]
    return text


# --- results and records -------------------------------------------------------------------------


class ChunkEvaluator:
    """Evaluates chunks of records with one DecisionAid (one per process)."""

    def __init__(self, aid: DecisionAid, decoder: RecordDecoder, source: str, options: BatchOptions) -> None:
        self.aid = aid
        self.decoder = decoder
        self.source = source
        self.profile = aid.rulebook.check_profile(options.profile)
        self.compare_profiles = options.compare_profiles
        self.full = options.full

    def evaluate(self, records: list[tuple[int, Payload]]) -> Chunk:
        out: list[str] = []
        invalid: list[Outcome] = []
        for line, payload in records:
            where = f"{self.source}, line {line}"
            try:
                answers = self.aid.parse_answers(self.decoder.decode(payload, where), where)
            except AnswersError as exc:
                problems = [{"field": p.field, "message": p.message} for p in exc.problems]
                text = json.dumps({"line": line, "error": {"problems": problems}}, ensure_ascii=False)
                invalid.append(Outcome(line, text, tuple(exc.problems)))
                out.append(text)
                continue
            if self.full:
                text = self.aid.evaluate(answers, self.profile, self.compare_profiles).to_json_text()
            else:
                # summary(evaluate(...)), compared or not (tests/test_batch.py holds the two equal)
                found = self.aid.summarize(answers, self.profile, compare_profiles=self.compare_profiles)
                text = json.dumps(found, ensure_ascii=False, separators=(",", ":"))
            out.append(f'{{"line":{line},"result":{text}}}')
        out.append("")
        return Chunk("\n".join(out).encode("utf-8"), len(records), records[-1][0] if records else 0, invalid)


@dataclass(frozen=True)
class _Failure:
    """A PainSdmError raised in a worker, carried back to be raised again in the parent."""

    error: type[PainSdmError]
    args: tuple[Any, ...]


_worker: ChunkEvaluator | _Failure | None = None
"""This worker process's evaluator: set once by `_start_worker`, in worker processes only."""


def _start_worker(options: BatchOptions, header: list[str] | None, source: str) -> None:
    global _worker
    try:
        aid = DecisionAid.load(options.rules_dir, options.knowledge_dir)
        _worker = ChunkEvaluator(aid, RecordDecoder(aid, header), source, options)
    except PainSdmError as exc:  # raised again in the parent by _work: a failing initializer would loop
        _worker = _failure(exc)


def _failure(exc: PainSdmError) -> _Failure:
    if isinstance(exc, DataFileError):
        return _Failure(type(exc), (exc.problems,))
    return _Failure(type(exc), (str(exc),))


def _work(records: list[tuple[int, Payload]]) -> Chunk | _Failure:
    assert _worker is not None, "worker not started"
    if isinstance(_worker, _Failure):
        return _worker
    try:
        return _worker.evaluate(records)
    except PainSdmError as exc:
        return _failure(exc)


def _chunks(records: Iterator[tuple[int, Payload]], size: int) -> Iterator[list[tuple[int, Payload]]]:
    chunk: list[tuple[int, Payload]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _in_order(
    chunks: Iterator[list[tuple[int, Payload]]],
    workers: int,
    options: BatchOptions,
    header: list[str] | None,
    source: str,
) -> Iterator[Chunk]:
    """Chunks evaluated by worker processes, yielded in input order with a bounded number in flight."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(options, header, source)) as pool:
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_work, (chunk,)))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                yield _unwrap(pending.popleft().get())
        while pending:
            yield _unwrap(pending.popleft().get())


def _unwrap(chunk: Chunk | _Failure) -> Chunk:
    if isinstance(chunk, _Failure):
        raise chunk.error(*chunk.args)
    return chunk


def run_batch(
    aid: DecisionAid,
    source: Path,
    output: Path,
    options: BatchOptions,
    *,
    workers: int = 1,
    strict: bool = False,
    force: bool = False,
    on_invalid: Callable[[Outcome], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> BatchSummary:
    """Evaluate every record of `source` into `output` (see the module docstring for both formats).

    `aid` checks the input before anything runs and evaluates in-process when `workers` is 1;
    worker processes load their own from `options`. `on_invalid` is told of each invalid
    record (in input order), `on_progress` of the last input line done after each chunk.
    Raises `AnswersError` (exit 2) for an unreadable input, an input without records or, with
    `strict`, the first invalid record; nothing is written then.
    """
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    kind = input_kind(source)
    aid.rulebook.check_profile(options.profile)
    header = read_header(source, aid.questionnaire) if kind == ".csv" else None
    records = read_records(source, kind)
    done = BatchSummary(workers=workers)
    started = time.perf_counter()
    chunks = _chunks(records, chunk_size)
    with open_atomic(output, force) as handle:
        if workers == 1:
            evaluator = ChunkEvaluator(aid, RecordDecoder(aid, header), str(source), options)
            results: Iterator[Chunk] = (evaluator.evaluate(chunk) for chunk in chunks)
        else:
            results = _in_order(chunks, workers, options, header, str(source))
        for chunk in results:
            if chunk.invalid and strict:
                raise AnswersError(list(chunk.invalid[0].problems))
            for outcome in chunk.invalid:
                if on_invalid is not None:
                    on_invalid(outcome)
            handle.write(chunk.text)
            done.records += chunk.count
            done.invalid += len(chunk.invalid)
            if on_progress is not None:
                on_progress(chunk.last_line)
        if done.records == 0:
            raise AnswersError(Problem(str(source), "", "", "the file has no records"))
    done.seconds = time.perf_counter() - started
    return done
