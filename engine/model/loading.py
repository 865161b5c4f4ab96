"""Read YAML/JSON data files safely and turn validation failures into `Problem`s.

Every kind of file (knowledge, rules, answers) goes through here, so every bad
file is reported the same way: the file, the entry, the field and the fix.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import DataFileError, Problem
from engine.model import parse_cache

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32

M = TypeVar("M", bound=BaseModel)

YAML_BOOLEAN_HINT = "in YAML a bare yes, no, on, off, true or false is read as true or false; quote it: 'yes'"
"""Said wherever a true/false value arrives where the field takes something else."""


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors/aliases (the cause of 'billion laughs' bombs)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                "while reading the file",
                None,
                "YAML aliases (*name) are not allowed here; write the value out in full",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _has_alias(node: yaml.Node) -> bool:
    """Whether a composed document reaches one node twice: that is what an alias (*name) does."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            return True
        seen.add(id(item))
        if isinstance(item, yaml.MappingNode):
            stack.extend(part for pair in item.value for part in pair)
        elif isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
    return False


class DuplicateKey(ValueError):
    """A key given twice in one mapping: YAML and JSON readers silently keep the last value."""

    def __init__(self, key: str, where: str, first: tuple[int, int] | None, second: tuple[int, int] | None) -> None:
        self.key, self.where, self.first, self.second = key, where, first, second
        super().__init__(key)

    def message(self) -> str:
        inside = f" in `{self.where}`" if self.where else ""
        if self.first is None or self.second is None:
            place = ""
        elif self.first[0] == self.second[0]:
            place = f" (line {self.first[0]}, columns {self.first[1]} and {self.second[1]})"
        else:
            place = f" (lines {self.first[0]} and {self.second[0]})"
        return (
            f"the key `{self.key}` is given twice{inside}{place}; only one value would be kept, so give each key once"
        )


def _duplicate_in(node: yaml.Node) -> DuplicateKey | None:
    """The first mapping key given twice in a composed document (keys compared as scalars: tag and text)."""
    stack: list[tuple[yaml.Node, str]] = [(node, "")]
    seen: set[int] = set()
    while stack:
        item, path = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, yaml.MappingNode):
            keys: dict[tuple[str, str], yaml.Node] = {}
            for key, value in item.value:
                if isinstance(key, yaml.ScalarNode):
                    ident = (key.tag, key.value)
                    if ident in keys:
                        first = keys[ident].start_mark
                        return DuplicateKey(
                            key.value,
                            path,
                            (first.line + 1, first.column + 1),
                            (key.start_mark.line + 1, key.start_mark.column + 1),
                        )
                    keys[ident] = key
                    stack.append((value, f"{path}.{key.value}" if path else key.value))
                else:
                    stack.append((value, path))
        elif isinstance(item, yaml.SequenceNode):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item.value))
    return None


def _compose(loader: Any) -> Any:
    """Compose one document, refuse aliases and duplicate keys, then construct it."""
    node = loader.get_single_node()
    if node is None:
        return None
    if _has_alias(node):
        raise yaml.YAMLError("YAML aliases (*name) are not allowed here; write the value out in full")
    duplicate = _duplicate_in(node)
    if duplicate is not None:
        raise duplicate
    return loader.construct_document(node)


def _load_yaml(text: str) -> Any:
    """Parse YAML safely, with libyaml when PyYAML has it (several times faster: start-up time).

    Only a document that libyaml reads without error and without aliases is taken from it;
    anything else is read again by `_NoAliasLoader`, which gives the errors in its own words.
    A key given twice in one mapping is refused (PyYAML would keep the last value silently).
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        loader = fast(text)
        try:
            node = loader.get_single_node()
            if node is not None and not _has_alias(node):
                duplicate = _duplicate_in(node)
                if duplicate is not None:
                    raise duplicate
                return loader.construct_document(node)
        except yaml.YAMLError:
            pass  # reported below, by the same loader as always
        finally:
            loader.dispose()
    slow = _NoAliasLoader(text)
    try:
        return _compose(slow)
    finally:
        slow.dispose()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key, "", None, None)
        seen[key] = value
    return seen


def _json_duplicate_place(text: str, found: DuplicateKey) -> DuplicateKey:
    """Where a duplicate JSON key is: read again as YAML (JSON's flow syntax), else by searching the text."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        located = _duplicate_in(node) if node is not None else None
    except yaml.YAMLError:
        located = None
    if located is not None and located.key == found.key:
        return located
    spots = [m.start() for m in re.finditer(re.escape(json.dumps(found.key)) + r"\s*:", text)]
    if len(spots) < 2:
        return found

    def place(offset: int) -> tuple[int, int]:
        line = text.count("\n", 0, offset) + 1
        return line, offset - (text.rfind("\n", 0, offset) + 1) + 1

    return DuplicateKey(found.key, "", place(spots[0]), place(spots[1]))


def load_json(text: str | bytes) -> Any:
    """`json.loads`, refusing a key given twice in one object (DuplicateKey names it and where)."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except DuplicateKey as exc:
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        raise _json_duplicate_place(source, exc) from None


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_text(text: str, name: str, error: type[DataFileError] = DataFileError) -> Any:
    """Parse YAML or JSON text (JSON is valid YAML, but is parsed as JSON when it looks like it)."""
    stripped = text.lstrip()
    if not stripped:
        raise error(Problem(name, "", "", "the file is empty; expected a mapping of fields"))
    try:
        if stripped[0] in "{[":
            data = load_json(text)
        else:
            data = _load_yaml(text)
    except DuplicateKey as exc:
        raise error(Problem(name, "", "", exc.message())) from exc
    except json.JSONDecodeError as exc:
        raise error(Problem(name, "", "", f"not valid JSON: {exc.msg} at line {exc.lineno}")) from exc
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise error(Problem(name, "", "", f"not valid YAML: {detail}")) from exc
    except RecursionError as exc:
        raise error(Problem(name, "", "", f"nested too deeply (limit {MAX_DEPTH} levels)")) from exc
    except ValueError as exc:  # a number of over 4,300 digits, a date such as 2024-13-45
        detail = "a number has too many digits" if "integer string conversion" in str(exc) else str(exc)
        raise error(Problem(name, "", "", f"a value cannot be read: {detail}")) from exc
    if _depth(data) > MAX_DEPTH:
        raise error(Problem(name, "", "", f"nested too deeply (limit {MAX_DEPTH} levels)"))
    return data


def _not_regular(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    for test, words in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


@contextmanager
def open_regular(path: Path, error: type[DataFileError] = DataFileError) -> Iterator[BinaryIO]:
    """Open a regular file for reading; refuse at once a folder, FIFO, device or socket (never block on it).

    The file is opened without blocking (a FIFO with no writer would wait forever) and checked
    on the open descriptor, so a symbolic link is judged by what it points to, with no race.
    """
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        why = "it is a symbolic link to a file that does not exist" if path.is_symlink() else "no such file"
        raise error(Problem(name, "", "", f"cannot read the file: {why}")) from None
    except OSError as exc:
        raise error(Problem(name, "", "", f"cannot read the file: {exc.strerror or exc}")) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(Problem(name, "", "", f"cannot read the file: it is {_not_regular(mode)}, not a regular file"))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_bounded(path: Path, error: type[DataFileError] = DataFileError, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, read no further than `limit` (a larger file is refused, never read whole)."""
    with open_regular(path, error) as handle:
        try:
            raw = handle.read(limit + 1)
        except OSError as exc:
            raise error(Problem(str(path), "", "", f"cannot read the file: {exc.strerror or exc}")) from None
    if len(raw) > limit:
        raise error(Problem(str(path), "", "", f"the file is larger than {limit} bytes"))
    return raw


def read_data(path: Path, error: type[DataFileError] = DataFileError) -> Any:
    """Read one YAML or JSON file, refusing binary, oversized, empty, non-regular or bomb-like content."""
    name = str(path)
    raw = read_bounded(path, error)
    if b"\x00" in raw:
        raise error(Problem(name, "", "", "this is a binary file; expected YAML or JSON text"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(Problem(name, "", "", "the file is not UTF-8 text; expected YAML or JSON")) from exc
    cache = parse_cache.ACTIVE.get()
    if cache is None:
        return parse_text(text, name, error)
    data = cache.get(raw)
    if data is parse_cache.MISSING:
        data = parse_text(text, name, error)
        cache.put(raw, data)
    return data


def _entry_label(data: Any, loc: tuple[Any, ...], entry_key: str) -> tuple[str, int]:
    """Name the entry a location points into (e.g. 'rule ESI-01'); return it and how much of loc it used."""
    node = data
    label = ""
    used = 0
    if isinstance(data, dict) and isinstance(data.get(entry_key), str):
        label = f"{entry_key} {data[entry_key]}" if entry_key != "id" else data[entry_key]
    for i, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
        if isinstance(node, dict) and isinstance(node.get(entry_key), str):
            label = f"{entry_key} {node[entry_key]}" if entry_key != "id" else node[entry_key]
            used = i + 1
    return label, used


def _hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Find an example for the field a location points to, from the model's field metadata."""
    current: Any = model
    field_info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        field_info = fields[part]
        annotation = field_info.annotation
        args = getattr(annotation, "__args__", ()) or ()
        candidates = [annotation, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            break
    if field_info is not None and field_info.examples:
        return f"; for example `{field_info.examples[0]}`"
    if field_info is not None and field_info.description:
        return f" ({field_info.description})"
    return ""


def problems_from(
    exc: ValidationError, name: str, data: Any, model: type[BaseModel], entry_key: str = "id", kind: str = ""
) -> list[Problem]:
    """Turn a pydantic ValidationError into one Problem per error, naming entry and field."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        label, used = _entry_label(data, loc, entry_key)
        if label and kind:
            label = f"{kind} {label}"
        field = ".".join(str(p) for p in loc[used:]) or ".".join(str(p) for p in loc)
        got = err.get("input")
        message = err["msg"]
        if err["type"] == "answer":
            problems.append(Problem(name, label, field, message))
            continue
        if err["type"] == "missing":
            message = "this field is required"
        elif err["type"] == "extra_forbidden":
            message = "unknown field; check the spelling or remove it"
        elif not isinstance(got, dict | list):
            text = repr(got)
            message += f"; got {text if len(text) <= 60 else text[:57] + '...'}"
            if isinstance(got, bool) and "bool" not in err["type"]:
                message += f" ({YAML_BOOLEAN_HINT})"
        problems.append(Problem(name, label, field, message + _hint(model, loc)))
    return problems


def validate(
    model: type[M],
    data: Any,
    name: str,
    error: type[DataFileError] = DataFileError,
    entry_key: str = "id",
    kind: str = "",
) -> M:
    """Validate parsed data against one model, raising `error` with every problem found."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(problems_from(exc, name, data, model, entry_key, kind)) from exc


def load_file(
    model: type[M], path: Path, error: type[DataFileError] = DataFileError, entry_key: str = "id", kind: str = ""
) -> M:
    """Read and validate one data file."""
    return validate(model, read_data(path, error), str(path), error, entry_key, kind)
